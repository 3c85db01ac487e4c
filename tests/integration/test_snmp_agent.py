"""SIGNET-MIB through net-snmp's snmpd: `signet snmp-agent` (pass_persist) reads the real
database and probes the real SoftHSM token; snmpwalk (v2c and v3 authPriv) sees the status,
the counts after real signatures and refusals, and the certificates near expiry.
(Notifications come from the event forwarder: tests/integration/test_snmp_traps.py.)"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from signet.config import EventsSettings
from signet.events.forward import Forwarder
from signet.signing.forwarding import build_sink
from tests.integration.csc_http import Csc, enrol_alice
from tests.snmp_peers import (
    COMMUNITY,
    snmpd,
    snmptrapd,
    write_secret,
)


@pytest.fixture
def alice(services):
    (credential_id,) = enrol_alice(services, "ec-p256")
    return credential_id


def _agent_env(settings_env) -> dict[str, str]:
    return {
        **os.environ,
        **settings_env,
        "SIGNET_SNMP__REFRESH_SECONDS": "1",
        # every certificate of the test PKI (CA 10 years, signer 2) counts as near expiry
        "SIGNET_EVENTS__EXPIRY_WARNING_DAYS": "3650",
    }


def _wait_for(agent, name: str, expected: str, timeout: float = 20) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        values = agent.walk()
        if values.get(name) == expected or time.monotonic() > deadline:
            assert values.get(name) == expected, (name, values)
            return values
        time.sleep(0.5)


def test_walk_reports_status_counts_and_certificates(
    client, services, alice, settings_env, tmp_path
):
    csc = Csc(client, services)
    csc.login()
    digests = [hashlib.sha256(bytes([n])).digest() for n in range(3)]
    authorized = csc.authorize(alice, digests)
    assert authorized.status_code == 200, authorized.json
    signed = csc.sign(alice, authorized.json["SAD"], digests, "1.2.840.10045.4.3.2")
    assert signed.status_code == 200, signed.json
    for _ in range(2):  # two wrong one-time codes: refused, not yet locked
        assert csc.authorize(alice, digests, otp="000000").status_code == 400

    with snmpd(tmp_path, _agent_env(settings_env)) as agent:
        values = agent.walk()
        assert values["signetServiceStatus.0"] == "INTEGER: up(1)"
        assert values["signetHsmStatus.0"] == "INTEGER: up(1)"
        assert (
            values["signetHsmReason.0"] == 'STRING: ""' or values["signetHsmReason.0"] == "STRING: "
        )
        assert values["signetDatabaseStatus.0"] == "INTEGER: up(1)"
        assert (
            values["signetDatabaseEngine.0"] == f"STRING: {services.database.engine.dialect.name}"
        )
        assert values["signetHsmTokenLabel.0"] == "STRING: signet-test"
        assert values["signetSignaturesMade.0"] == "Counter64: 3"
        assert values["signetAuthorizationsRefused.0"] == "Counter64: 2"
        assert values["signetCredentialsLocked.0"] == "Gauge32: 0"
        # the local CA's certificate and alice's, soonest first (hers: 2 years)
        assert values["signetCertsNearExpiry.0"] == "Gauge32: 2"
        assert values["signetCertRole.1"] == "INTEGER: signer(3)"
        assert values["signetCertRole.2"] == "INTEGER: ca(1)"
        assert "alice" in values["signetCertSubject.1"].lower()
        assert 700 <= int(values["signetCertDaysLeft.1"].split()[1]) <= 731
        assert values["signetCertNotAfter.1"].startswith("STRING: 20")
        # the same through SNMPv3 authPriv
        v3 = agent.walk("SIGNET-MIB::signetStatistics", v3=True)
        assert v3["signetSignaturesMade.0"] == "Counter64: 3"

        # live: three more wrong codes lock the credential; the agent's next probe sees it
        for _ in range(3):
            csc.authorize(alice, digests, otp="000000")
        values = _wait_for(agent, "signetCredentialsLocked.0", "Gauge32: 1")
        assert values["signetAuthorizationsRefused.0"] == "Counter64: 5"

    # the lock, a real one, reaches an NMS as signetCredentialLocked through the forwarder
    with snmptrapd(tmp_path / "trapd") as receiver:
        events = EventsSettings(
            sinks={
                "nms": {
                    "type": "snmp",
                    "host": "127.0.0.1",
                    "port": receiver.port,
                    "version": "v2c",
                    "community": write_secret(tmp_path, "community", COMMUNITY),
                    "min_severity": 7,
                }
            }
        )
        whole = services.settings.model_copy(update={"events": events})
        forwarder = Forwarder(
            services.database,
            events,
            {"nms": build_sink("nms", events.sinks["nms"], whole, host="node-a")},
            node="node-a",
        )
        while forwarder.run_once():
            pass
        forwarder.close()
        [note] = receiver.wait_for(1)
    assert note["SNMPv2-MIB::snmpTrapOID.0"] == "OID: SIGNET-MIB::signetCredentialLocked"
    assert note["SIGNET-MIB::signetTrapCredentialId.0"] == f"STRING: {alice}"


def test_hsm_outage_is_seen(services, softhsm, settings_env, tmp_path):
    """The token's directory taken away (a lost mount) while snmpd serves: the agent's real
    PKCS#11 probe fails and the walk reads down with the reason; put back, the probe heals."""
    tokens = os.path.join(softhsm["dir"], "tokens")
    with snmpd(tmp_path, _agent_env(settings_env)) as agent:
        _wait_for(agent, "signetHsmStatus.0", "INTEGER: up(1)")
        os.rename(tokens, tokens + ".away")
        try:
            values = _wait_for(agent, "signetHsmStatus.0", "INTEGER: down(2)")
        finally:
            os.rename(tokens + ".away", tokens)
        assert values["signetServiceStatus.0"] == "INTEGER: down(2)"
        assert values["signetDatabaseStatus.0"] == "INTEGER: up(1)"
        assert "signet-test" in values["signetHsmReason.0"]
        _wait_for(agent, "signetHsmStatus.0", "INTEGER: up(1)")
