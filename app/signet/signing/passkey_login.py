"""Passkey logins on Signet's own pages (the OAuth 2.0 login page, and so the device flow's):
a discoverable WebAuthn assertion over the login challenge of the page's ticket (sealed by the
SAM, spent once), verified by `sam.passkey` as an approval is; the passkey, its credential and
its owner active, its counter moving forward. Throttled and audited as the pages' other
logins (docs/passkeys.md, "Logging in with a passkey")."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from signet.auth import assurance
from signet.auth.throttle import ThrottleKeys, prune_due, prune_stale, settle_login
from signet.auth.tokens import Principal
from signet.errors import InvalidRequest, SignetError
from signet.events import append_event
from signet.sam import check_credential
from signet.sam import mobile as mobile_trust
from signet.sam import passkey as trust
from signet.signing.context import Services
from signet.signing.oauth2 import Page, open_ticket_claims, spend_once, ticket
from signet.signing.oauth2_consent import logged_in_elsewhere
from signet.signing.passkey import counter_checked, counter_moved
from signet.signing.passkey_registration import rp_id
from signet.signing.sessions import page_login, reserve_try
from signet.store import Credential, MobileDevice, User

# What a passkey login reaches on its own (docs/assurance.md).
PASSKEY_LOGIN = assurance.reached(("passkey_login",))
STAGE = "login"


@dataclass(frozen=True)
class Offer:
    """The login page's passkey button: the RP ID and the challenge of this page's ticket."""

    rp_id: str
    challenge: str  # base64url


def offer(services: Services, value: str, origin: str) -> Offer | None:
    """The passkey button of the login page whose ticket is `value`, at `origin`; None where
    a browser would refuse WebAuthn (an IP address, or an RP ID this host is not under)."""
    relying_party = rp_id(services, origin)
    host = urlsplit(origin).hostname or ""
    if not relying_party or not (host == relying_party or host.endswith("." + relying_party)):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return Offer(relying_party, mobile_trust.b64url(trust.login_challenge(value)))
    return None


class _Refused(SignetError):
    """A passkey login refused: said on the login page, recorded as login.failed (and as
    `event` too, when it names one: a cloned authenticator, a record not the SAM's)."""

    def __init__(self, description: str, event: str | None = None) -> None:
        super().__init__(description, error="authentication_error", status=401)
        self.event = event


def login(
    services: Services, value: str, cookie: str | None, assertion: str, source: str, origin: str
) -> Page:
    """The login page's passkey form: the consent page for the passkey's owner, or the login
    page again (with a fresh ticket, so a fresh challenge) saying why."""
    request, _, claims = open_ticket_claims(services, value, cookie, STAGE)
    try:
        user = principal(services, value, claims, assertion, source, origin)
    except SignetError as refused:  # refused, throttled (429), not an assertion at all
        fresh = ticket(services, request, cookie or "", STAGE)
        return Page(STAGE, request, fresh, error=refused.description)
    return logged_in_elsewhere(services, value, cookie, user)


def principal(
    services: Services,
    value: str,
    claims: dict[str, Any],
    assertion: Any,
    source: str,
    origin: str,
) -> Principal:
    """The user whose passkey made `assertion` over the challenge of the ticket `value` (its
    `claims` opened already); throttled per passkey and per address, audited as `oauth2.login`
    (method passkey), or refused (401: login.failed with the reason)."""
    try:
        parsed = trust.parse_assertion(assertion)
    except InvalidRequest:
        raise _Refused("Passkey login refused: the browser sent no assertion") from None
    webauthn_id = parsed.get("rawId")
    webauthn_id = webauthn_id if isinstance(webauthn_id, str) and webauthn_id else "-"
    label = f"passkey:{hashlib.sha256(webauthn_id.encode()).hexdigest()[:32]}"
    keys, limits = ThrottleKeys.of(label, source), services.settings.login
    reserve_try(services, keys, label, source)
    found: Principal | None = None
    refusal: SignetError | IntegrityError | None = None
    with services.database.transaction() as session:
        username = label
        try:
            device = _passkey(session, parsed, webauthn_id)
            user = session.get(User, device.user_id)
            username = user.username if user is not None else label
            asserted = _checked(services, session, device, user, parsed, value, origin)
            with session.begin_nested():  # of two logins over one challenge, one goes through
                key, client_id = "passkey-login:" + claims["j"], claims["r"]["client_id"]
                fresh = spend_once(session, key, client_id, device.user_id, claims["x"])
            if not fresh:
                raise _Refused(
                    "This login page's passkey challenge was used before (a replayed "
                    "assertion); log in again from this page"
                )
            counter_checked(asserted, device, "the login")
            counter_moved(session, device, asserted)
            assert user is not None
            found = page_login(session, user, PASSKEY_LOGIN, "passkey", source)
        except (SignetError, IntegrityError) as exc:
            _record(session, exc, username, label, source)
            refusal = exc
        settle_login(session, keys, limits, ok=found is not None, username=username, source=source)
    if prune_due():  # made-up passkey ids leave no lasting throttle rows
        with services.database.transaction() as session:
            prune_stale(session, limits)
    if found is None:
        if isinstance(refusal, SignetError):
            raise _Refused(f"Passkey login refused: {refusal.description}")
        raise _Refused("Passkey login refused: this challenge was used at the same moment")
    return found


def _passkey(session: Session, parsed: dict[str, Any], webauthn_id: str) -> MobileDevice:
    """The passkey the assertion names: its user handle is the credential id it was
    registered for (`passkey_registration`), its rawId the WebAuthn credential id."""
    response = parsed.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    credential_id = _credential_id(handle)
    if credential_id is None:
        raise _Refused(
            "the passkey did not say whose it is (no user handle): only a passkey kept on "
            "the authenticator (discoverable) logs in; use your password"
        )
    device = (
        session.execute(
            select(MobileDevice).where(
                MobileDevice.credential_id == credential_id,
                MobileDevice.kind == trust.KIND,
                MobileDevice.webauthn_id == webauthn_id,
            )
        )
        .scalars()
        .first()
    )
    if device is None:
        raise _Refused("this passkey is not registered with Signet")
    return device


def _credential_id(handle: Any) -> str | None:
    if not isinstance(handle, str) or not 0 < len(handle) <= 88:
        return None
    try:
        text = mobile_trust.unb64url(handle).decode("ascii")
    except ValueError:
        return None
    return text if text.isprintable() and len(text) <= 64 else None


def _checked(
    services: Services,
    session: Session,
    device: MobileDevice,
    user: User | None,
    parsed: dict[str, Any],
    value: str,
    origin: str,
) -> trust.Asserted:
    """The assertion verified first (so that nothing about the passkey's owner is said to
    whoever cannot make it), then the passkey, its credential and its owner as they stand.
    The counter is checked once the challenge is spent (a replay is said to be one)."""
    if not mobile_trust.device_intact(services.hsm, device):
        raise _Refused(
            f"the record of passkey {device.id} fails its integrity check (not written by the SAM)",
            event="integrity.violation",
        )
    relying_party = rp_id(services, origin)
    asserted = trust.login_verifies(services.hsm, device, parsed, value, relying_party, origin)
    if asserted is None:
        raise _Refused(
            "the assertion does not verify (this page's challenge, this service's origin "
            f"and RP ID {relying_party}, user verification, the passkey's signature)"
        )
    if device.status != "active":
        raise _Refused(f"this passkey is {device.status}")
    credential = session.get(Credential, device.credential_id)
    if credential is None or credential.user_id != device.user_id:
        raise _Refused("this passkey's credential is not its owner's")
    check_credential(services.hsm, credential)
    if credential.status != "active":
        raise _Refused(f"this passkey's credential is {credential.status}")
    if user is None or user.status != "active":
        raise _Refused("the user is disabled")
    return asserted


def _record(
    session: Session, exc: SignetError | IntegrityError, username: str, label: str, source: str
) -> None:
    reason = exc.description if isinstance(exc, SignetError) else "challenge spent meanwhile"
    event = getattr(exc, "event", None)
    if event:  # integrity.violation, passkey.cloned
        append_event(
            session, event, actor=username[:128], subject=label, outcome="failure",
            reason=reason, source=source,
        )  # fmt: skip
    append_event(
        session,
        "login.failed",
        actor=username[:128],
        subject=username[:256],
        outcome="failure",
        method="passkey",
        reason=reason,
        source=source,
    )
