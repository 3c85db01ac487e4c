"""Second factors that activate a credential: e-mailed one-time codes bound to one request, and
PINs, with a shared count of failed tries that holds on every engine and node.

Every check runs with the credential's row locked (`lock_for_factor_check`): tries on one
credential queue, each sees the count and the lock its predecessors committed, and after
sam.otp_max_attempts failures the credential locks until an administrator unlocks it.
Verifiers are computed in the HSM by the caller (a `CodeVerifier`); this module only compares
and counts, so it never reaches the HSM itself."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.orm import Session

from signet.auth.tokens import _aware, now
from signet.config import SamSettings
from signet.errors import InvalidRequest
from signet.events import append_event
from signet.store import Credential, OtpChallenge, bulk_update

AUTHORIZE = "authorize"
ACTIVATION = "activation"
# Activation codes: 10 characters from 31 that are hard to confuse (no 0/O, 1/I/L), about
# 50 bits: they live for days, not minutes. Shown as XXXXX-XXXXX; case, spaces and dashes
# are ignored when one is typed back.
ACTIVATION_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
ACTIVATION_LENGTH = 10
# Used codes still within their lifetime that a code is compared with before a miss counts
# as a failed try, so that a code sent twice (a retry, a double click) is "already used".
_RECENT_USED = 3


@dataclass(frozen=True)
class CodeTerms:
    """What a code's verifier covers besides the code itself."""

    credential_id: str
    purpose: str
    binding: str | None  # the request's canonical JSON; None: bound to its first use
    expires: int  # epoch seconds


# (terms, code) -> the verifier (hex), computed where the key is (the SAM, in the HSM).
CodeVerifier = Callable[[CodeTerms, str], str]


@dataclass(frozen=True)
class FactorResult:
    ok: bool
    error: str = ""
    description: str = ""


_CREDENTIALS = cast(Table, Credential.__table__)
_LOCK_CREDENTIAL = select(_CREDENTIALS).with_for_update()


def lock_for_factor_check(session: Session, credential_id: str) -> Any:
    """The credential's row, locked until the transaction ends (SELECT ... FOR UPDATE; SQLite's
    writers are serialised already). Take it before any factor is compared: whoever waited
    here then reads the failures and the lock committed before it."""
    row = (
        session.connection()
        .execute(_LOCK_CREDENTIAL.where(_CREDENTIALS.c.id == credential_id))
        .first()
    )
    if row is None:
        raise InvalidRequest("Invalid parameter credentialID")
    return row


def _expiry(moment: datetime) -> int:
    return int(_aware(moment).timestamp())


def new_otp(
    session: Session,
    credential: Any,
    settings: SamSettings,
    *,
    binding: str | None,
    verifier: CodeVerifier,
) -> tuple[str, datetime]:
    """Create a fresh code for the credential, for the request `binding` (None: the first
    authorize that uses it); earlier codes stop working. Return (code, expiry). The caller
    holds the credential's row lock."""
    code = "".join(secrets.choice("0123456789") for _ in range(settings.otp_digits))
    return code, _store_code(
        session,
        credential,
        code,
        AUTHORIZE,
        binding,
        verifier,
        timedelta(seconds=settings.otp_lifetime_seconds),
    )


def _store_code(
    session: Session,
    credential: Any,
    code: str,
    purpose: str,
    binding: str | None,
    verifier: CodeVerifier,
    lifetime: timedelta,
) -> datetime:
    """Keep the verifier of a new code for `purpose` and retire the credential's unused
    codes (of every purpose for an OTP, of its own for an activation code); its expiry."""
    stamp = now().replace(microsecond=0)
    expires_at = stamp + lifetime
    terms = CodeTerms(credential.id, purpose, binding, _expiry(expires_at))
    retired = [OtpChallenge.credential_id == credential.id, OtpChallenge.used.is_(False)]
    if purpose == ACTIVATION:
        retired.append(OtpChallenge.purpose == ACTIVATION)
    session.execute(bulk_update(OtpChallenge).where(*retired).values(used=True))
    session.add(
        OtpChallenge(
            credential_id=credential.id,
            purpose=purpose,
            binding=binding,
            code_hash=verifier(terms, code),
            created_at=stamp,
            expires_at=expires_at,
            used=False,
        )
    )
    return expires_at


