"""One-time-code verifiers: an HMAC in the HSM over the credential, the request a code approves
and the code, so that no database row can stand for a code its writer chose.

A request's binding is its canonical JSON: the multiset of hashes (standard base64, sorted),
the hash algorithm OID, the number of signatures, the client's description and document labels
(sorted). Two requests approve the same thing exactly when their bindings are equal."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from signet.hsm import Hsm
from signet.sam import decode_hash, keys

OTP_DOMAIN = "otp"


@dataclass(frozen=True)
class Request:
    """What an authorization request asks to sign, as the code's holder is told it."""

    hashes: tuple[str, ...]  # standard base64, sorted
    hash_algorithm: str | None
    num_signatures: int
    description: str | None
    labels: tuple[str, ...]  # sorted

    @classmethod
    def of(
        cls,
        *,
        hashes: Sequence[str],
        hash_algorithm: str | None,
        num_signatures: int,
        description: str | None,
        labels: Sequence[str],
    ) -> Request:
        normal = sorted(base64.b64encode(decode_hash(h)).decode() for h in hashes)
        return cls(
            tuple(normal),
            hash_algorithm,
            num_signatures,
            description or None,
            tuple(sorted(labels)),
        )

    def binding(self) -> str:
        """The canonical JSON the verifier covers and the challenge row keeps."""
        return json.dumps(
            {
                "hashes": list(self.hashes),
                "hash_algorithm": self.hash_algorithm,
                "num_signatures": self.num_signatures,
                "description": self.description,
                "labels": list(self.labels),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_binding(cls, binding: str) -> Request:
        data = json.loads(binding)
        return cls(
            tuple(data["hashes"]),
            data["hash_algorithm"],
            int(data["num_signatures"]),
            data["description"],
            tuple(data["labels"]),
        )

    def fingerprint(self) -> str:
        """A short fingerprint of the hashes a user can compare with what her client shows:
        the first 8 bytes of SHA-256 over the sorted base64 hashes, one a line, in hex."""
        if not self.hashes:
            return "none"
        digest = hashlib.sha256("\n".join(self.hashes).encode()).hexdigest()[:16]
        return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


def otp_verifier(
    hsm: Hsm, credential_id: str, purpose: str, binding: str | None, expires: int, code: str
) -> str:
    """What a challenge row stores for `code`: the MAC under the SAM's seal key over the
    credential, the purpose, the binding (None: bound on first use), the expiry (epoch
    seconds, so a row's lifetime cannot be stretched) and the code, in hex."""
    return keys.mac(
        hsm, keys.SEAL_KEY, OTP_DOMAIN, credential_id, purpose, binding, expires, code
    ).hex()
