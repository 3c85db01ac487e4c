"""Mobile ID trust: the canonical bytes a phone signs, the check of its P-256 signature, the
seals of registered devices and the MACs of requests waiting on them (all under the SAM's seal
key in the HSM), and the registration challenge (a sealed string, no row).

The device's approval is the trust decision: `approval_verifies` checks the device's ECDSA
signature over the canonical form of exactly the request the SAM MACed; nothing read from the
database decides what a SAD covers unless its MAC or seal holds (docs/mobile-id.md)."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signet.errors import InvalidRequest
from signet.hsm import Hsm
from signet.sam import keys
from signet.sam.seals import _open, _seal

APPROVAL_TYPE = "signet-mobile-approval/1"
REGISTRATION_TYPE = "signet-mobile-registration/1"
CALL_TYPE = "signet-mobile-call/1"
DECISIONS = ("approve", "deny")


def epoch_seconds(moment: datetime) -> int:
    """Unix seconds of a stored time (SQLite gives it back naive; everything is UTC)."""
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 8192:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(structure: Mapping[str, Any]) -> bytes:
    """The bytes a device signs: JSON with keys sorted, no whitespace, every character outside
    ASCII escaped as \\uXXXX (surrogate pairs beyond the BMP), UTF-8 (so, ASCII)."""
    return json.dumps(structure, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def approval_structure(
    *,
    decision: str,
    request_id: str,
    credential_id: str,
    hash_oid: str | None,
    hashes_b64url: Sequence[str],
    count: int,
    labels: Sequence[str],
    description: str | None,
    origin: str,
    nonce: str,
) -> dict[str, Any]:
    """What a device's approve or deny signs (docs/mobile-id.md, "Canonical bytes")."""
    return {
        "type": APPROVAL_TYPE,
        "decision": decision,
        "requestID": request_id,
        "credentialID": credential_id,
        "hashAlgorithmOID": hash_oid,
        "hashes": list(hashes_b64url),
        "numSignatures": count,
        "labels": list(labels),
        "description": description,
        "origin": origin,
        "nonce": nonce,
    }


def load_device_key(spki_b64: str) -> ec.EllipticCurvePublicKey:
    """A device's public key from base64 (either alphabet) DER SPKI: P-256 only."""
    try:
        key = serialization.load_der_public_key(
            unb64url(spki_b64.replace("+", "-").replace("/", "_"))
        )
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest(
            "Invalid parameter publicKey: not a DER SubjectPublicKeyInfo"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidRequest("Invalid parameter publicKey: a P-256 (secp256r1) key is required")
    return key


def signature_verifies(key: ec.EllipticCurvePublicKey, signature_b64: Any, data: bytes) -> bool:
    """Whether `signature_b64` (base64url DER ECDSA-SHA256) is the key's signature of `data`."""
    try:
        key.verify(unb64url(signature_b64), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False
    return True


def spki_b64(key: ec.EllipticCurvePublicKey) -> str:
    """The stored form of a device key: base64url of its DER SPKI."""
    return b64url(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


# -- registration challenge ------------------------------------------------------------------
@dataclass(frozen=True)
class Challenge:
    credential_id: str
    nonce: str
    expires_at: int


def registration_challenge(hsm: Hsm, credential_id: str, lifetime: int) -> tuple[str, Challenge]:
    """A challenge for registering a device on this credential: sealed, stored nowhere."""
    challenge = Challenge(credential_id, secrets.token_hex(16), int(time.time()) + lifetime)
    sealed = _seal(
        hsm, "m", {"c": challenge.credential_id, "j": challenge.nonce, "x": challenge.expires_at}
    )
    return sealed, challenge


def open_challenge(hsm: Hsm, value: Any, credential_id: str) -> Challenge:
    """A challenge this SAM issued for this credential and still valid, else InvalidRequest."""
    raw = _open(hsm, "m", value) if isinstance(value, str) else None
    if raw is None or raw.get("c") != credential_id:
        raise InvalidRequest("Invalid parameter challenge: not one this service issued for it")
    challenge = Challenge(str(raw["c"]), str(raw["j"]), int(raw["x"]))
    if challenge.expires_at <= time.time():
        raise InvalidRequest("Invalid parameter challenge: expired; ask for a new one")
    return challenge


# -- device records --------------------------------------------------------------------------
def _device_parts(device: Any) -> tuple[Any, ...]:
    """What a device record's seal covers. A passkey's seal (another domain label) also covers
    its kind and WebAuthn credential id; its signature counter is outside (docs/passkeys.md)."""
    parts = (
        device.id,
        device.credential_id,
        device.user_id,
        device.public_key,
        device.status,
    )
    kind = getattr(device, "kind", None) or "mobile"
    if kind == "mobile":
        return ("mobile-device", *parts)
    return ("passkey-device", *parts, kind, device.webauthn_id or "")


def device_seal(hsm: Hsm, device: Any) -> str:
    """The seal of a device record: who it belongs to, its key, kind and status."""
    return keys.mac(hsm, keys.SEAL_KEY, *_device_parts(device)).hex()


def device_intact(hsm: Hsm, device: Any) -> bool:
    return keys.mac_matches(hsm, keys.SEAL_KEY, device.seal, *_device_parts(device))


# -- requests --------------------------------------------------------------------------------
def _request_parts(request: Any) -> tuple[Any, ...]:
    return (
        request.id,
        request.credential_id,
        request.user_id,
        request.device_id,
        request.hash_algorithm,
        request.hashes,
        request.num_signatures,
        request.labels,
        request.description,
        request.origin,
        request.nonce,
        request.assurance,
        epoch_seconds(request.expires_at),
    )


def request_mac(hsm: Hsm, request: Any) -> str:
    """The MAC of a request's content (everything but its state and the device's answer)."""
    return keys.mac(hsm, keys.SEAL_KEY, "mobile-request", *_request_parts(request)).hex()


def request_intact(hsm: Hsm, request: Any) -> bool:
    return keys.mac_matches(
        hsm, keys.SEAL_KEY, request.content_mac, "mobile-request", *_request_parts(request)
    )


def request_structure(request: Any, decision: str) -> dict[str, Any]:
    """The canonical structure of a stored request, for a decision."""
    return approval_structure(
        decision=decision,
        request_id=request.id,
        credential_id=request.credential_id,
        hash_oid=request.hash_algorithm,
        hashes_b64url=request.hashes.split("\n") if request.hashes else [],
        count=request.num_signatures,
        labels=json.loads(request.labels),
        description=request.description,
        origin=request.origin,
        nonce=request.nonce,
    )


def decision_verifies(hsm: Hsm, device: Any, request: Any, decision: str, signature: Any) -> bool:
    """The trust decision: the device record and the request are the SAM's (seal and MAC hold),
    the request is the device's, and `signature` is that device's over exactly this request
    with this decision."""
    if (getattr(device, "kind", None) or "mobile") != "mobile":
        return False  # a passkey approves by WebAuthn assertion only (sam.passkey)
    if not device_intact(hsm, device) or not request_intact(hsm, request):
        return False
    if request.device_id != device.id or request.credential_id != device.credential_id:
        return False
    key = load_device_key(device.public_key)
    return signature_verifies(key, signature, canonical(request_structure(request, decision)))
