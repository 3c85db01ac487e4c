"""Notification gateways: e-mail over SMTP (or into a Maildir for the embedded default)."""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from signet.config import NotifySettings


class DeliveryError(Exception):
    """A message could not be handed to its gateway; the message names the gateway."""


def _message(settings: NotifySettings, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=settings.smtp.sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return msg


def send_email(settings: NotifySettings, to: str, subject: str, body: str) -> None:
    msg = _message(settings, to, subject, body)
    if settings.email_backend == "maildir":
        try:
            path = Path(settings.maildir)
            path.parent.mkdir(parents=True, exist_ok=True)
            box = mailbox.Maildir(str(path), create=True)
            for sub in ("tmp", "new", "cur"):  # an existing empty folder gets no subfolders
                (path / sub).mkdir(mode=0o700, exist_ok=True)
            box.add(msg)
        except OSError as exc:
            raise DeliveryError(f"maildir {settings.maildir}: {exc.strerror or exc}") from exc
        return
    _send_smtp(settings, msg)


def _send_smtp(settings: NotifySettings, msg: EmailMessage) -> None:
    smtp = settings.smtp
    where = f"SMTP {smtp.host}:{smtp.port}"
    context = ssl.create_default_context(cafile=smtp.ca_file)
    try:
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if smtp.username:
                password = (
                    Path(smtp.password_file).read_text().strip() if smtp.password_file else ""
                )
                client.login(smtp.username, password)
            client.send_message(msg)
    except smtplib.SMTPAuthenticationError:
        raise DeliveryError(f"{where}: authentication refused for {smtp.username!r}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"{where}: {exc} (check notify.smtp.security)") from exc
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"{where}: {exc.__class__.__name__}: {exc}") from exc
    except ssl.SSLError as exc:
        raise DeliveryError(f"{where}: TLS failed: {exc.reason or exc}") from exc
    except (TimeoutError, OSError) as exc:
        raise DeliveryError(f"{where}: unreachable: {exc.strerror or exc}") from exc
