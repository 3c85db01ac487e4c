"""Delivering a code to its owner by the channel her credential's factor names (e-mail or SMS),
what each channel's text says, and what the audit trail keeps of it (a phone number masked,
never the code)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signet.events import Event, append_events
from signet.notify import DeliveryError, send_email
from signet.notify.sms import Receipt, mask_phone
from signet.signing.context import Services

# A credential's activation factor → the channel its codes travel by ("pin" has none).
OTP_CHANNELS = {"otp": "email", "sms_otp": "sms"}
# What each channel is called in messages.
CHANNEL_NAMES = {"email": "e-mail", "sms": "SMS"}


def otp_channel(activation: str) -> str | None:
    """The channel a credential's one-time codes go by: "email", "sms", or None (a PIN)."""
    return OTP_CHANNELS.get(activation)


def shown(channel: str | None, address: str | None) -> str:
    """An address as messages and audit records show it: a phone number masked."""
    if not address:
        return ""
    return mask_phone(address) if channel == "sms" else address


def deliver(
    services: Services,
    *,
    channel: str,
    to: str,
    subject: str,
    body: str,
    sms_text: str,
) -> tuple[dict[str, Any], tuple[Receipt, ...]]:
    """Hand a code's message to its channel: the e-mail (subject, body) or the SMS text.
    Return the details its audit record keeps and the delivery receipts the gateway passed on;
    raise DeliveryError (naming the gateway and what to check) if it was not taken."""
    if channel == "email":
        send_email(services.settings.notify, to, subject, body)
        return {"channel": "email", "to": to}, ()
    if channel != "sms":
        raise DeliveryError(f"no delivery channel {channel!r}")
    gateway = services.sms
    if gateway is None:
        raise DeliveryError(
            "no SMS gateway is configured: set [notify.sms] (type http or smpp) in signet.toml"
        )
    sent = gateway.send(to, sms_text)
    return {"channel": "sms", "to": mask_phone(to), **sent.audit()}, sent.receipts


def receipt_events(receipts: Sequence[Receipt], actor: str) -> list[Event]:
    """`sms.delivery_receipt` records for receipts that reached Signet (SMPP transceiver)."""
    return [
        Event(
            "sms.delivery_receipt",
            actor,
            r.message_id,
            "success" if r.state in ("DELIVRD", "ACCEPTD", "ENROUTE") else "failure",
            {"state": r.state, "error": r.error},
        )
        for r in receipts
    ]


def record_delivery(
    services: Services,
    event: str,
    *,
    actor: str,
    subject: str,
    details: dict[str, Any],
    receipts: Sequence[Receipt] = (),
) -> None:
    """Audit a message sent (and any receipts that came with the gateway's answer)."""
    with services.database.transaction() as session:
        append_events(
            session,
            [Event(event, actor, subject, "success", details), *receipt_events(receipts, actor)],
        )


def sms_otp_text(
    *,
    code: str,
    lifetime: str,
    num_signatures: int | None,
    labels: Sequence[str],
    fingerprint: str | None,
    sender: str,
) -> str:
    """The SMS that carries a one-time code: the code first, then what it approves (count,
    documents, hash fingerprint), its lifetime and a warning; short enough for one or two
    parts. Labels beyond the first two, or longer than 30 characters, are shortened."""
    if num_signatures is None:
        approves = "It approves the first signing request that uses it."
    else:
        plural = "" if num_signatures == 1 else "s"
        names = [label if len(label) <= 30 else label[:29] + "…" for label in labels[:2]]
        if len(labels) > 2:
            names.append(f"+{len(labels) - 2} more")
        documents = f" of {', '.join(names)}" if names else ""
        approves = (
            f"It approves {num_signatures} signature{plural}{documents}, hashes {fingerprint}."
        )
    return (
        f"{code} is your {sender} signing code. {approves} Valid {lifetime}. "
        "Never share it; nobody from the service will ask for it."
    )


def sms_activation_text(*, code: str, credential_id: str, lifetime_hours: int) -> str:
    """The SMS that carries an activation code (the credential's own number, sealed)."""
    return (
        f"Your activation code for signing credential {credential_id} is {code}. Activate "
        f"it with signet activate or your signing application within {lifetime_hours} hours. "
        "Never share it."
    )
