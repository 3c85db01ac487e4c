"""Password and PIN verifiers: argon2id, never a clear secret at rest."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# RFC 9106 second recommended option, lighter on memory for many concurrent logins.
_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=2)


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
