"""The event forwarder's SNMP sink: audit records and operational events reach a real
snmptrapd as SIGNET-MIB notifications (v2c and v3 authPriv with SHA-256/AES, traps and
informs), decoded there by name with the MIB, each carrying its record's seq and hashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from signet.config import EventsSettings, Settings
from signet.events import append_event
from signet.events.forward import Forwarder
from signet.signing.forwarding import build_sink
from signet.store import AuditRecord, EventCursor
from tests.helpers import hsm_outage_round
from tests.snmp_peers import (
    AUTH_PASSPHRASE,
    COMMUNITY,
    ENGINE_ID,
    PRIV_PASSPHRASE,
    USER,
    snmptrapd,
    write_secret,
)

TRAP_OID = "SNMPv2-MIB::snmpTrapOID.0"


@pytest.fixture
def receiver(tmp_path: Path):  # type: ignore[no-untyped-def]
    with snmptrapd(tmp_path / "trapd") as trap_receiver:
        yield trap_receiver


def _sink(tmp_path: Path, port: int, **changes: object) -> dict:
    version = changes.get("version", "v3")
    sink: dict = {"type": "snmp", "host": "127.0.0.1", "port": port, "timeout_seconds": 2}
    if version == "v2c":
        sink["community"] = write_secret(tmp_path, "community", COMMUNITY)
    else:
        sink |= {
            "user": USER,
            "auth_passphrase": write_secret(tmp_path, "auth", AUTH_PASSPHRASE),
            "priv_passphrase": write_secret(tmp_path, "priv", PRIV_PASSPHRASE),
            "engine_id": ENGINE_ID,
        }
    return sink | changes


def _forwarder(services, sinks: dict, **events: object) -> Forwarder:
    settings = EventsSettings(sinks=sinks, hostname="node-a", poll_seconds=0.1, **events)
    whole = services.settings.model_copy(update={"events": settings})
    built = {name: build_sink(name, s, whole, host="node-a") for name, s in settings.sinks.items()}
    return Forwarder(services.database, settings, built, node="node-a")


def _append(services, event: str, **fields: object) -> AuditRecord:
    with services.database.transaction() as session:
        append_event(session, event, **fields)
    with services.database.transaction(read_only=True) as session:
        record = session.execute(
            select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)
        ).scalar_one()
        session.expunge(record)
        return record


def _cursor(services, sink: str) -> int | None:
    with services.database.transaction(read_only=True) as session:
        return session.execute(
            select(EventCursor.last_seq).where(EventCursor.sink == sink)
        ).scalar_one_or_none()


def _forward_all(forwarder: Forwarder) -> None:
    while forwarder.run_once():
        pass


@pytest.mark.parametrize(
    ("version", "inform", "how"),
    [
        ("v2c", False, f"TRAP2, SNMP v2c, community {COMMUNITY}"),
        ("v2c", True, f"INFORM, SNMP v2c, community {COMMUNITY}"),
        ("v3", False, f"TRAP2, SNMP v3, user {USER}, context "),
        ("v3", True, f"INFORM, SNMP v3, user {USER}, context "),
    ],
)
def test_audit_records_arrive_decoded_field_by_field(
    services, receiver, tmp_path, version, inform, how
) -> None:
    with services.database.transaction(read_only=True) as session:
        head = session.execute(select(AuditRecord.seq).order_by(AuditRecord.seq.desc())).first()
    already = head[0] if head else 0
    locked = _append(
        services,
        "credential.locked",
        actor="alice",
        subject="cred-1",
        outcome="failure",
        reason="3 failed OTP tries",
    )
    revoked = _append(
        services, "credential.revoked", actor="admin", subject="cred-2", outcome="success"
    )
    forwarder = _forwarder(
        services, {"nms": _sink(tmp_path, receiver.port, version=version, inform=inform)}
    )
    _forward_all(forwarder)
    forwarder.close()
    notes = receiver.wait_for(already + 2)
    assert {n["how"] for n in notes} == {how}
    by_seq = {n["SIGNET-MIB::signetTrapEventSeq.0"]: n for n in notes}
    assert len(by_seq) == already + 2  # each record once
    first = by_seq[f"Counter64: {locked.seq}"]
    assert first[TRAP_OID] == "OID: SIGNET-MIB::signetCredentialLocked"
    assert first["SIGNET-MIB::signetTrapCredentialId.0"] == "STRING: cred-1"
    assert first["SIGNET-MIB::signetTrapEventName.0"] == "STRING: credential.locked"
    assert first["SIGNET-MIB::signetTrapEventSeverity.0"] == "INTEGER: 7"
    assert first["SIGNET-MIB::signetTrapEventOutcome.0"] == "STRING: failure"
    assert first["SIGNET-MIB::signetTrapEventActor.0"] == "STRING: alice"
    assert first["SIGNET-MIB::signetTrapEventHash.0"] == f"STRING: {locked.record_hash}"
    assert first["SIGNET-MIB::signetTrapEventPrevHash.0"] == f"STRING: {locked.prev_hash}"
    assert first["SIGNET-MIB::signetTrapEventIntegrity.0"] == "INTEGER: chained(1)"
    assert first["SIGNET-MIB::signetTrapEventNode.0"] == "STRING: node-a"
    assert '"reason":"3 failed OTP tries"' in first["SIGNET-MIB::signetTrapEventDetails.0"]
    second = by_seq[f"Counter64: {revoked.seq}"]
    assert second[TRAP_OID] == "OID: SIGNET-MIB::signetEvent"
    assert second["SIGNET-MIB::signetTrapEventSubject.0"] == "STRING: cred-2"
    # the receiver can check continuity: each record links to the one before
    assert second["SIGNET-MIB::signetTrapEventPrevHash.0"] == f"STRING: {locked.record_hash}"
    assert _cursor(services, "nms") == revoked.seq


def test_an_unacknowledged_inform_keeps_the_cursor_until_it_is(services, receiver, tmp_path):
    """At least once: informs the receiver cannot decrypt are never acknowledged, the cursor
    stays; with the right passphrase the same records arrive, in order."""
    first = _append(services, "credential.revoked", actor="a", subject="c1", outcome="success")
    sink = _sink(tmp_path, receiver.port, inform=True, retries=0, timeout_seconds=1)
    write_secret(tmp_path, "priv", "not-the-receivers-passphrase")
    forwarder = _forwarder(services, {"nms": sink})
    forwarder.run_once()
    assert _cursor(services, "nms") == 0
    assert receiver.lines() == []
    write_secret(tmp_path, "priv", PRIV_PASSPHRASE)
    last = _append(services, "credential.revoked", actor="a", subject="c2", outcome="success")
    forwarder._sinks["nms"].retry_at = float("-inf")  # skip the back-off pause
    _forward_all(forwarder)
    forwarder.close()
    notes = receiver.wait_for(last.seq)
    seqs = [int(n["SIGNET-MIB::signetTrapEventSeq.0"].split()[1]) for n in notes]
    assert seqs == list(range(1, last.seq + 1)) and first.seq in seqs
    assert _cursor(services, "nms") == last.seq


def test_min_severity_sends_the_alarms_only(services, receiver, tmp_path):
    _append(services, "credential.revoked", actor="a", subject="c1", outcome="success")
    locked = _append(services, "credential.locked", actor="a", subject="c1", outcome="failure")
    _append(services, "credential.revoked", actor="a", subject="c2", outcome="success")
    sink = _sink(tmp_path, receiver.port, version="v2c", min_severity=7)
    forwarder = _forwarder(services, {"nms": sink})
    _forward_all(forwarder)
    forwarder.close()
    receiver.wait_for(1)
    notes = [n for n in receiver.wait_for(0) if "SIGNET-MIB::signetTrapEventSeq.0" in n]
    assert [n["SIGNET-MIB::signetTrapEventSeq.0"] for n in notes] == [f"Counter64: {locked.seq}"]
    with services.database.transaction(read_only=True) as session:
        head = session.execute(select(AuditRecord.seq).order_by(AuditRecord.seq.desc())).first()
    assert _cursor(services, "nms") == head[0]  # past the records it filtered out


def test_an_edited_record_raises_an_integrity_violation(services, receiver, tmp_path):
    record = _append(services, "credential.revoked", actor="a", subject="c1", outcome="success")
    with services.database.transaction() as session:
        session.execute(
            update(AuditRecord).where(AuditRecord.seq == record.seq).values(actor="mallory")
        )
    sink = _sink(tmp_path, receiver.port, version="v2c", min_severity=10)
    forwarder = _forwarder(services, {"nms": sink})
    _forward_all(forwarder)
    forwarder.close()
    [note] = receiver.wait_for(1)
    assert note[TRAP_OID] == "OID: SIGNET-MIB::signetAuditIntegrityViolation"
    assert note["SIGNET-MIB::signetTrapEventSeq.0"] == f"Counter64: {record.seq}"
    assert note["SIGNET-MIB::signetTrapEventIntegrity.0"] == "INTEGER: hashMismatch(2)"
    assert note["SIGNET-MIB::signetTrapEventSeverity.0"] == "INTEGER: 10"


def test_hsm_down_and_back_as_notifications(services, softhsm, receiver, tmp_path):
    """The token's directory taken away: the forwarder's real probe fails, signetHsmDown goes
    out with the reason; put back, signetHsmUp."""
    forwarder = _forwarder(services, {"nms": _sink(tmp_path, receiver.port, inform=True)})
    _forward_all(forwarder)  # the trail so far
    hsm_outage_round(forwarder, services, softhsm)
    forwarder.close()
    with services.database.transaction(read_only=True) as session:
        head = session.execute(select(AuditRecord.seq).order_by(AuditRecord.seq.desc())).first()
    down, up = receiver.wait_for(head[0] + 2)[-2:]
    assert down[TRAP_OID] == "OID: SIGNET-MIB::signetHsmDown"
    assert down["SIGNET-MIB::signetHsmStatus.0"] == "INTEGER: down(2)"
    assert "signet-test" in down["SIGNET-MIB::signetHsmReason.0"]
    assert down["SIGNET-MIB::signetTrapEventSeq.0"] == "Counter64: 0"
    assert down["SIGNET-MIB::signetTrapEventIntegrity.0"] == "INTEGER: unchained(4)"
    assert up[TRAP_OID] == "OID: SIGNET-MIB::signetHsmUp"
    assert up["SIGNET-MIB::signetHsmStatus.0"] == "INTEGER: up(1)"


def test_certificates_near_expiry_as_notifications(services, receiver, tmp_path):
    """With a warning window of ten years the local CA's certificate and a signer's are near
    expiry: one signetCertificateNearExpiry each, with role, subject and days left."""
    from tests.integration.csc_http import enrol_alice

    enrol_alice(services, "ec-p256")
    sink = _sink(tmp_path, receiver.port, version="v2c", min_severity=6)
    forwarder = _forwarder(services, {"nms": sink}, expiry_warning_days=3650)
    _forward_all(forwarder)
    forwarder.close()
    receiver.wait_for(2)
    notes = receiver.wait_for(0)
    expiring = [n for n in notes if n[TRAP_OID].endswith("signetCertificateNearExpiry")]
    roles = sorted(n["SIGNET-MIB::signetTrapCertRole.0"] for n in expiring)
    assert roles == ["INTEGER: ca(1)", "INTEGER: signer(3)"]
    signer = next(n for n in expiring if "signer" in n["SIGNET-MIB::signetTrapCertRole.0"])
    assert "alice" in signer["SIGNET-MIB::signetTrapCertSubject.0"].lower()
    days = int(signer["SIGNET-MIB::signetTrapCertDaysLeft.0"].split()[1])
    assert 700 <= days <= 731
    assert signer["SIGNET-MIB::signetTrapCertNotAfter.0"].startswith("STRING: 20")


def test_v3_trap_from_an_unknown_engine_is_dropped(services, receiver, tmp_path):
    _append(services, "credential.revoked", actor="a", subject="c1", outcome="success")
    stranger = _sink(tmp_path, receiver.port, engine_id="80000000010a0b0c")
    forwarder = _forwarder(services, {"stranger": stranger, "nms": _sink(tmp_path, receiver.port)})
    _forward_all(forwarder)
    forwarder.close()
    with services.database.transaction(read_only=True) as session:
        head = session.execute(select(AuditRecord.seq).order_by(AuditRecord.seq.desc())).first()
    # the stranger's traps were sent first; snmptrapd logged only the known engine's
    notes = receiver.wait_for(head[0])
    assert len(receiver.lines()) == len(notes) == head[0]
    assert {n["SIGNET-MIB::signetTrapEventSeq.0"] for n in notes} == {
        f"Counter64: {seq}" for seq in range(1, head[0] + 1)
    }


def test_a_missing_secret_names_the_setting_not_the_value(services, tmp_path, caplog):
    _append(services, "credential.revoked", actor="a", subject="c1", outcome="success")
    sink = _sink(tmp_path, 56499, inform=True)
    (tmp_path / "auth").write_text("")
    forwarder = _forwarder(services, {"nms": sink})
    forwarder.run_once()
    forwarder.close()
    assert "events.sinks.nms.auth_passphrase" in caplog.text
    assert PRIV_PASSPHRASE not in caplog.text
    assert _cursor(services, "nms") == 0


def test_settings_name_what_is_wrong() -> None:
    def refused(sink: dict) -> str:
        with pytest.raises(ValueError) as error:
            EventsSettings(sinks={"nms": sink})
        return str(error.value)

    assert "name the secret's source" in refused(
        {"type": "snmp", "host": "h", "version": "v2c", "community": "public"}
    )
    assert "engine_id" in refused(
        {
            "type": "snmp",
            "host": "h",
            "user": "u",
            "auth_passphrase": "env:A",
            "priv_passphrase": "env:B",
        }
    )
    assert 'expected "syslog" or "snmp"' in refused({"type": "snmpv3", "host": "h"})
    with pytest.raises(ValueError, match=r"events.sinks.<name>\] with type = \"snmp\""):
        Settings(database={"url": "sqlite://"}, snmp={"targets": []})