def _reset_failures(session: Session, credential: Any) -> None:
    if credential.failed_attempts:
        session.connection().execute(
            update(_CREDENTIALS).where(_CREDENTIALS.c.id == credential.id).values(failed_attempts=0)
        )


def _fail(
    session: Session,
    credential: Any,
    settings: SamSettings,
    actor: str,
    factor: str,
    error: str,
    description: str,
) -> FactorResult:
    """Count a failed try and lock the credential at the limit (the caller holds the
    credential's row lock, so tries are counted one after the other)."""
    conn = session.connection()
    attempts = conn.execute(
        update(_CREDENTIALS)
        .where(_CREDENTIALS.c.id == credential.id)
        .values(failed_attempts=_CREDENTIALS.c.failed_attempts + 1)
        .returning(_CREDENTIALS.c.failed_attempts)
    ).scalar_one()
    left = settings.otp_max_attempts - attempts
    if left <= 0:
        conn.execute(
            update(_CREDENTIALS).where(_CREDENTIALS.c.id == credential.id).values(locked=True)
        )
    event = f"{factor.lower().replace(' ', '_')}.failed"
    append_event(
        session,
        event,
        actor=actor,
        subject=credential.id,
        outcome="failure",
        reason=description,
        attempts=attempts,
    )
    if left <= 0:
        append_event(
            session,
            "credential.locked",
            actor=actor,
            subject=credential.id,
            outcome="failure",
            reason=f"{attempts} failed {factor} tries",
        )
        return FactorResult(
            False,
            "access_denied" if factor == "OTP" else "invalid_request",
            f"{description}; the credential is now locked: ask an administrator to unlock it",
        )
    return FactorResult(False, error, f"{description} ({left} tries left)")


def _matches(
    verifier: CodeVerifier, challenge: OtpChallenge, binding: str | None, code: str
) -> bool:
    terms = CodeTerms(
        challenge.credential_id, challenge.purpose, binding, _expiry(challenge.expires_at)
    )
    return hmac.compare_digest(challenge.code_hash, verifier(terms, code))


def verify_otp(
    session: Session,
    credential: Any,
    code: str,
    settings: SamSettings,
    actor: str,
    *,
    binding: str,
    verifier: CodeVerifier,
) -> FactorResult:
    """Check `code` for the authorization request `binding` and count the outcome. The caller
    holds the credential's row lock (`lock_for_factor_check`).

    A code issued for another request is refused (and burnt); an unbound code (v1 sendOTP) is
    bound to this request now. A right code that was already used is refused without counting
    a failed try: whoever sends it knew it."""
    stamp = now()
    challenges = (
        session.execute(
            select(OtpChallenge)
            .where(
                OtpChallenge.credential_id == credential.id,
                OtpChallenge.purpose == AUTHORIZE,
                or_(OtpChallenge.used.is_(False), OtpChallenge.expires_at > stamp),
            )
            .order_by(OtpChallenge.id.desc())
            .limit(_RECENT_USED + 1)
        )
        .scalars()
        .all()
    )
    pending = next((c for c in challenges if not c.used), None)
    if pending is not None and _aware(pending.expires_at) <= stamp:
        pending.used = True
        return _fail(
            session,
            credential,
            settings,
            actor,
            "OTP",
            "invalid_otp",
            f"The OTP has expired (valid {settings.otp_lifetime_seconds} s); request a new one",
        )
    if pending is not None:
        if pending.binding is None and _matches(verifier, pending, None, code):
            # v1 sendOTP: this first use decides what the code approves; the row now says so.
            pending.binding = binding
            pending.code_hash = verifier(
                CodeTerms(credential.id, AUTHORIZE, binding, _expiry(pending.expires_at)), code
            )
            return _verified(session, credential, pending, actor, bound_on_use=True)
        if pending.binding is not None and _matches(verifier, pending, binding, code):
            return _verified(session, credential, pending, actor, bound_on_use=False)
        if (
            pending.binding is not None
            and pending.binding != binding
            and _matches(verifier, pending, pending.binding, code)
        ):
            pending.used = True  # the code is known to whoever sent it: it approves nothing now
            return _fail(
                session,
                credential,
                settings,
                actor,
                "OTP",
                "invalid_otp",
                "The OTP was issued for another request (other hashes, count, "
                "description or document labels); it is void now: request a new "
                "code for this request",
            )
    for used in (c for c in challenges if c.used and _aware(c.expires_at) > stamp):
        if _matches(verifier, used, used.binding, code):
            append_event(
                session,
                "otp.reused",
                actor=actor,
                subject=credential.id,
                outcome="failure",
                reason="the OTP was already used",
            )
            return FactorResult(
                False,
                "invalid_otp",
                "The OTP has already been used (or replaced by a newer one); request a new one",
            )
    return _fail(
        session,
        credential,
        settings,
        actor,
        "OTP",
        "invalid_otp",
        "The OTP is invalid"
        if pending is not None
        else "No OTP is pending for this credential; request one first",
    )


