"""SMS one-time codes end to end, through gunicorn, on each database engine and each gateway
(a real SMPP SMSC and a real HTTP gateway on loopback): enrolment with a phone number, the
activation code and the signing code by SMS, the code bound to the hashes, the signature
verified; a gateway down or silent answers 503 with no SAD and an audit record."""

import base64
import hashlib
import json
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256
from sqlalchemy import func, select

from signet.errors import InvalidRequest
from signet.signing import admin
from signet.store import AuditRecord, SignatureActivation
from tests.helpers import activate_over_api, signet_server
from tests.integration.csc_http import PASSWORD, SHA, Csc, LiveClient, error_of
from tests.sms_peers import SMPP_PASSWORD, SYSTEM_ID, code_in, free_tcp_port, http_gateway, smsc

PHONE, MASKED = "+32 470 12 34 56", "+32******456"
ACTIVATION = re.compile(r"\b([0-9A-Z]{5}-[0-9A-Z]{5})\b")


@dataclass
class Node:
    kind: str
    services: Any
    url: str
    peer: Any
    stack: ExitStack
    secret_file: Any = None

    def texts(self) -> list[str]:
        if self.kind == "smpp":
            return self.peer.texts()
        return [json.loads(r["body"])["text"] for r in self.peer.requests]

    def silent(self) -> None:
        """The gateway accepts connections and answers nothing."""
        if self.kind == "smpp":
            self.peer.command("silent")
            self.peer.command("drop")  # the kept bind goes; the next bind hears nothing
        else:
            self.peer.delay = 5

    def down(self) -> None:
        """The gateway is gone: connections are refused."""
        if self.kind == "smpp":
            self.peer.process.kill()
            self.peer.process.wait()
        else:
            self.stack.close()


@pytest.fixture(params=["smpp", "http"])
def node(request, settings_env, tmp_path, monkeypatch):
    from signet.config import load_settings
    from signet.signing import Services
    from signet.signing.admin import initialise

    with ExitStack() as stack:
        gateway_stack = stack.enter_context(ExitStack())
        sms = {"TIMEOUT_SECONDS": "2", "SENDER": "Signet"}
        if request.param == "smpp":
            peer = gateway_stack.enter_context(smsc(tmp_path))
            secret = tmp_path / "smpp.secret"
            secret.write_text(SMPP_PASSWORD)
            sms.update(
                TYPE="smpp",
                URL=f"smpp://127.0.0.1:{peer.port}",
                SYSTEM_ID=SYSTEM_ID,
                SECRET=f"file:{secret}",
                BIND="transceiver",
            )
        else:
            peer = gateway_stack.enter_context(http_gateway())
            monkeypatch.setenv("SMS_TOKEN", "tok-test")
            sms.update(
                TYPE="http",
                URL=peer.url,
                AUTH="bearer",
                SECRET="env:SMS_TOKEN",
                SUCCESS_FIELD="status",
                SUCCESS_PATTERN="queued",
                MESSAGE_ID_FIELD="id",
            )
        for key, value in sms.items():
            monkeypatch.setenv(f"SIGNET_NOTIFY__SMS__{key}", value)
        services = Services(load_settings())
        initialise(services)
        url = stack.enter_context(signet_server(workers=1, port=free_tcp_port))
        secret_file = tmp_path / "smpp.secret" if request.param == "smpp" else None
        yield Node(request.param, services, url, peer, gateway_stack, secret_file)
        services.database.dispose()


def audit(services) -> list[tuple[str, str, dict]]:
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.event, AuditRecord.outcome, AuditRecord.details).order_by(
                AuditRecord.seq
            )
        ).all()
    return [(event, outcome, json.loads(details)) for event, outcome, details in rows]


def enrol_alice_by_sms(node: Node) -> str:
    """Alice with a phone and no e-mail; an sms_otp credential she activates with the code
    the gateway carried, over the API."""
    admin.add_user(
        node.services, "alice", password=PASSWORD, display_name="Alice", email=None,
        phone=PHONE, actor="test",
    )  # fmt: skip
    view = admin.create_credential(
        node.services, "alice", key="ec-p256", activation="sms_otp", actor="test"
    )
    assert view.activation_sent_to == MASKED
    (text,) = node.texts()
    assert view.credential_id in text
    activate_over_api(
        node.url, "alice", PASSWORD, view.credential_id, ACTIVATION.search(text).group(1)
    )
    return view.credential_id


def sads(services) -> int:
    with services.database.transaction(read_only=True) as session:
        return session.execute(select(func.count()).select_from(SignatureActivation)).scalar_one()


