"""Second factors that activate a credential: e-mailed OTP and PIN, with a shared lockout.

Failures are counted on the credential; after sam.otp_max_attempts the credential locks until
an administrator unlocks it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from signet.auth.tokens import _aware, now
from signet.config import SamSettings
from signet.events import append_event
from signet.store import Credential, OtpChallenge, bulk_update


def _code_digest(credential_id: str, code: str) -> str:
    return hashlib.sha256(f"{credential_id}:{code}".encode()).hexdigest()


def new_otp(session: Session, credential: Any, settings: SamSettings) -> str:
    """Create a fresh OTP for the credential (earlier ones stop working); return the code."""
    code = "".join(secrets.choice("0123456789") for _ in range(settings.otp_digits))
    stamp = now()
    session.execute(bulk_update(OtpChallenge).where(OtpChallenge.credential_id == credential.id,
                                               OtpChallenge.used.is_(False))
                    .values(used=True))
    session.add(OtpChallenge(credential_id=credential.id,
                             code_hash=_code_digest(credential.id, code), created_at=stamp,
                             expires_at=stamp + timedelta(seconds=settings.otp_lifetime_seconds),
                             used=False))
    return code


@dataclass(frozen=True)
class FactorResult:
    ok: bool
    error: str = ""
    description: str = ""


_CREDENTIALS = cast(Table, Credential.__table__)


def _reset_failures(session: Session, credential: Any) -> None:
    if credential.failed_attempts:
        session.connection().execute(update(_CREDENTIALS)
                                     .where(_CREDENTIALS.c.id == credential.id)
                                     .values(failed_attempts=0))


def _fail(session: Session, credential: Any, settings: SamSettings, actor: str,
          factor: str, error: str, description: str) -> FactorResult:
    """Count a failed try (one atomic increment, so concurrent tries all count) and lock the
    credential at the limit. `credential` is a row or an object with its columns."""
    conn = session.connection()
    conn.execute(update(_CREDENTIALS).where(_CREDENTIALS.c.id == credential.id)
                 .values(failed_attempts=_CREDENTIALS.c.failed_attempts + 1))
    attempts = conn.execute(select(_CREDENTIALS.c.failed_attempts)
                            .where(_CREDENTIALS.c.id == credential.id)).scalar_one()
    left = settings.otp_max_attempts - attempts
    append_event(session, f"{factor.lower()}.failed", actor=actor, subject=credential.id,
                 outcome="failure", reason=description, attempts=attempts)
    if left <= 0:
        conn.execute(update(_CREDENTIALS).where(_CREDENTIALS.c.id == credential.id)
                     .values(locked=True))
        append_event(session, "credential.locked", actor=actor, subject=credential.id,
                     outcome="failure", reason=f"{attempts} failed {factor} tries")
        return FactorResult(False, "access_denied" if factor == "OTP" else "invalid_request",
                            f"{description}; the credential is now locked: ask an administrator "
                            "to unlock it")
    return FactorResult(False, error, f"{description} ({left} tries left)")


def verify_otp(session: Session, credential: Any, code: str, settings: SamSettings,
               actor: str) -> FactorResult:
    challenge = session.execute(
        select(OtpChallenge).where(OtpChallenge.credential_id == credential.id,
                                   OtpChallenge.used.is_(False))
        .order_by(OtpChallenge.id.desc()).limit(1).with_for_update()
    ).scalar_one_or_none()
    if challenge is None:
        return _fail(session, credential, settings, actor, "OTP", "invalid_otp",
                     "No OTP is pending for this credential; request one first")
    if _aware(challenge.expires_at) <= now():
        challenge.used = True
        return _fail(session, credential, settings, actor, "OTP", "invalid_otp",
                     f"The OTP has expired (valid {settings.otp_lifetime_seconds} s); "
                     "request a new one")
    if not hmac.compare_digest(challenge.code_hash, _code_digest(credential.id, code)):
        return _fail(session, credential, settings, actor, "OTP", "invalid_otp",
                     "The OTP is invalid")
    challenge.used = True
    _reset_failures(session, credential)
    append_event(session, "otp.verified", actor=actor, subject=credential.id)
    return FactorResult(True)


def verify_pin(session: Session, credential: Any, matches: bool, settings: SamSettings,
               actor: str) -> FactorResult:
    """Count the outcome of a PIN check (the SAM compares the PIN in the HSM)."""
    if not matches:
        return _fail(session, credential, settings, actor, "PIN", "invalid_pin",
                     "The PIN is invalid")
    _reset_failures(session, credential)
    return FactorResult(True)
