"""E-mail delivery over a real SMTP server (aiosmtpd): implicit TLS, STARTTLS, refusals."""

import ssl
import time

import pytest
from aiosmtpd.controller import Controller

from signet.config import NotifySettings, SmtpSettings
from signet.notify import DeliveryError, send_email
from tests.helpers import free_port, self_signed_tls


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def tls_files(tmp_path):
    return self_signed_tls(tmp_path)


def test_implicit_tls(tls_files):
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, ssl_context=context, server_hostname="localhost"
    )
    controller.start()
    try:
        settings = NotifySettings(
            email_backend="smtp",
            smtp=SmtpSettings(
                host="localhost",
                port=port,
                security="tls",
                ca_file=str(cert),
                sender="signet@example.test",
            ),
        )
        send_email(settings, "alice@example.test", "Your code", "123456")
        deadline = time.monotonic() + 5
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert inbox.messages[0].rcpt_tos == ["alice@example.test"]
        assert b"123456" in inbox.messages[0].content
        # A server certificate the client does not trust is refused, naming the server.
        untrusted = NotifySettings(
            email_backend="smtp", smtp=SmtpSettings(host="localhost", port=port, security="tls")
        )
        with pytest.raises(DeliveryError, match=f"SMTP localhost:{port}: TLS failed"):
            send_email(untrusted, "alice@example.test", "x", "y")
    finally:
        controller.stop()


def test_unreachable_server_is_named():
    port = free_port()  # nothing listens there
    settings = NotifySettings(
        email_backend="smtp",
        smtp=SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=3),
    )
    with pytest.raises(DeliveryError, match=f"SMTP 127.0.0.1:{port}: unreachable"):
        send_email(settings, "alice@example.test", "x", "y")


def test_starttls_missing_on_server_is_explained():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = NotifySettings(
            email_backend="smtp",
            smtp=SmtpSettings(host="127.0.0.1", port=port, security="starttls"),
        )
        with pytest.raises(DeliveryError, match="notify.smtp.security"):
            send_email(settings, "alice@example.test", "x", "y")
        assert inbox.messages == []
    finally:
        controller.stop()