def test_sms_code_authorizes_a_signature_that_verifies(node):
    credential = enrol_alice_by_sms(node)
    csc = Csc(LiveClient(node.url), node.services)
    csc.login()
    info = csc.post(
        "credentials/info", {"credentialID": credential, "certInfo": True, "authInfo": True}
    )
    assert info.status_code == 200, info.json
    (factor,) = info.json["auth"]["objects"]
    assert factor["type"] == "OTP" and factor["generator"] == "sms"
    assert MASKED in factor["description"] and "470123" not in json.dumps(info.json)
    cert = x509.load_der_x509_certificate(base64.b64decode(info.json["cert"]["certificates"][0]))

    digest = hashlib.sha256(b"the contract").digest()
    request = {
        "credentialID": credential,
        "numSignatures": 1,
        "hashes": [base64.b64encode(digest).decode()],
        "hashAlgorithmOID": SHA["sha256"],
        "signet_labels": ["contract.pdf"],
    }
    sent = csc.post("credentials/sendOTP", request)
    assert sent.status_code == 204, sent.json
    text = node.texts()[-1]
    code = code_in(text)
    assert "contract.pdf" in text and "1 signature" in text
    # The fingerprint the e-mail shows: the first 8 bytes of SHA-256 over the hashes.
    fingerprint = hashlib.sha256(request["hashes"][0].encode()).hexdigest()[:16]
    assert "-".join(fingerprint[i : i + 4] for i in range(0, 16, 4)) in text

    # The code is bound to the request: other hashes are refused, and it is void after.
    other = {**request, "hashes": [base64.b64encode(hashlib.sha256(b"x").digest()).decode()]}
    refused = csc.post(
        "credentials/authorize", {**other, "authData": [{"id": "OTP", "value": code}]}
    )
    assert "another request" in error_of(refused, 400, "invalid_otp")
    if node.kind == "smpp":
        # receipts are read by the process holding the bind when it next sends: let the SMSC
        # send the first code's receipts (50 ms after each part) before the second code goes
        node.peer.wait_for("receipt_sent", count=len(node.peer.records("submit_sm")))
    csc.post("credentials/sendOTP", request)
    code = code_in(node.texts()[-1])
    authorized = csc.post(
        "credentials/authorize", {**request, "authData": [{"id": "OTP", "value": code}]}
    )
    assert authorized.status_code == 200, authorized.json
    signed = csc.sign(credential, authorized.json["SAD"], [digest], "1.2.840.10045.4.3.2")
    assert signed.status_code == 200, signed.json
    signature = base64.b64decode(signed.json["signatures"][0])
    cert.public_key().verify(signature, digest, ec.ECDSA(utils.Prehashed(SHA256())))

    events = audit(node.services)
    sent_records = [d for e, _, d in events if e == "otp.sent"]
    assert len(sent_records) == 2
    assert all(d["channel"] == "sms" and d["to"] == MASKED for d in sent_records)
    assert sent_records[0]["gateway"].startswith("SMPP" if node.kind == "smpp" else "HTTP")
    assert sent_records[0]["message_ids"] and sent_records[0]["bound"] is True
    (activation,) = [d for e, _, d in events if e == "credential.activation_sent"]
    assert activation["channel"] == "sms" and activation["to"] == MASKED
    assert "470123" not in json.dumps([d for _, _, d in events])
    if node.kind == "smpp":  # transceiver: receipts of earlier messages came with later ones
        receipts = [(e, o) for e, o, _ in events if e == "sms.delivery_receipt"]
        assert receipts and set(receipts) == {("sms.delivery_receipt", "success")}


def test_gateway_silent_or_down_gives_503_no_sad_and_an_audit_record(node):
    credential = enrol_alice_by_sms(node)
    csc = Csc(LiveClient(node.url), node.services)
    csc.login()
    digest = base64.b64encode(hashlib.sha256(b"doc").digest()).decode()
    request = {"credentialID": credential, "numSignatures": 1, "hashes": [digest]}
    if node.kind == "smpp":  # the password rotated at the SMSC but not here: the bind is refused
        node.secret_file.write_text("wrong")
        node.peer.command("drop")
        refused = csc.post("credentials/sendOTP", request)
        assert "ESME_RINVPASWD); check notify.sms.secret" in error_of(
            refused, 503, "temporarily_unavailable"
        )
    for failure in (node.silent, node.down):
        failure()
        started = time.monotonic()
        answer = csc.post("credentials/sendOTP", request)
        assert time.monotonic() - started < 15  # bounded: never a hang
        description = error_of(answer, 503, "temporarily_unavailable")
        assert "could not be delivered by SMS" in description
        assert ("SMPP 127.0.0.1" if node.kind == "smpp" else "HTTP gateway") in description
        assert ("no answer" if failure == node.silent else "unreachable") in description
        assert "470123" not in description
    # No code reached anyone: a guess is refused and no SAD exists.
    guessed = csc.post(
        "credentials/authorize", {**request, "authData": [{"id": "OTP", "value": "000000"}]}
    )
    assert guessed.status_code == 400 and "SAD" not in (guessed.json or {})
    assert sads(node.services) == 0
    failed = [(o, d) for e, o, d in audit(node.services) if e == "otp.delivery_failed"]
    assert len(failed) == (3 if node.kind == "smpp" else 2)
    assert all(o == "failure" and d["channel"] == "sms" and d["to"] == MASKED for o, d in failed)


def test_enrolment_refuses_a_bad_number_or_a_missing_one(node):
    with pytest.raises(InvalidRequest, match="not international"):
        admin.add_user(
            node.services, "bob", password=PASSWORD, display_name=None, email=None,
            phone="0470 12 34 56", actor="test",
        )  # fmt: skip
    admin.add_user(
        node.services, "carol", password=PASSWORD, display_name=None,
        email="carol@example.test", actor="test",
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match="no phone number.*--phone"):
        admin.create_credential(
            node.services, "carol", key="ec-p256", activation="sms_otp", actor="t"
        )
