"""Fixtures for the security tests: a user with an e-mailed-code credential, a small CSC client
on the Flask app, and the real Maildir the codes are delivered into."""

from __future__ import annotations

import base64
import hashlib
import json
import mailbox
import re
from email.message import Message

import pytest
from sqlalchemy import select

PASSWORD = "correct horse battery"
SHA256 = "2.16.840.1.101.3.4.2.1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def digests(*texts: str) -> list[str]:
    return [b64(hashlib.sha256(t.encode()).digest()) for t in texts]


def error_of(response, status: int, error: str = "invalid_request") -> str:
    assert response.status_code == status, (response.status_code, response.json)
    assert set(response.json) == {"error", "error_description"}, response.json
    assert response.json["error"] == error, response.json
    return response.json["error_description"]


def audit_events(services) -> list[tuple[str, dict]]:
    from signet.store import AuditRecord

    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.event, AuditRecord.details).order_by(AuditRecord.seq)
        ).all()
    return [(event, json.loads(details)) for event, details in rows]


def text_of(message: Message) -> str:
    """The mail's body as its reader sees it (transfer encoding undone)."""
    return message.get_payload(decode=True).decode()


class Csc:
    """A CSC client on the Flask test client; codes are read from the real Maildir."""

    def __init__(self, client, services, version: str = "v2") -> None:
        self.client, self.services, self.version = client, services, version
        self.token: str | None = None

    def post(self, method: str, json_body=None, **kw):
        headers = kw.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.client.post(
            f"/csc/{self.version}/{method}", json=json_body, headers=headers, **kw
        )

    def login(self, user: str = "alice", password: str = PASSWORD, address: str = "127.0.0.1"):
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        response = self.client.post(
            f"/csc/{self.version}/auth/login",
            headers={"Authorization": f"Basic {basic}"},
            environ_base={"REMOTE_ADDR": address},
        )
        if response.status_code == 200:
            self.token = response.json["access_token"]
        return response

    def mails(self) -> mailbox.Maildir:
        return mailbox.Maildir(self.services.settings.notify.maildir, create=True)

    def send_otp(self, credential_id: str, **request) -> Message:
        """sendOTP (with the request to come, if given); the one new mail it delivered."""
        seen = set(self.mails().keys())
        sent = self.post("credentials/sendOTP", {"credentialID": credential_id, **request})
        assert sent.status_code == 204, sent.json
        box = self.mails()
        (new,) = [box[key] for key in box.iterkeys() if key not in seen]
        return new

    @staticmethod
    def code_in(message: Message) -> str:
        found = re.search(r"^\s+(\d{6,8})\s*$", text_of(message), re.M)
        assert found, text_of(message)
        return found.group(1)

    def authorize(self, credential_id: str, code: str, **request):
        body = {"credentialID": credential_id, **request}
        if self.version == "v2":
            body["authData"] = [{"id": "OTP", "value": code}]
        else:
            body["OTP"] = code
        return self.post("credentials/authorize", body)


@pytest.fixture
def alice(services) -> str:
    """Alice, and her e-mailed-code credential's ID."""
    from tests.integration.csc_http import enrol_alice

    (credential_id,) = enrol_alice(services, "ec-p256")
    return credential_id


@pytest.fixture
def csc(client, services) -> Csc:
    return Csc(client, services)
