"""Passkey trust: the WebAuthn challenge derived from a Mobile ID request's canonical bytes,
the sealed registration challenge (no row), and the check of an assertion against a sealed
passkey record — over a MACed request, or over the login challenge of a page ticket the SAM
sealed — with py_webauthn (user verification required).

An approval holds only if the assertion's signature verifies with the sealed public key over
a challenge that is the SHA-256 of exactly the request the SAM MACed, with this decision: no
row, and no counter in a row, can make it cover anything else. A login holds only if it
verifies over the SHA-256 of the sealed ticket of that login page (docs/passkeys.md)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.exceptions import WebAuthnException

from signet.errors import InvalidRequest
from signet.hsm import Hsm
from signet.sam import mobile
from signet.sam.seals import _open, _seal

KIND = "passkey"
MAX_ASSERTION = 16_384


def rp_id_for(configured: str | None, origin: str) -> str:
    """The WebAuthn relying party id: the configured one, else the host of this service's
    origin (an IP address is no valid RP ID: browsers refuse it)."""
    return configured or (urlsplit(origin).hostname or "")


def approval_challenge(request: Any, decision: str) -> bytes:
    """The WebAuthn challenge of a decision on a stored request: SHA-256 of the canonical bytes
    a Mobile ID phone signs for it (docs/passkeys.md, "Challenge")."""
    return hashlib.sha256(mobile.canonical(mobile.request_structure(request, decision))).digest()


# -- registration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistrationChallenge:
    credential_id: str
    user_id: int
    challenge: bytes
    expires_at: int


def registration_challenge(
    hsm: Hsm, credential_id: str, user_id: int, lifetime: int
) -> tuple[str, RegistrationChallenge]:
    """A WebAuthn registration challenge for this credential and user: sealed, stored nowhere."""
    issued = RegistrationChallenge(
        credential_id, user_id, secrets.token_bytes(32), int(time.time()) + lifetime
    )
    sealed = _seal(
        hsm,
        "pk",
        {
            "c": credential_id,
            "u": user_id,
            "j": mobile.b64url(issued.challenge),
            "x": issued.expires_at,
        },
    )
    return sealed, issued


def open_registration(hsm: Hsm, value: Any, credential_id: str) -> RegistrationChallenge:
    """A registration challenge this SAM issued for the credential, still valid."""
    raw = _open(hsm, "pk", value) if isinstance(value, str) else None
    if raw is None or raw.get("c") != credential_id:
        raise InvalidRequest("Invalid parameter challenge: not one this service issued for it")
    opened = RegistrationChallenge(
        str(raw["c"]), int(raw["u"]), mobile.unb64url(str(raw["j"])), int(raw["x"])
    )
    if opened.expires_at <= time.time():
        raise InvalidRequest("Invalid parameter challenge: expired; start again")
    return opened


@dataclass(frozen=True)
class NewPasskey:
    webauthn_id: str  # base64url
    public_key: str  # base64url COSE key
    sign_count: int
    summary: str  # JSON: attestation format, AAGUID, backup flags (kept, not trusted)


def registration_verifies(
    credential: Any, challenge: bytes, rp_id: str, origin: str
) -> NewPasskey | None:
    """The new passkey of a navigator.credentials.create() answer, or None when it does not
    verify (challenge, origin, RP ID, user presence and verification, attestation syntax)."""
    if not isinstance(credential, dict) or len(json.dumps(credential)) > MAX_ASSERTION:
        return None
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    # every malformed answer is a refusal (py_webauthn's own errors, and what its parsing
    # of odd JSON raises), never a 500
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError, IndexError):
        return None
    summary = {
        "fmt": str(getattr(verified.fmt, "value", verified.fmt)),
        "aaguid": verified.aaguid,
        "deviceType": str(getattr(verified.credential_device_type, "value", "")),
        "backedUp": verified.credential_backed_up,
    }
    return NewPasskey(
        mobile.b64url(verified.credential_id),
        mobile.b64url(verified.credential_public_key),
        verified.sign_count,
        json.dumps(summary, sort_keys=True),
    )


# -- approval --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Asserted:
    sign_count: int
    backed_up: bool


def parse_assertion(value: Any) -> dict[str, Any]:
    """An assertion as the page posts it (the PublicKeyCredential's JSON form), bounded."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or len(json.dumps(value)) > MAX_ASSERTION:
        raise InvalidRequest("Missing (or invalid type) object parameter credential")
    return value


def assertion_verifies(
    hsm: Hsm, device: Any, request: Any, decision: str, assertion: Any, rp_id: str
) -> Asserted | None:
    """The trust decision: the passkey record and the request are the SAM's (seal and MAC
    hold), the request is this passkey's, and the assertion is this passkey's, made with user
    verification at the request's origin, over the challenge of exactly this request with this
    decision. None otherwise. The signature counter is the caller's business (clone check)."""
    if not _sealed_passkey(hsm, device) or not mobile.request_intact(hsm, request):
        return None
    if request.device_id != device.id or request.credential_id != device.credential_id:
        return None
    return _verified(
        device, assertion, approval_challenge(request, decision), rp_id, request.origin
    )


# -- login -----------------------------------------------------------------------------------
def login_challenge(ticket: str) -> bytes:
    """The WebAuthn challenge of a login on Signet's pages: SHA-256 of the page's ticket (the
    SAM's seal over the request, the browser's CSRF binding, the stage and a random nonce)."""
    return hashlib.sha256(b"signet-passkey-login\0" + ticket.encode()).digest()


def login_verifies(
    hsm: Hsm, device: Any, assertion: Any, ticket: str, rp_id: str, origin: str
) -> Asserted | None:
    """A login's trust decision: the passkey record is the SAM's (seal), and the assertion is
    this passkey's, made with user verification at this service's `origin`, over the login
    challenge of exactly this `ticket`. None otherwise (the counter: the caller's, as above)."""
    if not _sealed_passkey(hsm, device):
        return None
    return _verified(device, assertion, login_challenge(ticket), rp_id, origin)


def _sealed_passkey(hsm: Hsm, device: Any) -> bool:
    if getattr(device, "kind", None) != KIND or device.webauthn_id is None:
        return False
    return mobile.device_intact(hsm, device)


def _verified(
    device: Any, assertion: Any, challenge: bytes, rp_id: str, origin: str
) -> Asserted | None:
    """py_webauthn's verdict on `assertion` as this passkey's over `challenge` (type, origin,
    RP ID hash, user presence and verification, the signature with the sealed key)."""
    try:
        parsed = parse_assertion(assertion)
        if parsed.get("rawId") != device.webauthn_id:
            return None
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=mobile.unb64url(device.public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (
        WebAuthnException,
        InvalidRequest,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
    ):
        return None
    return Asserted(verified.new_sign_count, verified.credential_backed_up)
