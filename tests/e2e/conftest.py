"""A real Signet under gunicorn (2 workers), on SQLite or PostgreSQL, with a real SMTP server
(aiosmtpd, STARTTLS and AUTH) receiving the one-time passwords."""

from __future__ import annotations

import os
import re
import ssl
import threading
import time
import uuid
from email import message_from_bytes

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import create_engine, text

from tests.helpers import (
    ACTIVATION_CODE,
    activate_over_api,
    free_port,
    self_signed_tls,
    signet_cli,
    signet_server,
)

PASSWORD = "e2e password"
SMTP_USER, SMTP_PASSWORD = "signet", "smtp-secret"


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(
                (envelope.rcpt_tos, message_from_bytes(envelope.content), session.authenticated)
            )
        return "250 OK"

    def activation_code_for(self, credential_id: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for _, msg, _auth in reversed(self.messages):
                    body = msg.get_payload(decode=True).decode()
                    found = re.search(ACTIVATION_CODE, body, re.M)
                    if credential_id in body and found:
                        return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no activation mail for {credential_id}")

    def code_for(self, credential_id: str, after: int, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for _, msg, _auth in self.messages[after:]:
                    body = msg.get_payload(decode=True).decode()
                    if credential_id in body:
                        return re.search(r"^\s+(\d{6,8})\s*$", body, re.M).group(1)
            time.sleep(0.05)
        raise AssertionError(f"no OTP mail for {credential_id}")


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smtp")
    cert, key = self_signed_tls(tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        server_hostname="localhost",
    )
    controller.start()
    password_file = tmp / "smtp.password"
    password_file.write_text(SMTP_PASSWORD)
    yield {"port": port, "inbox": inbox, "ca_file": str(cert), "password_file": str(password_file)}
    controller.stop()


class Server:
    def __init__(self, url: str, env: dict[str, str], inbox: Inbox) -> None:
        self.url, self.env, self.inbox = url, env, inbox

    def login(self, user: str, version: str = "v2") -> requests.Session:
        session = requests.Session()
        response = session.post(
            f"{self.url}/csc/{version}/auth/login", auth=(user, PASSWORD), timeout=30
        )
        assert response.status_code == 200, response.text
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return session


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, softhsm, smtp_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    pg_admin = os.environ.get("SIGNET_TEST_PG_URL")
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp / 'signet.db'}"
    else:
        if not pg_admin:
            if os.environ.get("CI"):
                pytest.fail("SIGNET_TEST_PG_URL unset in CI: run through `make test`")
            pytest.skip("needs SIGNET_TEST_PG_URL (make test sets it)")
        name = f"signet_e2e_{uuid.uuid4().hex[:10]}"
        admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        db_url = pg_admin.rsplit("/", 1)[0] + "/" + name
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env.update(
        {
            # Certificates name the node's CRL: it must be this server's address.
            "SIGNET_WEB__BASE_URL": f"http://127.0.0.1:{port}",
            "SIGNET_DATABASE__URL": db_url,
            "SIGNET_HSM__MODULE": softhsm["module"],
            "SIGNET_HSM__TOKEN_LABEL": softhsm["token_label"],
            "SIGNET_HSM__PIN_FILE": softhsm["pin_file"],
            "SIGNET_HSM__PIN_ENV": "",
            "SIGNET_CA__OPTIONS": '{"key_label": "e2e-ca-' + uuid.uuid4().hex[:8] + '"}',
            "SIGNET_NOTIFY__EMAIL_BACKEND": "smtp",
            "SIGNET_NOTIFY__SMTP__HOST": "localhost",
            "SIGNET_NOTIFY__SMTP__PORT": str(smtp_server["port"]),
            "SIGNET_NOTIFY__SMTP__SECURITY": "starttls",
            "SIGNET_NOTIFY__SMTP__USERNAME": SMTP_USER,
            "SIGNET_NOTIFY__SMTP__PASSWORD_FILE": smtp_server["password_file"],
            "SIGNET_NOTIFY__SMTP__CA_FILE": smtp_server["ca_file"],
            "SIGNET_NOTIFY__SMTP__SENDER": "signet@localhost",
            "SIGNET_AUDIT__CHECKPOINT_FILE": str(tmp / "audit-checkpoints.jsonl"),
            "SOFTHSM2_CONF": softhsm["conf"],
        }
    )
    assert signet_cli("init", env=env).returncode == 0
    for user in ("alice", "bob"):
        made = signet_cli(
            "users",
            "add",
            user,
            "--email",
            f"{user}@example.test",
            "--password-stdin",
            env=env,
            stdin=PASSWORD + "\n",
        )
        assert made.returncode == 0, made.stderr
    with signet_server(env=env, workers=2, port=port) as url:
        yield Server(url, env, smtp_server["inbox"])
    if request.param == "postgresql":
        admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def create_credential(
    server: Server, user: str, key: str, *extra: str, pin: str | None = None
) -> str:
    """Enrol with the admin CLI (pending, code mailed), then activate as the owner does: the
    code from her mail, through the activation endpoint (setting her PIN if given)."""
    made = signet_cli("credentials", "create", user, "--key", key, *extra, env=server.env)
    assert made.returncode == 0, made.stderr
    credential_id = made.stdout.split()[1]
    code = server.inbox.activation_code_for(credential_id)
    activate_over_api(server.url, user, PASSWORD, credential_id, code, pin)
    return credential_id
