"""Forwarding to a real rsyslog on loopback, on SQLite and PostgreSQL with a real SoftHSM:
every transport and body parsed back field by field against the trail; a collector down
while 200 signatures are made gets all of them, in order, once back; two forwarder processes
on one database send each record once; an edited record arrives flagged."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
from sqlalchemy import select, update

from signet.config import PLACEHOLDER_ENTERPRISE_NUMBER, EventsSettings
from signet.events import append_event
from signet.events.forward import Forwarder
from signet.events.sinks import SinkDown
from signet.signing.forwarding import build_sink
from signet.store import AuditRecord
from tests.helpers import enrol, hsm_outage_round, self_signed_certificate, signet_server
from tests.integration.csc_http import Csc, enrol_alice
from tests.rsyslog import (
    RELP_PORT,
    RELP_TLS_PORT,
    TCP_PORT,
    TLS_PORT,
    UDP_PORT,
    Rsyslog,
    make_pki,
)
from tests.siem_parsers import parse_cef, parse_rfc5424

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "monitoring" / "signet-event.schema.json").read_text()
)
SD_ID = f"signet@{PLACEHOLDER_ENTERPRISE_NUMBER}"


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


@pytest.fixture
def rsyslog(tmp_path, pki):
    collector = Rsyslog(tmp_path / "rsyslog", pki)
    collector.start()
    yield collector
    collector.stop()


TRANSPORTS = ("udp", "tcp", "tls", "relp", "relp-tls")


def _sinks(pki, body: str, only: tuple[str, ...] = TRANSPORTS, **tls_changes) -> dict:
    tls = {
        "server_name": "localhost",
        "ca_file": str(pki.ca),
        "client_cert_file": str(pki.client_cert),
        "client_key_file": str(pki.client_key),
        **tls_changes,
    }
    ports = {
        "udp": UDP_PORT,
        "tcp": TCP_PORT,
        "tls": TLS_PORT,
        "relp": RELP_PORT,
        "relp-tls": RELP_TLS_PORT,
    }
    return {
        name: {"host": "127.0.0.1", "port": ports[name], "transport": name, "format": body}
        | (tls if name.endswith("tls") else {})
        for name in only
    }


def _add_alice(services) -> None:
    enrol_alice(services)


def _forwarder(
    services, sinks: dict, node: str = "node-a", trust_roots=(), **settings
) -> Forwarder:
    events = EventsSettings(sinks=sinks, hostname="node-a", poll_seconds=0.1, **settings)
    whole = services.settings.model_copy(update={"events": events})
    built = {
        name: build_sink(name, sink, whole, host="node-a") for name, sink in events.sinks.items()
    }
    return Forwarder(services.database, events, built, node=node, trust_roots=trust_roots)


def _records(services) -> list[AuditRecord]:
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars().all()
        session.expunge_all()
        return list(rows)


def _fields(line: str, body: str) -> dict:
    """What one received message says, read by the independent parsers: the structured data
    and the body's own fields, in one vocabulary (the JSON keys)."""
    message = parse_rfc5424(line)
    sd = message.sd[SD_ID]
    seen = {
        "seq": int(sd["seq"]) if "seq" in sd else None,
        "event": message.msgid,
        "actor": sd["actor"],
        "outcome": sd["outcome"],
        "record_hash": sd.get("hash"),
        "prev_hash": sd.get("prev"),
        "integrity": sd["integrity"],
        "kind": sd["kind"],
        "host": message.hostname,
        "timestamp": message.timestamp,
    }
    if body == "json":
        document = json.loads(message.msg)
        jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
        assert {k: document[k] for k in seen if k != "timestamp"} == {
            k: v for k, v in seen.items() if k != "timestamp"
        }
        seen["details"] = document["details"]
        seen["subject"] = document["subject"]
    elif body == "cef":
        cef = parse_cef(message.msg)
        ext = cef.extension
        assert (cef.vendor, cef.product, cef.signature_id) == ("Signet", "Signet", message.msgid)
        assert int(cef.severity) == int(sd["severity"])
        assert ext["suser"] == sd["actor"] and ext["cs3"] == sd["integrity"]
        assert ext.get("externalId") == sd.get("seq") and ext.get("cs1") == sd.get("hash")
        seen["details"] = json.loads(ext["msg"])
        seen["subject"] = ext.get("duser")
    else:
        head = f"{message.msgid} by {sd['actor']}"
        assert message.msg.startswith(head), message.msg
        seen["details"] = json.loads(message.msg.split(f": {sd['outcome']} ", 1)[1])
        seen["subject"] = sd.get("subject")
    return seen


