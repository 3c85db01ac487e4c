"""The signer's own activation secret: a new credential stays pending until its owner, with the
code sent to her sealed address, sets her PIN (or confirms her OTP channel) herself.

The code goes by e-mail, or by SMS for a credential whose one-time codes go by SMS (its phone
number is the sealed `activation_address`): activating it proves the number reaches her."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signet.auth.factors import (
    lock_for_factor_check,
    new_activation_code,
    shown_activation_code,
    verify_activation_code,
)
from signet.auth.tokens import Principal
from signet.errors import (
    AccessDenied,
    Conflict,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    SignetError,
)
from signet.events import append_event
from signet.notify import DeliveryError
from signet.sam import check_credential, credential_seal, pin_verifier, prepare_pin_key
from signet.signing.context import Services
from signet.signing.csc import now, own_credential
from signet.signing.delivery import (
    CHANNEL_NAMES,
    deliver,
    otp_channel,
    record_delivery,
    shown,
    sms_activation_text,
)
from signet.signing.otp import code_verifier
from signet.store import Credential, User

PIN_MIN, PIN_MAX = 6, 16


@dataclass(frozen=True)
class ActivationSent:
    credential_id: str
    to: str
    expires_at: datetime


def check_pin_policy(pin: Any) -> str:
    """A PIN the signer chooses: 6 to 16 digits, not all the same digit."""
    if not isinstance(pin, str) or not pin:
        raise InvalidRequest(
            "Missing (or invalid type) string parameter PIN: this credential "
            "is activated by a PIN you choose now"
        )
    if not pin.isascii() or not pin.isdigit() or not PIN_MIN <= len(pin) <= PIN_MAX:
        raise InvalidRequest(f"Invalid parameter PIN: use {PIN_MIN} to {PIN_MAX} digits")
    if len(set(pin)) == 1:
        raise InvalidRequest("Invalid parameter PIN: not the same digit throughout")
    return pin


def activation_message(
    *,
    name: str,
    credential_id: str,
    activation: str,
    code: str,
    lifetime_hours: int,
    server: str | None,
) -> tuple[str, str]:
    """(Subject, body) of the activation mail; the subject never carries the code."""
    what = (
        "choose the PIN that will authorise each of your signatures"
        if activation == "pin"
        else "confirm that one-time codes for your signatures reach you"
    )
    where = server or "https://<your signing service>"
    if activation == "mobile_id":
        return "Activate your signing credential", (
            f"Hello {name},\n\na signing credential was created for you: {credential_id}.\n"
            "Each of its signatures is approved on your phone. Register your phone with "
            "the activation code\n\n"
            f"    {shown_activation_code(code)}\n\n"
            "in your signing app, or run\n\n"
            f"    signet-mobile register --server {where} --credential {credential_id}\n\n"
            f"The code is valid for {lifetime_hours} hours and can be used once. Nobody at "
            "the service will ever ask you for it. If you did not expect this message, do "
            "not use the code and tell your administrator.\n"
        )
    if activation == "passkey":
        return "Activate your signing credential", (
            f"Hello {name},\n\na signing credential was created for you: {credential_id}.\n"
            "Each of its signatures is approved with a passkey (your phone's or computer's "
            "screen lock, or a security key). Create it on\n\n"
            f"    {where}/passkey/v1/register?credential={credential_id}\n\n"
            "with your password and the activation code\n\n"
            f"    {shown_activation_code(code)}\n\n"
            f"The code is valid for {lifetime_hours} hours and can be used once. Nobody at "
            "the service will ever ask you for it. If you did not expect this message, do "
            "not use the code and tell your administrator.\n"
        )
    pin = " (and your new PIN twice)" if activation == "pin" else ""
    body = (
        f"Hello {name},\n\na signing credential was created for you: {credential_id}.\n"
        f"It cannot sign until you activate it: {what}.\n\nYour activation code is\n\n"
        f"    {shown_activation_code(code)}\n\n"
        "To activate, run\n\n"
        f"    signet activate --server {where} --user <your user name> "
        f"--credential {credential_id}\n\n"
        f"and give your password, this code{pin} when asked; or have your signing "
        "application call credentials/activate (docs/csc.md).\n\n"
        f"The code is valid for {lifetime_hours} hours and can be used once. Nobody at "
        "the service will ever ask you for it or for your PIN. If you did not expect "
        "this message, do not use the code and tell your administrator.\n"
    )
    return "Activate your signing credential", body


def send_activation(services: Services, credential_id: str, *, actor: str) -> ActivationSent:
    """Issue a fresh activation code for a pending credential (earlier ones stop working) and
    e-mail it to the address sealed in its record. Only the code's HSM verifier is stored."""
    sam = services.settings.sam
    with services.database.transaction() as session:
        lock_for_factor_check(session, credential_id)
        credential = session.get(Credential, credential_id, populate_existing=True)
        if credential is None:
            raise NotFound(f"no credential {credential_id!r}")
        check_credential(services.hsm, credential)
        if credential.status != "pending":
            raise Conflict(
                f"credential {credential_id!r} is {credential.status}, not pending: "
                "there is nothing to activate"
            )
        address = credential.activation_address
        if not address:
            raise InvalidRequest(
                f"credential {credential_id!r} has no address for its activation code"
            )
        user = session.get(User, credential.user_id)
        assert user is not None
        code, expires_at = new_activation_code(
            session, credential, sam, verifier=code_verifier(services.hsm)
        )
        subject, text = activation_message(
            name=user.display_name,
            credential_id=credential_id,
            activation=credential.activation,
            code=code,
            lifetime_hours=sam.activation_lifetime_hours,
            server=services.settings.web.base_url or None,
        )
    # A PIN credential's code goes by e-mail; an OTP credential's by its own channel.
    channel = otp_channel(credential.activation) or "email"
    try:
        sent, receipts = deliver(
            services,
            channel=channel,
            to=address,
            subject=subject,
            body=text,
            sms_text=sms_activation_text(
                code=shown_activation_code(code),
                credential_id=credential_id,
                lifetime_hours=sam.activation_lifetime_hours,
            ),
        )
    except DeliveryError as exc:
        with services.database.transaction() as session:
            append_event(
                session,
                "credential.activation_delivery_failed",
                actor=actor,
                subject=credential_id,
                outcome="failure",
                channel=channel,
                to=shown(channel, address),
                reason=str(exc),
            )
        raise ServiceUnavailable(
            f"the activation code for credential {credential_id} could "
            f"not be delivered by {CHANNEL_NAMES[channel]}: {exc}; it stays pending (send a "
            f"new code with `signet credentials resend-activation {credential_id}`)"
        ) from exc
    record_delivery(
        services,
        "credential.activation_sent",
        actor=actor,
        subject=credential_id,
        details={**sent, "expires_at": expires_at.isoformat()},
        receipts=receipts,
    )
    return ActivationSent(credential_id, shown(channel, address), expires_at)