def _verified(
    session: Session, credential: Any, challenge: OtpChallenge, actor: str, *, bound_on_use: bool
) -> FactorResult:
    challenge.used = True
    _reset_failures(session, credential)
    append_event(
        session, "otp.verified", actor=actor, subject=credential.id, bound_on_use=bound_on_use
    )
    return FactorResult(True)


def verify_pin(
    session: Session, credential: Any, matches: bool, settings: SamSettings, actor: str
) -> FactorResult:
    """Count the outcome of a PIN check (the SAM compares the PIN in the HSM). The caller
    holds the credential's row lock and compared after taking it."""
    if not matches:
        return _fail(
            session, credential, settings, actor, "PIN", "invalid_pin", "The PIN is invalid"
        )
    _reset_failures(session, credential)
    return FactorResult(True)


# -- activation codes (the owner's first use of a pending credential) -------------------------
def normal_activation_code(code: str) -> str:
    """An activation code as typed (any case, spaces and dashes) in its stored form."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def shown_activation_code(code: str) -> str:
    """An activation code as the mail shows it: two groups of five."""
    return f"{code[:5]}-{code[5:]}"


def new_activation_code(
    session: Session, credential: Any, settings: SamSettings, *, verifier: CodeVerifier
) -> tuple[str, datetime]:
    """Create a fresh activation code for a pending credential; earlier activation codes stop
    working. Only its verifier is stored. Return (code, expiry). The caller holds the
    credential's row lock."""
    code = "".join(secrets.choice(ACTIVATION_ALPHABET) for _ in range(ACTIVATION_LENGTH))
    return code, _store_code(
        session,
        credential,
        code,
        ACTIVATION,
        None,
        verifier,
        timedelta(hours=settings.activation_lifetime_hours),
    )


def verify_activation_code(
    session: Session,
    credential: Any,
    code: str,
    settings: SamSettings,
    actor: str,
    *,
    verifier: CodeVerifier,
) -> FactorResult:
    """Check an activation code and count a wrong one like a wrong OTP (the credential locks
    at sam.otp_max_attempts). The caller holds the credential's row lock. A right code is
    spent here; an expired one is refused without counting (it opens nothing any more)."""
    pending = (
        session.execute(
            select(OtpChallenge)
            .where(
                OtpChallenge.credential_id == credential.id,
                OtpChallenge.purpose == ACTIVATION,
                OtpChallenge.used.is_(False),
            )
            .order_by(OtpChallenge.id.desc())
            .limit(1)
        )
        .scalars()
        .first()
    )
    lifetime = f"{settings.activation_lifetime_hours} hours"
    if pending is None:
        append_event(
            session,
            "activation.failed",
            actor=actor,
            subject=credential.id,
            outcome="failure",
            reason="no activation code is pending",
        )
        return FactorResult(
            False,
            "invalid_request",
            "No activation code is pending for this credential; ask your "
            "administrator to send a new one",
        )
    if _aware(pending.expires_at) <= now():
        append_event(
            session,
            "activation.failed",
            actor=actor,
            subject=credential.id,
            outcome="failure",
            reason="the activation code has expired",
        )
        return FactorResult(
            False,
            "invalid_request",
            f"The activation code has expired (valid {lifetime}); ask your "
            "administrator to send a new one",
        )
    if not _matches(verifier, pending, None, normal_activation_code(code)):
        return _fail(
            session,
            credential,
            settings,
            actor,
            "activation code",
            "invalid_request",
            "The activation code is invalid",
        )
    pending.used = True
    _reset_failures(session, credential)
    return FactorResult(True)
