"""The SAM's own secret keys in the HSM, and the MACs made with them: what no database row can
forge, because the key never leaves the token.

Three HMAC-SHA-256 keys, each for one purpose (key separation), created by `signet init`:
- PIN_KEY: credential PIN verifiers;
- SEAL_KEY: access tokens, SADs, credential records and one-time-code verifiers;
- AUDIT_KEY: the audit trail's record MACs and checkpoints.

Every MAC names its domain (what kind of object it authenticates) and encodes its parts
unambiguously (each length-prefixed), so a MAC made for one kind of object never verifies
as another."""

from __future__ import annotations

import hmac
import struct

from signet.hsm import Hsm

PIN_KEY = "signet-pin-hmac"
SEAL_KEY = "signet-sam-hmac"
AUDIT_KEY = "signet-audit-hmac"
ALL_KEYS = (PIN_KEY, SEAL_KEY, AUDIT_KEY)

Part = bytes | str | int | None


def prepare_keys(hsm: Hsm) -> list[str]:
    """Create whichever of the SAM's keys the token lacks; return the labels created now."""
    return [label for label in ALL_KEYS if hsm.ensure_secret_key(label)]


def encode(domain: str, *parts: Part) -> bytes:
    """The exact bytes a MAC covers: the domain, then each part with its type and length."""
    out = [b"signet-mac-v1\0", domain.encode(), b"\0"]
    for part in parts:
        if part is None:
            out.append(b"n")
            continue
        if isinstance(part, bool):
            raise TypeError("booleans are not MAC parts; use an int")
        kind, data = (
            (b"b", part)
            if isinstance(part, bytes)
            else (b"i", str(part).encode())
            if isinstance(part, int)
            else (b"s", part.encode("utf-8", "surrogatepass"))
        )
        out += [kind, struct.pack(">I", len(data)), data]
    return b"".join(out)


def mac(hsm: Hsm, label: str, domain: str, *parts: Part) -> bytes:
    """HMAC-SHA-256, computed in the HSM under the key `label`, over `domain` and `parts`."""
    return hsm.hmac_sha256(label, encode(domain, *parts))


def mac_matches(hsm: Hsm, label: str, tag: bytes | str | None, domain: str, *parts: Part) -> bool:
    """Whether `tag` (raw or hex) is the MAC of `domain` and `parts` under `label`."""
    if not tag:
        return False
    if isinstance(tag, str):
        try:
            tag = bytes.fromhex(tag)
        except ValueError:
            return False
    return hmac.compare_digest(tag, mac(hsm, label, domain, *parts))
