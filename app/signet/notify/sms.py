"""The SMS gateway interface: what a gateway is asked and answers, phone numbers (E.164, masked
for messages and the audit trail), and the choice of gateway from `[notify.sms]`.

SMS is a *restricted* out-of-band authenticator under NIST SP 800-63B (5.1.3.3): the channel
can be redirected (SIM swap, number porting, SS7 interception). Signet offers it, binds each code
to the request it approves exactly as the e-mailed code is bound, and says so in
`docs/otp.md`; the level an SMS code reaches is for the assurance model to decide."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from signet.config.sms import describe_gateway
from signet.notify import DeliveryError

# E.164: a country code (no leading 0) and at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# What people type between digit groups.
_SEPARATORS = re.compile(r"[\s().\-/]")


def e164(number: str) -> str:
    """A phone number in E.164 (`+32470123456`), from what an operator types (spaces, dots,
    dashes and brackets between the digits are dropped; a leading 00 reads as +). ValueError
    names what is wrong."""
    if not isinstance(number, str):
        raise ValueError("a phone number is text, e.g. +32 470 12 34 56")
    compact = _SEPARATORS.sub("", number.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not compact.startswith("+"):
        raise ValueError(
            f"phone number {mask_phone(number)!r} is not international: "
            "give it in E.164 with its country code, e.g. +32 470 12 34 56"
        )
    if not _E164.fullmatch(compact):
        raise ValueError(
            f"phone number {mask_phone(number)!r} is not E.164: '+', a country code and at "
            "most 15 digits in all, e.g. +32 470 12 34 56"
        )
    return compact


def mask_phone(number: str) -> str:
    """A phone number as messages and audit records show it: the country prefix and the last
    three digits, e.g. +32*****678 (a number too short to mask is all stars)."""
    digits = re.sub(r"[^0-9]", "", number or "")
    if len(digits) < 7:
        return "*" * max(len(digits), 3)
    return "+" + digits[:2] + "*" * (len(digits) - 5) + digits[-3:]


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt from the gateway: the message it is for and its final state
    (SMPP: DELIVRD, EXPIRED, UNDELIV, REJECTD, …) with the network's error code."""

    message_id: str
    state: str
    error: str | None = None


@dataclass(frozen=True)
class SmsSent:
    """What the gateway accepted: its message IDs (one per part), the number of parts and the
    encoding, and any delivery receipts that reached Signet meanwhile (for earlier messages)."""

    gateway: str
    message_ids: tuple[str, ...]
    parts: int
    encoding: str
    reference: str
    receipts: tuple[Receipt, ...] = field(default_factory=tuple)

    def audit(self) -> dict[str, Any]:
        """The details an audit record keeps of it (no text: the text holds the code)."""
        return {
            "gateway": self.gateway,
            "message_ids": list(self.message_ids),
            "parts": self.parts,
            "encoding": self.encoding,
            "reference": self.reference,
        }


class SmsGateway(Protocol):
    """An SMS gateway: `send` hands one text to it for one number, within bounded time, and
    returns what it accepted or raises DeliveryError naming the gateway and what to check."""

    name: str

    def send(self, to: str, text: str) -> SmsSent: ...

    def close(self) -> None: ...


def gateway_for(settings: Any) -> SmsGateway:
    """The gateway `[notify.sms]` describes (validated by signet.config.sms)."""
    if settings.type == "smpp":
        from signet.notify.smpp import SmppGateway

        return SmppGateway(settings)
    if settings.type == "http":
        from signet.notify.http_gateway import HttpGateway

        return HttpGateway(settings)
    raise DeliveryError(f"notify.sms.type {settings.type!r}: use http or smpp")


__all__ = [
    "DeliveryError",
    "Receipt",
    "SmsGateway",
    "SmsSent",
    "describe_gateway",
    "e164",
    "gateway_for",
    "mask_phone",
]