def activate(
    services: Services, principal: Principal, credential_id: Any, code: Any, pin: Any = None
) -> str:
    """The owner activates her pending credential with the code she was sent, and for a PIN
    credential sets her PIN (only its verifier, an HMAC in the HSM, is kept). Wrong codes
    count like wrong OTPs and lock the credential. Return the credential's activation kind."""
    if not isinstance(code, str) or not code.strip():
        raise InvalidRequest("Missing (or invalid type) string parameter activationCode")
    sam = services.settings.sam
    failure = None
    with services.database.transaction() as session:
        credential = own_credential(session, principal, credential_id)
        # Tries on one credential queue here; each sees the failures and the lock before it.
        lock_for_factor_check(session, credential.id)
        session.refresh(credential)
        check_credential(services.hsm, credential)
        if credential.status == "active":
            raise SignetError(
                "The credential is already activated", error="invalid_request", status=409
            )
        if credential.status != "pending":
            raise InvalidRequest(
                f"The credential is {credential.status}; only a pending credential can be activated"
            )
        if credential.locked:
            raise AccessDenied(
                "The credential is locked after too many wrong activation "
                "codes; ask an administrator to unlock it"
            )
        if credential.activation == "mobile_id":
            raise InvalidRequest(
                "The credential is a Mobile ID credential: it is activated by registering "
                "your phone with this code (`signet-mobile register`, docs/mobile-id.md)"
            )
        if credential.activation == "passkey":
            raise InvalidRequest(
                "The credential is a passkey credential: it is activated by registering a "
                "passkey with this code on /passkey/v1/register (docs/passkeys.md)"
            )
        if credential.activation == "pin":
            check_pin_policy(pin)
        elif pin is not None:
            raise InvalidRequest(
                "Invalid parameter PIN: this credential is activated by one-time codes, not a PIN"
            )
        result = verify_activation_code(
            session, credential, code, sam, principal.username, verifier=code_verifier(services.hsm)
        )
        if result.ok:
            if credential.activation == "pin":
                prepare_pin_key(services.hsm)
                credential.pin_hash = pin_verifier(services.hsm, credential.id, pin)
            credential.status = "active"
            credential.updated_at = now()
            credential.seal = credential_seal(services.hsm, credential)
            append_event(
                session,
                "credential.activated",
                actor=principal.username,
                subject=credential.id,
                activation=credential.activation,
                pin_set=credential.activation == "pin",
            )
            return str(credential.activation)
        failure = result
    # The failed try is committed (counted, audited) before the client hears of it.
    raise SignetError(
        failure.description,
        error=failure.error,
        status=403 if "locked" in failure.description else 400,
    )
