"""The appliance as its users meet it: HTTPS health, and a real signature through the CSC API
(login, list, sendOTP, OTP from the Maildir, authorize, signHash), verified against the
credential's certificate; and as its operators do: Signet's own events in their SIEM and NMS."""

import base64
import hashlib
import json
import re
import shlex
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

NAME = "signet.appliance.test"
BASE = f"https://{NAME}"
CURL = f"curl -sS --cacert /etc/signet/tls/signet.crt --resolve {NAME}:443:127.0.0.1"
USER, PASSWORD = "alice", "appliance-demo-password"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
SHA256_WITH_RSA_OID = "1.2.840.113549.1.1.11"
MAILDIR = "/var/lib/signet/mail/new"


def call(host, path, body=None, token=None, basic=None):
    """POST (or GET without body) through nginx, certificate verified; return (status, json)."""
    args = [*shlex.split(CURL), "-w", "\n%{http_code}"]
    if basic:
        args += ["-u", f"{basic[0]}:{basic[1]}"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-X", "POST", "-H", "Content-Type: application/json", "--data", json.dumps(body)]
    out = host.check_output(" ".join(shlex.quote(a) for a in [*args, BASE + path]))
    text, status = out.rsplit("\n", 1)
    return int(status), (json.loads(text) if text.strip() else None)


def test_health_200_through_https(host):
    status, report = call(host, "/health")
    assert status == 200, report
    assert report["checks"]["database"]["engine"] == "postgresql"
    assert report["checks"]["hsm"]["status"] == "ok"


def test_services_up(host):
    for unit in ("signet", "nginx", "postgresql@15-main", "rsyslog", "snmpd"):
        assert host.service(unit).is_running, unit


def test_service_sandboxed(host):
    assert host.check_output("systemctl show -p ProtectSystem --value signet") == "strict"


def newest_otp(host, before):
    """The code of the first OTP mail that arrived after `before` (the files already there)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        files = set(host.check_output(f"ls -1 {MAILDIR} 2>/dev/null || true").split())
        fresh = sorted(files - before)
        if fresh:
            mail = host.file(f"{MAILDIR}/{fresh[-1]}").content_string
            # The code is on a line of its own in the body, never in the Subject.
            assert not re.search(r"^Subject:.*\d{6}", mail, re.M), mail
            match = re.search(r"^    (\d{6,8})$", mail, re.M)
            assert match, mail
            return match.group(1)
        time.sleep(0.5)
    raise AssertionError(f"no OTP mail arrived in {MAILDIR}")


def test_real_signature_through_the_api(host):
    status, login = call(host, "/csc/v2/auth/login", body={}, basic=(USER, PASSWORD))
    if status == 404:
        pytest.xfail("the CSC API is not deployed in this build yet")
    assert status == 200, login
    token = login["access_token"]

    status, listing = call(host, "/csc/v2/credentials/list", {"credentialInfo": True}, token)
    assert status == 200, listing
    assert listing["credentialIDs"], "alice has no credentials (signet init --demo)"

    # The RSA credential, with its certificate from credentials/info.
    for credential_id in listing["credentialIDs"]:
        status, info = call(host, "/csc/v2/credentials/info",
                            {"credentialID": credential_id, "certificates": "chain"}, token)
        assert status == 200, info
        cert = x509.load_der_x509_certificate(base64.b64decode(info["cert"]["certificates"][0]))
        if isinstance(cert.public_key(), rsa.RSAPublicKey):
            break
    else:
        pytest.fail(f"no RSA credential among {listing['credentialIDs']}")

    digest = hashlib.sha256(b"signed by the Signet appliance scenario").digest()
    hashes_b64 = [base64.b64encode(digest).decode()]

    before = set(host.check_output(f"ls -1 {MAILDIR} 2>/dev/null || true").split())
    status, sent = call(host, "/csc/v2/credentials/sendOTP", {"credentialID": credential_id}, token)
    assert status in (200, 204), sent
    otp = newest_otp(host, before)

    status, authorized = call(host, "/csc/v2/credentials/authorize", {
        "credentialID": credential_id, "numSignatures": 1, "hashes": hashes_b64,
        "hashAlgorithmOID": SHA256_OID, "authData": [{"id": "OTP", "value": otp}],
    }, token)
    assert status == 200, authorized

    status, signed = call(host, "/csc/v2/signatures/signHash", {
        "credentialID": credential_id, "SAD": authorized["SAD"], "hashes": hashes_b64,
        "hashAlgorithmOID": SHA256_OID, "signAlgo": SHA256_WITH_RSA_OID,
    }, token)
    assert status == 200, signed
    signature = base64.b64decode(signed["signatures"][0])

    # Raises InvalidSignature if the HSM's signature does not match the certificate.
    cert.public_key().verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def test_wrong_otp_gets_no_sad(host):
    """A wrong OTP gets no SAD (the SAM does not activate the key on a guess). Bob's credential,
    so that repeated runs never lock the one the signature test uses."""
    status, login = call(host, "/csc/v2/auth/login", body={}, basic=("bob", PASSWORD))
    if status == 404:
        pytest.xfail("the CSC API is not deployed in this build yet")
    token = login["access_token"]
    _, listing = call(host, "/csc/v2/credentials/list", {}, token)
    digest = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    status, refused = call(host, "/csc/v2/credentials/authorize", {
        "credentialID": listing["credentialIDs"][0], "numSignatures": 1, "hashes": [digest],
        "hashAlgorithmOID": SHA256_OID, "authData": [{"id": "OTP", "value": "000000"}],
    }, token)
    assert status in (400, 401, 403), refused
    assert "SAD" not in (refused or {})


SIGNET_TRAP_OBJECTS = ".1.3.6.1.4.1.32473.1.4.1"


def forwarded(host):
    """The JSON bodies the stand-in SIEM received (RFC 5424 messages, one a line)."""
    text = host.file("/var/log/standin-siem.log").content_string
    return [json.loads(line[line.index(' {"actor"') + 1 :]) for line in text.splitlines()]


def test_signets_own_events_reach_the_siem_and_the_nms(host):
    """A refused login made now reaches the SIEM (syslog over TCP, JSON) and the NMS (a v2c
    inform), sent by Signet's event forwarder; the SIEM holds the whole trail from its first
    record, each linking to the one before."""
    assert host.service("signet-events").is_running
    status, _ = call(host, "/csc/v2/auth/login", body={}, basic=("mallory", "a-guess"))
    assert status in (400, 401), status
    deadline = time.time() + 60
    while time.time() < deadline:
        events = forwarded(host)
        if any(e["event"] == "login.failed" and e["subject"] == "mallory" for e in events):
            break
        time.sleep(1)
    trail = {e["seq"]: e for e in events if e["kind"] == "audit"}  # at least once: dedupe
    seqs = sorted(trail)
    assert seqs == list(range(1, seqs[-1] + 1)), "a gap in the forwarded trail"
    for seq in seqs[1:]:
        assert trail[seq]["prev_hash"] == trail[seq - 1]["record_hash"], seq
        assert trail[seq]["integrity"] == "chained", trail[seq]
    names = {e["event"] for e in trail.values()}
    assert {"service.started", "signature.created", "login.failed"} <= names, names
    # The forwarder probes the HSM as signet.service uses it (the token's groups and paths):
    # a healthy HSM is never reported down.
    assert not [e for e in events if e["event"] == "hsm.unreachable"], "a false HSM alarm"

    while time.time() < deadline:
        notes = [
            line for line in host.file("/var/log/standin-nms.log").content_string.splitlines()
            if line.startswith("NOTE ")
        ]
        if any("login.failed" in line for line in notes):
            break
        time.sleep(1)
    refused = [line for line in notes if "login.failed" in line]
    assert refused, notes[-5:]
    # numeric OIDs (the stand-in loads no MIB): signetTrapEventName, signetTrapEventSeq
    assert re.search(rf'{SIGNET_TRAP_OBJECTS}\.6\.0 = STRING: "?login\.failed', refused[-1])
    assert f"{SIGNET_TRAP_OBJECTS}.7.0 = Counter64: " in refused[-1]
