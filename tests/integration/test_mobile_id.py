"""Mobile ID end to end over real HTTP (gunicorn), on each engine: a phone registers with the
activation code (the `signet-mobile` CLI), authorize answers pending, the phone approves or
denies exactly what it is shown, authorizeCheck gives one SAD, and the signature verifies;
deny, timeout, replays, a forged device row, a tampered request row and parallel checks are
refused and audited."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import select, update

from signet.mobile import Device, MobileError
from signet.mobile.protocol import approval_bytes
from signet.sam.mobile import spki_b64
from signet.signing import admin
from signet.store import AuditRecord, Credential, MobileDevice, MobileRequest
from tests.helpers import activation_code_in_mail, port_in, signet_server

PASSWORD = "correct horse battery"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
PIN = "482916"


def my_port() -> int:
    return port_in(range(56700, 56750))  # this test's own ports


def events(services, name):
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.details).where(AuditRecord.event == name).order_by(AuditRecord.seq)
        ).all()
    return [json.loads(r.details) for r in rows]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Signer:
    """The CSC client side: Alice's login, authorize, authorizeCheck, signHash."""

    def __init__(self, url: str):
        self.url, self.session = url, requests.Session()
        login = self.session.post(f"{url}/csc/v2/auth/login", auth=("alice", PASSWORD), timeout=30)
        assert login.status_code == 200, login.text
        self.session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def post(self, method, body):
        return self.session.post(f"{self.url}/csc/v2/{method}", json=body, timeout=30)

    def authorize(self, credential_id, digests, labels=("contract.pdf",)):
        answer = self.post(
            "credentials/authorize",
            {
                "credentialID": credential_id,
                "numSignatures": len(digests),
                "hashes": [b64(d) for d in digests],
                "hashAlgorithmOID": SHA256,
                "signet_labels": list(labels),
                "description": "Lease",
            },
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "pending" and "SAD" not in body, body
        return body["authorizationID"]

    def check(self, credential_id, authorization_id):
        return self.post(
            "credentials/authorizeCheck",
            {"credentialID": credential_id, "authorizationID": authorization_id},
        )


def mobile_cli(*args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "signet.mobile", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def mobile(services, settings_env, tmp_path, request):
    """Alice, a qualified-policy Mobile ID credential (pending), and a Signet server."""
    admin.add_user(
        services,
        "alice",
        password=PASSWORD,
        display_name="Alice",
        email="alice@example.test",
        actor="test",
    )
    view = admin.create_credential(
        services, "alice", key="ec-p256", actor="test", activation="mobile_id", policy="qualified"
    )
    env = dict(settings_env)
    env.update(getattr(request, "param", {}))
    with signet_server(env={**os.environ, **env}, workers=2, port=my_port) as url:
        yield url, view.credential_id, tmp_path / "device.json"


def register_with_cli(services, url, credential_id, device_file):
    code = activation_code_in_mail(services.settings.notify.maildir, credential_id)
    done = mobile_cli(
        "register",
        "--server",
        url,
        "--credential",
        credential_id,
        "--label",
        "Alice's phone",
        "--device-file",
        str(device_file),
        stdin=f"{code}\n{PIN}\n{PIN}\n",
    )
    assert done.returncode == 0, done.stderr
    return Device.load(device_file, PIN)


def test_register_approve_and_sign(services, mobile):
    url, credential_id, device_file = mobile
    device = register_with_cli(services, url, credential_id, device_file)
    (registered,) = events(services, "mobile.registered")
    assert registered["device"] == device.device_id and registered["label"] == "Alice's phone"
    with services.database.transaction(read_only=True) as session:
        assert session.get(Credential, credential_id).status == "active"
    with pytest.raises(MobileError, match="wrong PIN"):
        Device.load(device_file, "000000")

    signer = Signer(url)
    digests = [hashlib.sha256(b"lease").digest(), hashlib.sha256(b"annex").digest()]
    # the phone waits (long-poll); the request reaches it as soon as it is made
    waited: dict = {}
    poll = threading.Thread(
        target=lambda: waited.update(found=device.pending(wait=20), at=time.monotonic())
    )
    poll.start()
    time.sleep(1)
    asked = time.monotonic()
    authorization_id = signer.authorize(credential_id, digests, labels=("lease.pdf", "annex.pdf"))
    poll.join(30)
    assert [r.id for r in waited["found"]] == [authorization_id]
    assert waited["at"] - asked < 5

    pending = signer.check(credential_id, authorization_id)
    assert pending.status_code == 200 and pending.json()["status"] == "pending"

    listed = mobile_cli("pending", "--device-file", str(device_file), stdin=f"{PIN}\n")
    assert listed.returncode == 0, listed.stderr
    assert "lease.pdf, annex.pdf" in listed.stdout and "signatures  2" in listed.stdout
    shown = waited["found"][0]
    assert shown.raw["fingerprint"] in listed.stdout

    # a signature over other hashes is refused, and recorded
    forged = dict(shown.raw, hashes=[base64.urlsafe_b64encode(b"\0" * 32).decode().rstrip("=")])
    refused = requests.post(
        f"{url}/mobile/v1/approve",
        json={
            "deviceID": device.device_id,
            "requestID": authorization_id,
            "signature": device._sign(approval_bytes(forged, "approve")),
        },
        timeout=30,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert events(services, "mobile.signature_invalid")

    approved = mobile_cli(
        "approve", authorization_id, "--device-file", str(device_file), stdin=f"{PIN}\n"
    )
    assert approved.returncode == 0, approved.stderr
    assert f"request {authorization_id}: approved" in approved.stdout
    # the same approval sent again is a replay
    replayed = requests.post(
        f"{url}/mobile/v1/approve",
        json={
            "deviceID": device.device_id,
            "requestID": authorization_id,
            "signature": device._sign(approval_bytes(shown.raw, "approve")),
        },
        timeout=30,
    )
    assert replayed.status_code == 409, replayed.text
    assert events(services, "mobile.replay")

    answer = signer.check(credential_id, authorization_id)
    assert answer.status_code == 200, answer.text
    sad = answer.json()["SAD"]
    authorized = events(services, "credential.authorized")[-1]
    assert authorized["mobile_request"] == authorization_id
    assert authorized["eidas"] == "substantial" and authorized["aal"] == 2
    assert authorized["auth_methods"] == ["pwd", "mobile_id"]
    again = signer.check(credential_id, authorization_id)
    assert (
        again.status_code == 400
        and "one request gives one SAD" in again.json()["error_description"]
    )

    signed = signer.post(
        "signatures/signHash",
        {
            "credentialID": credential_id,
            "SAD": sad,
            "hashes": [b64(d) for d in digests],
            "hashAlgorithmOID": SHA256,
            "signAlgo": ECDSA_SHA256,
        },
    )
    assert signed.status_code == 200, signed.text
    info = signer.post("credentials/info", {"credentialID": credential_id, "certInfo": True})
    cert = x509.load_der_x509_certificate(base64.b64decode(info.json()["cert"]["certificates"][0]))
    for digest, signature in zip(digests, signed.json()["signatures"], strict=True):
        cert.public_key().verify(
            base64.b64decode(signature),
            digest,
            ec.ECDSA(utils.Prehashed(hashes.SHA256())),
        )


@pytest.mark.parametrize(
    "mobile", [{"SIGNET_SAM__MOBILE_REQUEST_LIFETIME_SECONDS": "6"}], indirect=True
)
def test_deny_and_timeout(services, mobile):
    url, credential_id, device_file = mobile
    device = register_with_cli(services, url, credential_id, device_file)
    signer = Signer(url)
    denied_id = signer.authorize(credential_id, [hashlib.sha256(b"one").digest()])
    (request,) = device.pending()
    denied = mobile_cli("deny", denied_id, "--device-file", str(device_file), stdin=f"{PIN}\n")
    assert denied.returncode == 0, denied.stderr
    assert f"request {denied_id}: denied" in denied.stdout
    refused = signer.check(credential_id, denied_id)
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    assert [e["request"] for e in events(services, "mobile.denied")] == [denied_id]
    with pytest.raises(MobileError) as late:  # a deny cannot be turned into an approval
        device.approve(request)
    assert late.value.status == 409

    expired_id = signer.authorize(credential_id, [hashlib.sha256(b"two").digest()])
    (request,) = device.pending()
    time.sleep(7)
    assert device.pending() == []
    gone = signer.check(credential_id, expired_id)
    assert gone.status_code == 400 and "expired" in gone.json()["error_description"]
    assert [e["request"] for e in events(services, "mobile.expired")] == [expired_id]
    with pytest.raises(MobileError) as late:
        device.approve(request)
    assert late.value.status == 409
    with services.database.transaction(read_only=True) as session:
        states = dict(session.execute(select(MobileRequest.id, MobileRequest.state)).all())
    assert states == {denied_id: "denied", expired_id: "expired"}
    assert [e["reason"][:30] for e in events(services, "mobile.replay")] == [
        "The request is denied already:",
        "The request is expired already",
    ]


def test_forged_and_tampered_rows_are_refused(services, mobile):
    url, credential_id, device_file = mobile
    device = register_with_cli(services, url, credential_id, device_file)
    signer = Signer(url)
    digest = hashlib.sha256(b"deed").digest()
    authorization_id = signer.authorize(credential_id, [digest])
    (request,) = device.pending()

    # the DBA changes the hashes the phone is shown and approves them
    other = base64.urlsafe_b64encode(hashlib.sha256(b"other").digest()).decode().rstrip("=")
    with services.database.transaction() as session:
        session.execute(
            update(MobileRequest).where(MobileRequest.id == authorization_id).values(hashes=other)
        )
    assert device.pending() == []  # a request whose MAC fails is not shown
    with pytest.raises(MobileError) as refused:
        device.decide(dict(request.raw, hashes=[other]), "approve")
    assert refused.value.status == 403
    # nor does the request give a SAD when set to approved by SQL
    with services.database.transaction() as session:
        session.execute(
            update(MobileRequest)
            .where(MobileRequest.id == authorization_id)
            .values(hashes=base64.urlsafe_b64encode(digest).decode().rstrip("="), state="approved")
        )
    check = signer.check(credential_id, authorization_id)
    assert check.status_code == 403, check.text
    violations = events(services, "integrity.violation")
    assert len(violations) == 2

    # the DBA puts her own key in the device row: nothing the key signs is accepted
    attacker = ec.generate_private_key(ec.SECP256R1())
    with services.database.transaction() as session:
        session.execute(
            update(MobileDevice)
            .where(MobileDevice.id == device.device_id)
            .values(public_key=spki_b64(attacker.public_key()))
        )
    forged = Device(url, credential_id, device.device_id, attacker)
    with pytest.raises(MobileError) as refused:
        forged.pending()
    assert refused.value.status == 403
    answer = signer.post(
        "credentials/authorize",
        {
            "credentialID": credential_id,
            "numSignatures": 1,
            "hashes": [b64(digest)],
            "hashAlgorithmOID": SHA256,
        },
    )
    assert answer.status_code == 403 and answer.json()["error"] == "access_denied"
    assert len(events(services, "integrity.violation")) == 4


def test_parallel_checks_mint_one_sad(services, mobile):
    url, credential_id, device_file = mobile
    device = register_with_cli(services, url, credential_id, device_file)
    signer = Signer(url)
    authorization_id = signer.authorize(credential_id, [hashlib.sha256(b"x").digest()])
    (request,) = device.pending()
    device.approve(request)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: signer.check(credential_id, authorization_id), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 7, [a.text for a in answers]
    assert len(events(services, "credential.authorized")) == 1
    assert len(events(services, "mobile.replay")) == 7
