"""Password verifiers: argon2id, never a clear secret at rest. (Credential PINs are checked
by the SAM with an HMAC keyed in the HSM: see signet.sam.pin_verifier.)"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): ~20 ms, one core, at each
# login: slow enough to hurt offline guessing, fast enough not to matter to users.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored: str | None, candidate: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, candidate)
    except (VerificationError, InvalidHashError):
        return False


def check_password_policy(password: str) -> None:
    if len(password) < 8:
        raise ValueError("password too short: use at least 8 characters")
    if len(password) > 1024:
        raise ValueError("password too long: at most 1024 characters")
