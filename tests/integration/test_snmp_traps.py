"""SIGNET-MIB notifications sent by signet.monitoring.traps reach a real snmptrapd (v2c and
v3 authPriv with SHA-256/AES, traps and informs) and decode there, by name, with the MIB."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from signet.config.snmp import SnmpSettings
from signet.monitoring.traps import TrapError, send
from tests.snmp_peers import (
    AUTH_PASSPHRASE,
    COMMUNITY,
    ENGINE_ID,
    PRIV_PASSPHRASE,
    USER,
    free_udp_port,
    snmptrapd,
    write_secret,
)


@pytest.fixture
def receiver(tmp_path: Path):  # type: ignore[no-untyped-def]
    with snmptrapd(tmp_path) as trap_receiver:
        yield trap_receiver


def _settings(tmp_path: Path, port: int, **target: object) -> SnmpSettings:
    secrets = {
        "community": write_secret(tmp_path, "community", COMMUNITY),
        "auth_passphrase": write_secret(tmp_path, "auth", AUTH_PASSPHRASE),
        "priv_passphrase": write_secret(tmp_path, "priv", PRIV_PASSPHRASE),
    }
    if target.get("version") == "v2c":
        credentials = {"community": secrets["community"]}
    else:
        credentials = {"user": USER, **secrets}
        del credentials["community"]
    return SnmpSettings(
        engine_id=ENGINE_ID,
        targets=[
            {"name": "nms", "host": "127.0.0.1", "port": port, "timeout_seconds": 2}
            | credentials
            | target
        ],
    )


@pytest.mark.parametrize(
    ("version", "inform", "how"),
    [
        ("v2c", False, f"TRAP2, SNMP v2c, community {COMMUNITY}"),
        ("v2c", True, f"INFORM, SNMP v2c, community {COMMUNITY}"),
        ("v3", False, f"TRAP2, SNMP v3, user {USER}, context "),
        ("v3", True, f"INFORM, SNMP v3, user {USER}, context "),
    ],
)
def test_hsm_down_decoded_field_by_field(receiver, tmp_path, version, inform, how) -> None:
    settings = _settings(tmp_path, receiver.port, version=version, inform=inform)
    send(
        "signetHsmDown",
        [("signetHsmStatus", 2), ("signetHsmReason", "token signet not found")],
        settings.targets[0],
        settings,
    )
    [note] = receiver.wait_for(1)
    assert note["how"] == how
    assert note["SNMPv2-MIB::snmpTrapOID.0"] == "OID: SIGNET-MIB::signetHsmDown"
    assert note["SIGNET-MIB::signetHsmStatus.0"] == "INTEGER: down(2)"
    assert note["SIGNET-MIB::signetHsmReason.0"] == "STRING: token signet not found"


def test_certificate_near_expiry_carries_every_object(receiver, tmp_path) -> None:
    settings = _settings(tmp_path, receiver.port, version="v3", inform=True)
    send(
        "signetCertificateNearExpiry",
        [
            ("signetTrapCertRole", 2),
            ("signetTrapCertSubject", "CN=Signet Test TSA,O=Signet"),
            ("signetTrapCertNotAfter", "2026-12-24T00:00:00Z"),
            ("signetTrapCertDaysLeft", -3),
        ],
        settings.targets[0],
        settings,
    )
    [note] = receiver.wait_for(1)
    assert note["SNMPv2-MIB::snmpTrapOID.0"] == "OID: SIGNET-MIB::signetCertificateNearExpiry"
    assert note["SIGNET-MIB::signetTrapCertRole.0"] == "INTEGER: tsa(2)"
    assert note["SIGNET-MIB::signetTrapCertSubject.0"] == "STRING: CN=Signet Test TSA,O=Signet"
    assert note["SIGNET-MIB::signetTrapCertNotAfter.0"] == "STRING: 2026-12-24T00:00:00Z"
    assert note["SIGNET-MIB::signetTrapCertDaysLeft.0"] == "INTEGER: -3 days"


def test_inform_with_a_wrong_passphrase_is_not_acknowledged(receiver, tmp_path) -> None:
    settings = _settings(tmp_path, receiver.port, version="v3", inform=True, retries=0)
    write_secret(tmp_path, "priv", "not-the-receivers-passphrase")
    with pytest.raises(TrapError, match="signetCredentialLocked to nms"):
        send(
            "signetCredentialLocked",
            [("signetTrapCredentialId", "c1")],
            settings.targets[0],
            settings,
        )
    assert receiver.lines() == []


def test_v3_trap_from_an_unknown_engine_is_dropped(receiver, tmp_path) -> None:
    settings = _settings(tmp_path, receiver.port, version="v3")
    other = settings.model_copy(update={"engine_id": "80000000010a0b0c"})
    send("signetHsmUp", [("signetHsmStatus", 1)], other.targets[0], other)
    send("signetHsmUp", [("signetHsmStatus", 1)], settings.targets[0], settings)
    [note] = receiver.wait_for(1)
    assert note["SNMPv2-MIB::snmpTrapOID.0"] == "OID: SIGNET-MIB::signetHsmUp"
    assert len(receiver.lines()) == 1


def test_a_missing_secret_names_the_setting_not_the_value(tmp_path) -> None:
    settings = _settings(tmp_path, 56499, version="v3", inform=True)
    (tmp_path / "auth").write_text("")
    with pytest.raises(TrapError) as refused:
        send("signetHsmUp", [("signetHsmStatus", 1)], settings.targets[0], settings)
    assert "snmp.targets[nms].auth_passphrase" in str(refused.value)
    assert PRIV_PASSPHRASE not in str(refused.value)


def test_settings_refuse_an_inline_secret_and_v3_traps_without_engine() -> None:
    with pytest.raises(ValueError, match="name the secret's source"):
        SnmpSettings(targets=[{"name": "a", "host": "h", "version": "v2c", "community": "public"}])
    with pytest.raises(ValueError, match="engine_id"):
        SnmpSettings(
            targets=[
                {
                    "name": "a",
                    "host": "h",
                    "user": "u",
                    "auth_passphrase": "env:A",
                    "priv_passphrase": "env:B",
                }
            ]
        )


def test_the_agents_notifier_never_waits_for_a_dead_receiver(receiver, tmp_path) -> None:
    from signet.monitoring.agent import Notifier

    live = _settings(tmp_path, receiver.port, version="v3", inform=True)
    dead = live.targets[0].model_copy(
        update={"name": "dead", "port": free_udp_port(), "retries": 1}
    )
    settings = live.model_copy(update={"targets": [dead, live.targets[0]]})
    notifier = Notifier(settings)
    started = time.monotonic()
    notifier("signetHsmUp", [("signetHsmStatus", 1)])
    assert time.monotonic() - started < 0.5
    # the dead receiver's inform times out (2 s x 2 tries), then the live one gets it
    [note] = receiver.wait_for(1, timeout=20)
    assert note["how"].startswith("INFORM, SNMP v3")
    assert note["SNMPv2-MIB::snmpTrapOID.0"] == "OID: SIGNET-MIB::signetHsmUp"
    notifier.close()
