"""The SIGNET-MIB agent snmpd runs (pass_persist): answers from cached values at once, while
a thread of its own probes the node. (Notifications are not sent from here: the event
forwarder sends them, once per cluster, to its SNMP sinks.)

snmpd waits for a pass_persist answer with everything else on hold, so an answer never waits
for the HSM or the database: it is read from the last probe's snapshot. A probe that does not
finish within snmp.probe_timeout_seconds reports the HSM down (no answer in time); values
older than snmp.stale_after_seconds are served as unknown(3). Protocol: net-snmp's snmpd.conf(5),
"pass_persist"."""

from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as ProbeTimeout
from datetime import UTC, datetime
from typing import IO

from signet.config import Settings
from signet.config.snmp import SnmpSettings
from signet.events.mib import CERT_ROLES, DOWN, OBJECTS, UNKNOWN, UP, dotted, parse_oid
from signet.monitoring.status import Snapshot, TrailCounts, probe
from signet.signing import Services

log = logging.getLogger("signet.monitoring.agent")

Row = tuple[tuple[int, ...], str, int | str]


def _text(value: str, limit: int = 255) -> str:
    # one line each: the protocol is line-based
    return " ".join(value.split())[:limit]


def rows_of(snapshot: Snapshot | None, settings: SnmpSettings, now: float) -> list[Row]:
    """The subtree's (OID, type, value) rows, in OID order, for `snapshot` seen at `now`."""
    base = parse_oid(settings.base_oid)
    if snapshot is None:
        return sorted(_scalars(base, _unknown(0)))
    age = int(now - snapshot.taken_at)
    status: dict[str, int | str] = (
        _unknown(age)
        if age > settings.stale_after_seconds
        else {
            "signetServiceStatus": UP if snapshot.service_up else DOWN,
            "signetHsmStatus": UP if snapshot.hsm_up else DOWN,
            "signetHsmReason": _text(snapshot.hsm_reason),
            "signetDatabaseStatus": UP if snapshot.database_up else DOWN,
            "signetDatabaseReason": _text(snapshot.database_reason),
            "signetStatusAge": age,
        }
    )
    values: dict[str, int | str] = {
        "signetSoftwareVersion": _text(snapshot.software_version, 64),
        "signetNodeName": _text(snapshot.node_name),
        "signetDatabaseEngine": snapshot.database_engine,
        "signetHsmTokenLabel": _text(snapshot.token_label, 32),
        "signetSignaturesMade": snapshot.signatures_made,
        "signetAuthorizationsRefused": snapshot.authorizations_refused,
        "signetCredentialsLocked": snapshot.credentials_locked,
        "signetCertsNearExpiry": len(snapshot.certificates),
        **status,
    }
    rows = _scalars(base, values)
    today = datetime.now(UTC)
    for index, cert in enumerate(snapshot.certificates, start=1):
        for name, value in (
            ("signetCertRole", CERT_ROLES[cert.role]),
            ("signetCertSubject", _text(cert.subject)),
            ("signetCertNotAfter", cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("signetCertDaysLeft", cert.days_left(today)),
        ):
            rows.append((base + OBJECTS[name].arc + (index,), OBJECTS[name].type, value))
    return sorted(rows)


def _unknown(age: int) -> dict[str, int | str]:
    # never "still up" on old news
    return {
        "signetServiceStatus": UNKNOWN,
        "signetHsmStatus": UNKNOWN,
        "signetHsmReason": "no recent probe",
        "signetDatabaseStatus": UNKNOWN,
        "signetDatabaseReason": "no recent probe",
        "signetStatusAge": age,
    }


def _scalars(base: tuple[int, ...], values: dict[str, int | str]) -> list[Row]:
    return [(base + OBJECTS[n].arc + (0,), OBJECTS[n].type, v) for n, v in values.items()]


class Prober:
    """Probes the node every refresh_seconds in a thread and keeps the latest snapshot."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.snmp
        self.counts = TrailCounts()
        self.snapshot: Snapshot | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signet-probe")
        self._running: Future[Snapshot] | None = None
        self._stop = threading.Event()

    def refresh(self) -> None:
        """One probe, bounded by probe_timeout_seconds; a probe still running (a hung HSM
        call) is not started twice, and the HSM is reported down meanwhile."""
        if self._running is None or self._running.done():
            self._running = self._pool.submit(
                probe,
                self.services,
                self.counts,
                warning_days=self.services.settings.events.expiry_warning_days,
            )
        try:
            snapshot = self._running.result(timeout=self.settings.probe_timeout_seconds)
        except ProbeTimeout:
            snapshot = self._timed_out()
        except Exception as exc:  # a probe that fails must not end the agent
            log.warning("probe failed: %s: %s", exc.__class__.__name__, exc)
            return
        self.snapshot = snapshot

    def _timed_out(self) -> Snapshot:
        last = self.snapshot
        reason = f"no answer within {self.settings.probe_timeout_seconds:g} s"
        return Snapshot(
            taken_at=time.monotonic(),
            software_version=last.software_version if last else "",
            node_name=last.node_name if last else "",
            database_engine=last.database_engine if last else "",
            token_label=self.services.settings.hsm.token_label,
            hsm_up=False,
            hsm_reason=f"probe: {reason}",
            database_up=False,
            database_reason=f"probe: {reason}",
            signatures_made=last.signatures_made if last else 0,
            authorizations_refused=last.authorizations_refused if last else 0,
            credentials_locked=last.credentials_locked if last else 0,
            certificates=last.certificates if last else [],
        )

    def run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.settings.refresh_seconds)

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def answer(command: str, oid_text: str, rows: list[Row]) -> list[str]:
    """pass_persist's answer lines to `command` ("get" or "getnext") on `oid_text`."""
    try:
        oid = parse_oid(oid_text)
    except ValueError:
        return ["NONE"]
    if command == "get":
        found = next((row for row in rows if row[0] == oid), None)
    else:
        found = next((row for row in rows if row[0] > oid), None)
    if found is None:
        return ["NONE"]
    return [dotted(found[0]), found[1], str(found[2])]


def serve(prober: Prober, stdin: IO[str], stdout: IO[str]) -> None:
    """Speak pass_persist on stdin/stdout until snmpd closes the pipe."""
    settings = prober.settings
    while True:
        line = stdin.readline()
        if not line:
            return
        command = line.strip().lower()
        if command == "ping":
            reply = ["PONG"]
        elif command in ("get", "getnext"):
            oid_text = stdin.readline().strip()
            reply = answer(command, oid_text, rows_of(prober.snapshot, settings, time.monotonic()))
        elif command == "set":
            stdin.readline()
            stdin.readline()
            reply = ["not-writable"]
        elif command == "":
            continue
        else:
            reply = ["NONE"]
        stdout.write("\n".join(reply) + "\n")
        stdout.flush()


def run_agent(settings: Settings) -> None:
    """`signet snmp-agent`: probe once (bounded), then answer snmpd while probing in the
    background. Logs go to stderr (snmpd's log); stdout is the protocol's."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="signet-snmp: %(message)s")
    services = Services(settings)
    prober = Prober(services)
    prober.refresh()
    thread = threading.Thread(target=prober.run, name="signet-refresh", daemon=True)
    thread.start()
    try:
        serve(prober, sys.stdin, sys.stdout)
    finally:
        prober.stop()
