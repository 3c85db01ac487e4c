"""Bearer access tokens: who may log in, and what the database keeps of a token the SAM
minted (its SHA-256, for revocation)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from signet.auth.passwords import hash_secret, verify_secret
from signet.errors import InvalidRequest, InvalidToken
from signet.events import append_event
from signet.store import AccessToken, Authenticator, User, bulk_update


@functools.cache
def _dummy_hash() -> str:
    # Verified for unknown users, so that a login takes as long whether the user exists or not.
    return hash_secret(secrets.token_hex(16))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind an access token, and how she authenticated."""

    user_id: int
    username: str
    auth_methods: str
    loa: str


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_password(session: Session, username: str, password: str, *, source: str
                   ) -> User | None:
    """The active user with this password, or None. A failure is audited in `session`'s
    transaction (the success is, with its token, by `record_login`)."""
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    stored = None
    if user is not None:
        stored = session.execute(
            select(Authenticator.secret).where(Authenticator.user_id == user.id,
                                               Authenticator.kind == "password",
                                               Authenticator.status == "active")
        ).scalar_one_or_none()
    ok = verify_secret(stored or _dummy_hash(), password) and stored is not None
    if user is None or not ok or user.status != "active":
        reason = ("unknown user" if user is None else
                  "user disabled" if ok else "wrong password")
        append_event(session, "login.failed", actor=username[:128], subject=username[:256],
                     outcome="failure", method="password", reason=reason, source=source)
        return None
    return user


def record_login(session: Session, token: str, *, user_id: int, username: str, methods: str,
                 loa: str, expires_at: datetime, source: str) -> None:
    """Keep what revocation needs of a token the SAM minted (its SHA-256, never the token),
    and audit the login."""
    session.add(AccessToken(token_hash=token_digest(token), user_id=user_id, scope="service",
                            auth_methods=methods, loa=loa, created_at=now(),
                            expires_at=expires_at, revoked=False))
    append_event(session, "login", actor=username, subject=username, method="password",
                 source=source)


_TOKENS = cast(Table, AccessToken.__table__)
_USERS = cast(Table, User.__table__)
_TOKEN_QUERY = (
    select(_TOKENS.c.revoked, _TOKENS.c.user_id, _USERS.c.status)
    .join_from(_TOKENS, _USERS, _TOKENS.c.user_id == _USERS.c.id)
    .where(_TOKENS.c.token_hash == bindparam("digest")))


def resolve_token(conn: Connection, token: str, *, user_id: int, username: str, methods: str,
                  loa: str, expires_at: datetime) -> Principal:
    """The caller behind a bearer token whose claims (user, methods, expiry) the SAM has
    verified: the database says only whether it was revoked and whether the user is
    disabled. One Core query: this runs on every API call."""
    if expires_at <= now():
        raise InvalidToken("The access token has expired")
    row = conn.execute(_TOKEN_QUERY, {"digest": token_digest(token)}).first()
    if row is None or row.user_id != user_id:
        raise InvalidToken("The access token is not valid")
    if row.revoked:
        raise InvalidToken("The access token has been revoked")
    if row.status != "active":
        raise InvalidToken("The user is disabled")
    return Principal(user_id, username, methods, loa)


def token_row_exists(conn: Connection, token: str) -> bool:
    """Whether the database holds a row for this token (one the SAM refused: forged)."""
    return conn.execute(select(_TOKENS.c.id).where(
        _TOKENS.c.token_hash == token_digest(token))).first() is not None


def revoke_token(session: Session, principal: Principal, token: str) -> None:
    """Revoke one of the caller's own tokens."""
    result = session.execute(
        bulk_update(AccessToken).where(AccessToken.token_hash == token_digest(token),
                                  AccessToken.user_id == principal.user_id)
        .values(revoked=True)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise InvalidRequest("Invalid string parameter token")
    append_event(session, "token.revoked", actor=principal.username, subject=principal.username)