def _audit(lines: list[str], body: str) -> list[dict]:
    return [f for f in (_fields(line, body) for line in lines) if f["kind"] == "audit"]


def _received(rsyslog, transport: str, body: str, count: int, timeout: float = 30) -> list[dict]:
    """The audit records the collector has, once it has `count` of them (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        received = _audit(rsyslog.lines(transport), body)
        if len(received) >= count or time.monotonic() > deadline:
            return received
        time.sleep(0.05)


@pytest.mark.parametrize("body", ["rfc5424", "json", "cef"])
def test_every_transport_delivers_the_trail_field_by_field(services, rsyslog, pki, body):
    _add_alice(services)
    records = _records(services)
    forwarder = _forwarder(services, _sinks(pki, body))
    try:
        while forwarder.run_once():
            pass
    finally:
        forwarder.close()
    for transport in TRANSPORTS:
        received = _received(rsyslog, transport, body, len(records))
        assert [r["seq"] for r in received] == [r.seq for r in records], transport
        for got, record in zip(received, records, strict=True):
            assert got["event"] == record.event
            assert got["actor"] == record.actor and got["outcome"] == record.outcome
            assert got["subject"] == record.subject
            assert got["details"] == json.loads(record.details)
            assert (got["record_hash"], got["prev_hash"]) == (record.record_hash, record.prev_hash)
            assert got["integrity"] == "chained" and got["host"] == "node-a"
            assert got["timestamp"] == record.at.replace("+00:00", "Z")


def test_tls_refuses_a_collector_it_cannot_verify(services, rsyslog, pki):
    forwarder = _forwarder(services, _sinks(pki, "json", ("tls",), ca_file=str(pki.other_ca)))
    with pytest.raises(SinkDown, match="certificate verify failed"):
        forwarder._sinks["tls"].sink.send([])  # the handshake alone
    assert forwarder.run_once() == 0
    forwarder.close()
    time.sleep(0.5)
    assert rsyslog.lines("tls") == []


def _alice(services) -> str:
    _add_alice(services)
    return enrol(services, "alice", key="ec-p256", actor="test").credential_id


def test_a_collector_down_during_200_signatures_gets_them_all_in_order(
    services, client, rsyslog, pki
):
    credential = _alice(services)
    rsyslog.stop()
    forwarder = _forwarder(services, _sinks(pki, "json", ("tcp", "tls")))
    stop = threading.Event()
    running = threading.Thread(target=forwarder.run, args=(stop,))
    running.start()
    csc = Csc(client, services)
    csc.login()
    signed = 0
    for batch in range(2):
        digests = [hashlib.sha256(f"{batch}-{i}".encode()).digest() for i in range(100)]
        sad = csc.authorize(credential, digests).json["SAD"]
        for digest in digests:
            reply = csc.sign(credential, sad, [digest], "1.2.840.10045.4.3.2")
            assert reply.status_code == 200, reply.json
            signed += 1
    assert signed == 200
    records = _records(services)
    created = [r.seq for r in records if r.event == "signature.created"]
    assert len(created) == 200
    time.sleep(0.5)  # the forwarder has tried, and failed, meanwhile
    rsyslog.start()
    try:
        for transport in ("tcp", "tls"):
            received = _received(rsyslog, transport, "json", len(records), timeout=60)
            assert [r["seq"] for r in received] == [r.seq for r in records], transport
            assert [r["seq"] for r in received if r["event"] == "signature.created"] == created
            for before, after in itertools.pairwise(received):
                assert after["prev_hash"] == before["record_hash"]
    finally:
        stop.set()
        running.join(timeout=30)
        forwarder.close()


def test_relp_loses_nothing_when_the_collector_restarts_midway(services, rsyslog, pki):
    """Over RELP every message is acknowledged: a collector restarted twice while the trail
    streams out in small batches still ends up with every record, in order of first arrival."""
    with services.database.transaction() as session:
        for i in range(300):
            append_event(session, "test.event", actor="test", subject=f"s{i}", n=i)
    records = _records(services)
    forwarder = _forwarder(services, _sinks(pki, "json", ("relp",)), batch_size=5)
    stop = threading.Event()
    running = threading.Thread(target=forwarder.run, args=(stop,))
    running.start()
    try:
        for round_ in range(1, 3):
            deadline = time.monotonic() + 30
            while len(rsyslog.lines("relp")) < 60 * round_ and time.monotonic() < deadline:
                time.sleep(0.01)
            rsyslog.stop()
            time.sleep(0.3)
            rsyslog.start()
        received = _received(rsyslog, "relp", "json", len(records), timeout=60)
    finally:
        stop.set()
        running.join(timeout=30)
        forwarder.close()
    seqs = [r["seq"] for r in received]
    assert sorted(set(seqs)) == [r.seq for r in records]  # at least once: none missing
    assert list(dict.fromkeys(seqs)) == [r.seq for r in records]  # first arrivals in order


def _forward_process(env: dict, sinks: dict, log: Path) -> subprocess.Popen:
    env = {
        **env,
        "SIGNET_EVENTS__SINKS": json.dumps(sinks),
        "SIGNET_EVENTS__POLL_SECONDS": "0.1",
        "SIGNET_EVENTS__BATCH_SIZE": "7",
        "SIGNET_EVENTS__LEASE_SECONDS": "5",
    }
    signet = str(Path(sys.executable).parent / "signet")
    with log.open("ab") as out:
        return subprocess.Popen([signet, "events", "forward"], env=env, stdout=out, stderr=out)


def test_a_killed_forwarder_leaves_its_operational_events_to_the_next(
    services, settings_env, softhsm, rsyslog, pki, tmp_path
):
    """The collector down and the HSM gone: the forwarder holds hsm.unreachable, and is
    killed (SIGKILL: no clean stop). The HSM is back before the next one starts, which never
    sees it down, yet delivers its predecessor's event from the node's spool."""
    env = {**os.environ, **settings_env}
    sinks = _sinks(pki, "json", ("tcp",))
    spooled = Path(settings_env["SIGNET_EVENTS__SPOOL_DIR"]) / "tcp.jsonl"
    tokens = os.path.join(softhsm["dir"], "tokens")
    rsyslog.stop()
    os.rename(tokens, tokens + ".away")
    try:
        first = _forward_process(env, sinks, tmp_path / "first.log")
        deadline = time.monotonic() + 30
        while not (spooled.exists() and "hsm.unreachable" in spooled.read_text()):
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.1)
        first.kill()
        first.wait(timeout=30)
    finally:
        os.rename(tokens + ".away", tokens)
    rsyslog.start()
    second = _forward_process(env, sinks, tmp_path / "second.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            documents = [json.loads(parse_rfc5424(line).msg) for line in rsyslog.lines("tcp")]
            events = [d for d in documents if d["kind"] == "operational"]
            if any(d["event"] == "hsm.unreachable" for d in events):
                break
            assert time.monotonic() < deadline, (tmp_path / "second.log").read_text()
            time.sleep(0.1)
    finally:
        second.terminate()
        second.wait(timeout=30)
    down = next(d for d in events if d["event"] == "hsm.unreachable")
    assert down["actor"].endswith(f":{first.pid}")  # the killed one's, sent by its successor
    assert "signet-test" in down["details"]["reason"]
    assert not any(d["event"] == "hsm.reachable" for d in events)


def test_two_forwarder_processes_send_each_record_once(
    services, settings_env, rsyslog, pki, tmp_path
):
    env = {**os.environ, **settings_env}
    sinks = _sinks(pki, "cef", ("tcp",))
    nodes = [_forward_process(env, sinks, tmp_path / f"node{i}.log") for i in range(2)]
    try:
        for i in range(60):
            with services.database.transaction() as session:
                append_event(session, "test.event", actor="test", subject=f"s{i}", n=i)
            if i % 10 == 0:
                time.sleep(0.2)
        records = _records(services)
        _received(rsyslog, "tcp", "cef", len(records), timeout=60)
        time.sleep(1)  # time for a duplicate to arrive, if one were sent
        received = _audit(rsyslog.lines("tcp"), "cef")
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(timeout=30)
    assert [r["seq"] for r in received] == [r.seq for r in records]
    assert all(node.returncode == 0 for node in nodes), [
        (tmp_path / f"node{i}.log").read_text() for i in range(2)
    ]


def test_an_edited_record_arrives_flagged(services, rsyslog, pki):
    _add_alice(services)
    records = _records(services)
    victim = records[-1]
    with services.database.transaction() as session:
        session.execute(
            update(AuditRecord).where(AuditRecord.seq == victim.seq).values(actor="mallory")
        )
    forwarder = _forwarder(services, _sinks(pki, "cef", ("tcp",)))
    forwarder.run_once()
    forwarder.close()
    lines = rsyslog.wait_for("tcp", len(records))
    flagged = {
        parse_rfc5424(line).sd[SD_ID]["seq"]: parse_cef(parse_rfc5424(line).msg) for line in lines
    }
    edited = flagged[str(victim.seq)]
    assert edited.extension["suser"] == "mallory"
    assert edited.extension["cs3"] == "hash-mismatch" and edited.severity == "10"
    assert {c.extension["cs3"] for s, c in flagged.items() if s != str(victim.seq)} == {"chained"}


def test_a_dependency_down_and_back_is_reported(services, softhsm, rsyslog, pki):
    """The token's directory taken away (a lost mount): the forwarder's real probe (the
    health check's C_GetTokenInfo) fails, hsm.unreachable goes out; put back, hsm.reachable."""
    forwarder = _forwarder(services, _sinks(pki, "json", ("udp", "tcp")))
    hsm_outage_round(forwarder, services, softhsm)
    forwarder.close()
    for transport in ("udp", "tcp"):
        lines = rsyslog.wait_for(transport, 2)
        operational = [
            json.loads(parse_rfc5424(line).msg)
            for line in lines
            if parse_rfc5424(line).sd[SD_ID]["kind"] == "operational"
        ]
        assert [(o["event"], o["outcome"], o["severity"]) for o in operational] == [
            ("hsm.unreachable", "failure", 9),
            ("hsm.reachable", "success", 3),
        ], transport
        assert "signet-test" in operational[0]["details"]["reason"]
        for document in operational:
            jsonschema.validate(document, SCHEMA)


PRIVATE_PG_PORT = "55439"  # a cluster of this test's own: it is stopped mid-test


@pytest.fixture
def private_postgres(monkeypatch):
    """A PostgreSQL server of its own, with halt() and resume() for an outage."""
    script = str(Path(__file__).resolve().parents[1] / "services" / "postgres")
    env = {**os.environ, "SIGNET_TEST_PG_PORT": PRIVATE_PG_PORT}

    def run(command: str) -> str:
        done = subprocess.run(
            [script, command], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    run("start")
    url = run("url")
    monkeypatch.setenv("SIGNET_DATABASE__URL", url)
    yield SimpleNamespace(url=url, halt=lambda: run("halt"), resume=lambda: run("resume"))
    run("stop")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # replaced: a private server
def test_a_database_stopped_and_started_again_is_reported(
    settings_env, private_postgres, rsyslog, pki
):
    """The PostgreSQL server really stops: the forwarder's probe and its reads fail,
    database.unreachable reaches the collector (held in memory: the trail cannot be read);
    once the server is back, database.reachable and the records written since follow."""
    from signet.config import load_settings
    from signet.signing import Services
    from signet.signing.admin import initialise
    from signet.signing.forwarding import _probes

    services = Services(load_settings())
    initialise(services)
    try:
        forwarder = _forwarder(services, _sinks(pki, "json", ("tcp",)))
        forwarder.probes = _probes(services)
        while forwarder.run_once():
            pass
        before = len(_records(services))
        private_postgres.halt()
        try:
            started = time.monotonic()
            forwarder.run_once()
            assert time.monotonic() - started < 10  # a refused connection, not a hang
        finally:
            private_postgres.resume()
        with services.database.transaction() as session:
            append_event(
                session, "credential.revoked", actor="admin", subject="c1", outcome="success"
            )
        while forwarder.run_once():
            pass
        forwarder.close()
    finally:
        services.database.dispose()
    lines = rsyslog.wait_for("tcp", before + 3)
    documents = [json.loads(parse_rfc5424(line).msg) for line in lines]
    operational = [(d["event"], d["outcome"]) for d in documents if d["kind"] == "operational"]
    assert operational == [
        ("database.unreachable", "failure"),
        ("database.reachable", "success"),
    ]
    down = next(d for d in documents if d["event"] == "database.unreachable")
    assert down["severity"] == 9 and down["details"]["reason"]
    audit = [d["seq"] for d in documents if d["kind"] == "audit"]
    assert audit == list(range(1, before + 2))  # nothing lost, nothing twice
    assert documents[-1]["event"] == "credential.revoked"


def test_service_start_and_stop_reach_the_sink(services, settings_env, rsyslog, pki):
    with signet_server(env={**os.environ, **settings_env}, workers=1):
        pass
    records = _records(services)
    events = [r.event for r in records]
    assert events.count("service.started") == events.count("service.stopped") == 1
    started, stopped = events.index("service.started"), events.index("service.stopped")
    assert started < stopped and events[stopped + 1] == "audit.checkpoint"
    forwarder = _forwarder(services, _sinks(pki, "rfc5424", ("tls",)))
    while forwarder.run_once():
        pass
    forwarder.close()
    received = _received(rsyslog, "tls", "rfc5424", len(records))
    assert [(r["seq"], r["event"]) for r in received] == [(r.seq, r.event) for r in records]


def _tsa_root_expiring_in(days: int, path: Path) -> str:
    """A self-signed TSA trust anchor whose validity ends in `days` days, as a PEM file."""
    from cryptography.hazmat.primitives import serialization

    certificate, _ = self_signed_certificate("Expiring Test TSA Root", days=days, serial=0x5A17)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(path)


def test_a_failed_login_burst_and_a_certificate_near_expiry_are_reported(
    services, rsyslog, pki, tmp_path
):
    from datetime import UTC, datetime, timedelta

    from signet.store import Certificate

    with services.database.transaction() as session:
        for i in range(5):
            append_event(
                session,
                "login.failed",
                actor=f"guess{i}",
                subject=f"guess{i}",
                outcome="failure",
                method="password",
                reason="unknown user",
                source="203.0.113.9",
            )
        append_event(
            session, "login.failed", actor="x", outcome="failure", reason="r", source="192.0.2.1"
        )
        soon = datetime.now(UTC) + timedelta(days=3)
        ca = session.execute(select(Certificate).where(Certificate.role == "ca")).scalars().first()
        ca.not_after = soon  # the local CA, as if three days from its end
        serial, subject = ca.serial, ca.subject
    tsa_root = _tsa_root_expiring_in(10, tmp_path / "tsa-root.pem")
    forwarder = _forwarder(
        services, _sinks(pki, "json", ("tcp",)), trust_roots=[tsa_root], failed_login_burst=5
    )
    while forwarder.run_once():
        pass
    forwarder.close()
    deadline = time.monotonic() + 30
    while True:
        operational = [
            json.loads(parse_rfc5424(line).msg)
            for line in rsyslog.lines("tcp")
            if parse_rfc5424(line).sd[SD_ID]["kind"] == "operational"
        ]
        if len(operational) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    by_event = {(o["event"], o["details"].get("role")): o for o in operational}
    assert sorted(by_event) == [
        ("certificate.expiring", "ca"),
        ("certificate.expiring", "tsa"),
        ("login.burst", None),
    ]
    burst = by_event["login.burst", None]
    assert (burst["subject"], burst["details"]["failures"], burst["severity"]) == (
        "203.0.113.9",
        5,
        8,
    )
    expiring = by_event["certificate.expiring", "ca"]
    assert (expiring["subject"], expiring["details"]["serial"]) == (subject, serial)
    assert expiring["details"]["days_left"] in (2, 3) and expiring["severity"] == 6
    tsa = by_event["certificate.expiring", "tsa"]
    assert tsa["subject"] == "CN=Expiring Test TSA Root" and tsa["details"]["serial"] == "5a17"
    assert tsa["details"]["days_left"] in (9, 10)
