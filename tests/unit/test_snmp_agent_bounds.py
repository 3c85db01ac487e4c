"""The pass_persist agent never keeps snmpd waiting: a probe that hangs (an HSM that never
answers, which no peer here can play, so the probe function is replaced by one that blocks)
is cut at snmp.probe_timeout_seconds and reported down, answers come from the cache at once,
and values older than snmp.stale_after_seconds are unknown(3), never still up."""

from __future__ import annotations

import io
import threading
import time
from types import SimpleNamespace

import pytest

from signet.config import Settings
from signet.monitoring import agent
from signet.monitoring.status import Snapshot

BASE = ".1.3.6.1.4.1.32473.1"
HSM_STATUS = BASE + ".3.2.0"
HSM_REASON = BASE + ".3.3.0"


def _snapshot(taken_at: float, hsm_up: bool = True) -> Snapshot:
    return Snapshot(
        taken_at=taken_at,
        software_version="0.1.0",
        node_name="Signet on test",
        database_engine="sqlite",
        token_label="signet",
        hsm_up=hsm_up,
        hsm_reason="" if hsm_up else "gone",
        database_up=True,
        database_reason="",
    )


@pytest.fixture
def settings() -> Settings:
    return Settings(
        database={"url": "sqlite:///unused.db"},
        snmp={"probe_timeout_seconds": 0.5, "stale_after_seconds": 30},
    )


def test_a_hung_probe_is_cut_and_reported_down(settings, monkeypatch) -> None:
    release = threading.Event()
    probes: list[float] = []

    def hung(*args: object, **kw: object) -> None:
        probes.append(time.monotonic())
        release.wait(60)

    monkeypatch.setattr(agent, "probe", hung)
    prober = agent.Prober(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    prober.snapshot = _snapshot(time.monotonic())
    started = time.monotonic()
    prober.refresh()
    assert time.monotonic() - started < 2
    # which of the two hung is not known: both are reported down
    assert prober.snapshot is not None and not prober.snapshot.hsm_up
    assert not prober.snapshot.database_up
    assert prober.snapshot.hsm_reason == "probe: no answer within 0.5 s"

    # snmpd's questions are answered at once from the cache, the probe still hung
    out = io.StringIO()
    agent.serve(prober, io.StringIO(f"PING\nget\n{HSM_STATUS}\nget\n{HSM_REASON}\n"), out)
    assert out.getvalue().splitlines() == [
        "PONG",
        HSM_STATUS,
        "integer",
        "2",
        HSM_REASON,
        "string",
        "probe: no answer within 0.5 s",
    ]
    # a second refresh does not start a second probe behind the hung one
    prober.refresh()
    assert len(probes) == 1
    release.set()
    prober.stop()


def test_stale_values_are_unknown_and_the_walk_ends(settings) -> None:
    snmp = settings.snmp
    now = time.monotonic()
    rows = agent.rows_of(_snapshot(now - 31), snmp, now)
    by_oid = {agent.dotted(oid): value for oid, _, value in rows}
    assert by_oid[HSM_STATUS] == 3
    assert by_oid[BASE + ".3.1.0"] == 3  # service
    assert by_oid[BASE + ".3.6.0"] == 31  # age
    assert agent.rows_of(None, snmp, now)[0][2] == 3
    # getnext walks in OID order and ends; a malformed OID or set is refused, not a crash
    assert agent.answer("getnext", BASE, rows)[0] == BASE + ".1.1.0"
    assert agent.answer("getnext", BASE + ".9", rows) == ["NONE"]
    assert agent.answer("get", "not.an.oid", rows) == ["NONE"]
    out = io.StringIO()
    agent.serve(
        SimpleNamespace(settings=snmp, snapshot=None),  # type: ignore[arg-type]
        io.StringIO(f"set\n{HSM_STATUS}\ninteger 1\nbogus\n"),
        out,
    )
    assert out.getvalue().splitlines() == ["not-writable", "NONE"]
