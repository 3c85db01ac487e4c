"""The bytes a Mobile ID device signs, written from docs/mobile-id.md alone (the server has its
own copy in `signet.sam.mobile`; a unit test holds both to the document's test vector)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def canonical(structure: Mapping[str, Any]) -> bytes:
    """Keys sorted, no whitespace, non-ASCII characters as \\uXXXX escapes: ASCII bytes."""
    return json.dumps(structure, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def registration_bytes(
    *, credential_id: str, challenge: str, public_key: str, label: str, origin: str
) -> bytes:
    return canonical(
        {
            "type": "signet-mobile-registration/1",
            "credentialID": credential_id,
            "challenge": challenge,
            "publicKey": public_key,
            "label": label,
            "origin": origin,
        }
    )


def call_bytes(*, call: str, device_id: str, timestamp: int, origin: str) -> bytes:
    return canonical(
        {
            "type": "signet-mobile-call/1",
            "call": call,
            "deviceID": device_id,
            "timestamp": timestamp,
            "origin": origin,
        }
    )


def push_bytes(
    *, device_id: str, timestamp: int, origin: str, subscription: Mapping[str, Any] | None
) -> bytes:
    """What setting (or, with None, clearing) the device's Web Push subscription signs;
    `subscription` as the W3C Push API gives it: {endpoint, keys: {p256dh, auth}}."""
    return canonical(
        {
            "type": "signet-mobile-call/1",
            "call": "push",
            "deviceID": device_id,
            "timestamp": timestamp,
            "origin": origin,
            "subscription": None
            if subscription is None
            else {
                "endpoint": subscription["endpoint"],
                "p256dh": subscription["keys"]["p256dh"],
                "auth": subscription["keys"]["auth"],
            },
        }
    )


def approval_bytes(request: Mapping[str, Any], decision: str) -> bytes:
    """What approving (or denying) a request, as `pending` listed it, signs."""
    if decision not in ("approve", "deny"):
        raise ValueError("decision is approve or deny")
    return canonical(
        {
            "type": "signet-mobile-approval/1",
            "decision": decision,
            "requestID": request["requestID"],
            "credentialID": request["credentialID"],
            "hashAlgorithmOID": request["hashAlgorithmOID"],
            "hashes": list(request["hashes"]),
            "numSignatures": request["numSignatures"],
            "labels": list(request["labels"]),
            "description": request["description"],
            "origin": request["origin"],
            "nonce": request["nonce"],
        }
    )


def fingerprint(hashes_b64url: Sequence[str]) -> str:
    """The hashes' fingerprint a phone shows: SHA-256 over the hashes in standard base64,
    sorted, one a line; its first 8 bytes in hex, in groups of four digits."""
    if not hashes_b64url:
        return "none"
    normal = sorted(
        base64.b64encode(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4))).decode()
        for h in hashes_b64url
    )
    digest = hashlib.sha256("\n".join(normal).encode()).hexdigest()[:16]
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))
