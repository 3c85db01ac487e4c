"""Passkey registration: the credential's owner logs in with her password on the page, asks
for WebAuthn creation options (a sealed challenge), and registers the passkey her browser made
with the credential's activation code; its record is stored sealed and the credential becomes
active, bound to it (docs/passkeys.md, "Registration")."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from webauthn import generate_registration_options, options_to_json
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from signet.auth.factors import lock_for_factor_check, verify_activation_code
from signet.auth.throttle import ThrottleKeys, settle_login
from signet.auth.tokens import check_password
from signet.errors import AccessDenied, InvalidRequest, SignetError
from signet.events import append_event
from signet.sam import check_credential, credential_seal
from signet.sam import mobile as mobile_trust
from signet.sam import passkey as trust
from signet.signing.context import Services
from signet.signing.mobile_registration import string_param
from signet.signing.mobile_requests import MobileRefused, now, refusals_recorded
from signet.signing.otp import code_verifier
from signet.signing.sessions import reserve_try
from signet.store import Credential, MobileDevice

PASSKEY = "passkey"
CHALLENGE_SECONDS = 300


def rp_id(services: Services, origin: str) -> str:
    return trust.rp_id_for(services.settings.sam.passkey_rp_id, origin)


def _login(services: Services, username: Any, password: Any, source: str) -> int:
    """The user id of a password login on the page (throttled like auth/login), else 401."""
    username = string_param(username, "username", 128)
    password = string_param(password, "password", 1024)
    keys, limits = ThrottleKeys.of(username, source), services.settings.login
    reserve_try(services, keys, username, source)
    found = None
    with services.database.transaction() as session:
        user = check_password(session, username, password, source=source)
        if user is not None:
            found = user.id
            append_event(session, "passkey.login", actor=username, subject=username, source=source)
        settle_login(session, keys, limits, ok=found is not None, username=username, source=source)
    if found is None:
        raise SignetError("Invalid username or password", error="authentication_error", status=401)
    return found


def _pending_credential(session: Any, credential_id: str, user_id: int) -> Credential:
    credential = session.get(Credential, credential_id, populate_existing=True)
    if credential is None or credential.activation != PASSKEY or credential.user_id != user_id:
        raise InvalidRequest(
            "Invalid parameter credentialID: no passkey credential of that id for this user"
        )
    if credential.status != "pending":
        raise InvalidRequest(
            f"The credential is {credential.status}; a passkey registers only on a pending "
            "credential (ask an administrator for a new one)"
        )
    return credential


@dataclass(frozen=True)
class Options:
    challenge: str  # the sealed challenge, sent back with the new passkey
    public_key: dict[str, Any]  # PublicKeyCredentialCreationOptions, JSON form


def registration_options(
    services: Services,
    *,
    credential_id: Any,
    username: Any,
    password: Any,
    source: str,
    origin: str,
) -> Options:
    """WebAuthn creation options for a pending passkey credential of the logged-in user:
    user verification required, no attestation asked, the challenge sealed by the SAM."""
    credential_id = string_param(credential_id, "credentialID", 64)
    user_id = _login(services, username, password, source)
    with services.database.transaction(read_only=True) as session:
        credential = _pending_credential(session, credential_id, user_id)
        check_credential(services.hsm, credential)
        name = str(username)
    sealed, issued = trust.registration_challenge(
        services.hsm, credential_id, user_id, CHALLENGE_SECONDS
    )
    options = generate_registration_options(
        rp_id=rp_id(services, origin),
        rp_name=services.settings.web.name,
        user_name=name,
        user_id=credential_id.encode(),
        user_display_name=name,
        challenge=issued.challenge,
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
    )
    return Options(sealed, json.loads(options_to_json(options)))


@dataclass(frozen=True)
class Registered:
    device_id: str
    credential_id: str


def register_passkey(
    services: Services,
    *,
    credential_id: Any,
    username: Any,
    password: Any,
    activation_code: Any,
    challenge: Any,
    credential: Any,
    label: Any,
    source: str,
    origin: str,
) -> Registered:
    """Register the passkey the browser created over the sealed challenge, for the user's
    pending credential whose activation code she gives; the credential becomes active."""
    credential_id = string_param(credential_id, "credentialID", 64)
    code = string_param(activation_code, "activationCode", 64)
    label = string_param(label or "passkey", "label", 128)
    user_id = _login(services, username, password, source)
    issued = trust.open_registration(services.hsm, challenge, credential_id)
    if issued.user_id != user_id:
        raise InvalidRequest("Invalid parameter challenge: issued to another user")
    failure = None
    with refusals_recorded(services, str(username), credential_id):
        made = trust.registration_verifies(
            credential, issued.challenge, rp_id(services, origin), origin
        )
        if made is None:
            raise MobileRefused(
                "Invalid parameter credential: the passkey's registration does not verify "
                "(challenge, origin, RP ID, user verification; docs/passkeys.md)",
                event="passkey.registration_refused",
            )
        with services.database.transaction() as session:
            lock_for_factor_check(session, credential_id)
            row = _pending_credential(session, credential_id, user_id)
            check_credential(services.hsm, row)
            if row.locked:
                raise AccessDenied(
                    "The credential is locked after too many wrong activation codes; ask an "
                    "administrator to unlock it"
                )
            result = verify_activation_code(
                session,
                row,
                code,
                services.settings.sam,
                str(username),
                verifier=code_verifier(services.hsm),
            )
            if result.ok:
                device = MobileDevice(
                    id=secrets.token_hex(16),
                    credential_id=row.id,
                    user_id=row.user_id,
                    label=label,
                    public_key=made.public_key,
                    attestation=made.summary,
                    status="active",
                    created_at=now(),
                    kind=trust.KIND,
                    webauthn_id=made.webauthn_id,
                    sign_count=made.sign_count,
                )
                device.seal = mobile_trust.device_seal(services.hsm, device)
                session.add(device)
                row.status = "active"
                row.updated_at = now()
                row.seal = credential_seal(services.hsm, row)
                append_event(
                    session,
                    "passkey.registered",
                    actor=str(username),
                    subject=row.id,
                    device=device.id,
                    label=label,
                    webauthn_id=made.webauthn_id,
                    authenticator=json.loads(made.summary),
                )
                append_event(
                    session,
                    "credential.activated",
                    actor=str(username),
                    subject=row.id,
                    activation=PASSKEY,
                    pin_set=False,
                )
                return Registered(device.id, row.id)
            failure = result
    assert failure is not None
    raise SignetError(
        failure.description,
        error=failure.error,
        status=403 if "locked" in failure.description else 400,
    )
