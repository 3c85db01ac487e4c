"""Mobile ID registration: a phone proves possession of its P-256 key over a sealed challenge
and presents the credential's activation code; its record is stored sealed and the credential
becomes active, bound to it (docs/mobile-id.md, "Enrolment and registration")."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from signet.auth.factors import lock_for_factor_check, verify_activation_code
from signet.errors import AccessDenied, InvalidRequest, SignetError
from signet.events import append_event
from signet.sam import check_credential, credential_seal
from signet.sam import mobile as trust
from signet.signing.context import Services
from signet.signing.mobile_requests import MOBILE_ID, MobileRefused, now, refusals_recorded
from signet.signing.otp import code_verifier
from signet.store import Credential, MobileDevice

CHALLENGE_SECONDS = 300
MAX_LABEL = 128
MAX_ATTESTATION = 16_384


def string_param(value: Any, name: str, limit: int = 256) -> str:
    """A required string parameter of at most `limit` characters and no NUL (which no
    identifier holds and PostgreSQL refuses), else a 400 naming it."""
    if not isinstance(value, str) or not value or len(value) > limit or "\0" in value:
        raise InvalidRequest(f"Missing (or invalid type) string parameter {name}")
    return value


@dataclass(frozen=True)
class RegistrationChallenge:
    challenge: str
    expires_in: int


def registration_challenge(services: Services, credential_id: Any) -> RegistrationChallenge:
    """A challenge the device signs to register on a pending Mobile ID credential."""
    credential_id = string_param(credential_id, "credentialID", 64)
    with services.database.transaction(read_only=True) as session:
        credential = session.get(Credential, credential_id)
        if (
            credential is None
            or credential.activation != MOBILE_ID
            or credential.status != "pending"
        ):
            raise InvalidRequest(
                "Invalid parameter credentialID: no pending Mobile ID credential of that id"
            )
    sealed, _ = trust.registration_challenge(services.hsm, credential_id, CHALLENGE_SECONDS)
    return RegistrationChallenge(sealed, CHALLENGE_SECONDS)


def registration_bytes(
    *, credential_id: str, challenge: str, public_key: str, label: str, origin: str
) -> bytes:
    """What the device signs to register (docs/mobile-id.md)."""
    return trust.canonical(
        {
            "type": trust.REGISTRATION_TYPE,
            "credentialID": credential_id,
            "challenge": challenge,
            "publicKey": public_key,
            "label": label,
            "origin": origin,
        }
    )


@dataclass(frozen=True)
class Registered:
    device_id: str
    credential_id: str


def register_device(
    services: Services,
    *,
    credential_id: Any,
    activation_code: Any,
    challenge: Any,
    public_key: Any,
    label: Any,
    attestation: Any,
    signature: Any,
    origin: str,
) -> Registered:
    """Register the device whose key signed the challenge, for the credential whose activation
    code it presents; the credential becomes active, bound to this device (sealed)."""
    credential_id = string_param(credential_id, "credentialID", 64)
    code = string_param(activation_code, "activationCode", 64)
    challenge = string_param(challenge, "challenge", 4096)
    public_key = string_param(public_key, "publicKey", 1024)
    label = string_param(label, "label", MAX_LABEL)
    signature = string_param(signature, "signature", 1024)
    if attestation is not None:
        attestation = string_param(attestation, "attestation", MAX_ATTESTATION)
    key = trust.load_device_key(public_key)
    stored_key = trust.spki_b64(key)
    trust.open_challenge(services.hsm, challenge, credential_id)
    signed = registration_bytes(
        credential_id=credential_id,
        challenge=challenge,
        public_key=public_key,
        label=label,
        origin=origin,
    )
    failure = None
    with refusals_recorded(services, "mobile-device", credential_id):
        if not trust.signature_verifies(key, signature, signed):
            raise MobileRefused(
                "Invalid parameter signature: not the key's signature of the registration "
                "bytes (docs/mobile-id.md)",
                event="mobile.registration_refused",
            )
        with services.database.transaction() as session:
            lock_for_factor_check(session, credential_id)
            credential = session.get(Credential, credential_id, populate_existing=True)
            if credential is None or credential.activation != MOBILE_ID:
                raise InvalidRequest(
                    "Invalid parameter credentialID: no pending Mobile ID credential of that id"
                )
            check_credential(services.hsm, credential)
            if credential.status != "pending":
                raise InvalidRequest(
                    f"The credential is {credential.status}; a device registers only on a "
                    "pending credential (ask an administrator for a new one)"
                )
            if credential.locked:
                raise AccessDenied(
                    "The credential is locked after too many wrong activation codes; ask an "
                    "administrator to unlock it"
                )
            result = verify_activation_code(
                session,
                credential,
                code,
                services.settings.sam,
                f"device of {credential.id}",
                verifier=code_verifier(services.hsm),
            )
            if result.ok:
                device = MobileDevice(
                    id=secrets.token_hex(16),
                    credential_id=credential.id,
                    user_id=credential.user_id,
                    label=label,
                    public_key=stored_key,
                    attestation=attestation,
                    status="active",
                    created_at=now(),
                )
                device.seal = trust.device_seal(services.hsm, device)
                session.add(device)
                credential.status = "active"
                credential.updated_at = now()
                credential.seal = credential_seal(services.hsm, credential)
                append_event(
                    session,
                    "mobile.registered",
                    actor=f"device {device.id}",
                    subject=credential.id,
                    device=device.id,
                    label=label,
                    attestation=attestation is not None,
                )
                append_event(
                    session,
                    "credential.activated",
                    actor=f"device {device.id}",
                    subject=credential.id,
                    activation=MOBILE_ID,
                    pin_set=False,
                )
                return Registered(device.id, credential.id)
            failure = result
    assert failure is not None
    raise SignetError(
        failure.description,
        error=failure.error,
        status=403 if "locked" in failure.description else 400,
    )
