"""Bearer access tokens and refresh tokens: who may log in, and what the database keeps of a
token the SAM minted (its SHA-256, for revocation and, for a refresh token, its single use)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Select, Table, bindparam, select
from sqlalchemy.orm import Session

from signet.auth.passwords import hash_secret, verify_secret
from signet.errors import InvalidRequest, InvalidToken
from signet.events import append_event
from signet.store import AccessToken, Authenticator, RefreshToken, User, bulk_update


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
    # The SAD an OAuth 2.0 token of scope "credential" carries (sealed with the token).
    sad: str | None = None


@dataclass(frozen=True)
class Claimed:
    """A caller whose bearer token the SAM has verified (its MAC, its expiry), not yet
    checked against the database (revoked? user disabled?): the signing transaction does
    that in the query that reads the credential (`check_token_state`), one round trip less
    on the hot path. Not a Principal, so that it cannot stand in for one unchecked."""

    principal: Principal
    token: str


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_password(session: Session, username: str, password: str, *, source: str) -> User | None:
    """The active user with this password, or None. A failure is audited in `session`'s
    transaction (the success is, with its token, by `record_login`)."""
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    stored = None
    if user is not None:
        stored = session.execute(
            select(Authenticator.secret).where(
                Authenticator.user_id == user.id,
                Authenticator.kind == "password",
                Authenticator.status == "active",
            )
        ).scalar_one_or_none()
    ok = verify_secret(stored or _dummy_hash(), password) and stored is not None
    if user is None or not ok or user.status != "active":
        reason = "unknown user" if user is None else "user disabled" if ok else "wrong password"
        append_event(
            session,
            "login.failed",
            actor=username[:128],
            subject=username[:256],
            outcome="failure",
            method="password",
            reason=reason,
            source=source,
        )
        return None
    return user


def record_login(
    session: Session,
    token: str,
    *,
    user_id: int,
    username: str,
    methods: str,
    loa: str,
    expires_at: datetime,
    source: str,
    method: str = "password",
    scope: str = "service",
    event: str = "login",
    **details: Any,
) -> None:
    """Keep what revocation needs of a token the SAM minted (its SHA-256, never the token),
    and audit the login (`method`: password, or refresh_token) with the methods behind the
    token and the eIDAS level they reached."""
    session.add(
        AccessToken(
            token_hash=token_digest(token),
            user_id=user_id,
            scope=scope,
            auth_methods=methods,
            loa=loa,
            created_at=now(),
            expires_at=expires_at,
            revoked=False,
        )
    )
    append_event(
        session,
        event,
        actor=username,
        subject=username,
        method=method,
        source=source,
        auth_methods=methods.split(),
        loa=loa,
        **details,
    )


def record_refresh_token(
    session: Session,
    token: str,
    *,
    user_id: int,
    family: str,
    access_token: str,
    expires_at: datetime,
    client_id: str | None = None,
) -> None:
    """Keep what single use and revocation need of a refresh token the SAM minted: its
    SHA-256, its family, the SHA-256 of the access token issued with it, and the OAuth 2.0
    client it was issued to (None: auth/login's)."""
    session.add(
        RefreshToken(
            token_hash=token_digest(token),
            family=family,
            user_id=user_id,
            access_token_hash=token_digest(access_token),
            created_at=now(),
            expires_at=expires_at,
            used=False,
            revoked=False,
            client_id=client_id,
        )
    )


def spend_refresh_token(session: Session, token: str, *, user_id: int) -> str | None:
    """Mark a refresh token (its claims checked by the SAM) used, once: None when it was
    unused, else why it cannot be used. A token used before is a replay — it was stolen,
    or its holder's copy was — and the caller revokes its family."""
    spent = session.execute(
        bulk_update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_digest(token),
            RefreshToken.user_id == user_id,
            RefreshToken.used.is_(False),
            RefreshToken.revoked.is_(False),
        )
        .values(used=True)
    )
    if spent.rowcount == 1:  # type: ignore[attr-defined]
        user = session.get(User, user_id)
        return None if user is not None and user.status == "active" else "user disabled"
    row = session.execute(
        select(RefreshToken.used, RefreshToken.revoked).where(
            RefreshToken.token_hash == token_digest(token), RefreshToken.user_id == user_id
        )
    ).first()
    if row is None:  # no row, or one moved to another user by SQL
        return "unknown"
    return "revoked" if row.revoked else "replayed"


def revoke_refresh_family(session: Session, token: str, *, user_id: int) -> str | None:
    """Revoke the family of one of the user's refresh tokens: every refresh token in it and
    every access token issued with one. The family, or None if the token is not hers."""
    family = session.execute(
        select(RefreshToken.family).where(
            RefreshToken.token_hash == token_digest(token), RefreshToken.user_id == user_id
        )
    ).scalar_one_or_none()
    if family is not None:
        revoke_family(session, family, user_id=user_id)
    return family


def revoke_family(session: Session, family: str, *, user_id: int) -> None:
    """Revoke every refresh token of a family and every access token issued with one."""
    session.execute(
        bulk_update(RefreshToken).where(RefreshToken.family == family).values(revoked=True)
    )
    issued = select(RefreshToken.access_token_hash).where(RefreshToken.family == family)
    session.execute(
        bulk_update(AccessToken)
        .where(AccessToken.user_id == user_id, AccessToken.token_hash.in_(issued))
        .values(revoked=True)
    )


def family_issued_with(session: Session, access_digest: str) -> tuple[str, int, str | None] | None:
    """The refresh family whose token came with the access token of this SHA-256: (family,
    user id, client ID), or None."""
    row = session.execute(
        select(RefreshToken.family, RefreshToken.user_id, RefreshToken.client_id).where(
            RefreshToken.access_token_hash == access_digest
        )
    ).first()
    return None if row is None else (row.family, row.user_id, row.client_id)


_TOKENS = cast(Table, AccessToken.__table__)
_USERS = cast(Table, User.__table__)
_TOKEN_QUERY = (
    select(_TOKENS.c.revoked, _TOKENS.c.user_id, _USERS.c.status)
    .join_from(_TOKENS, _USERS, _TOKENS.c.user_id == _USERS.c.id)
    .where(_TOKENS.c.token_hash == bindparam("digest"))
)


def resolve_token(conn: Connection, caller: Claimed) -> Principal:
    """The caller behind a bearer token whose claims (user, methods, expiry) the SAM has
    verified: the database says only whether it was revoked and whether the user is
    disabled. One Core query: this runs on every API call."""
    row = conn.execute(_TOKEN_QUERY, {"digest": token_digest(caller.token)}).first()
    check_token_state(
        None if row is None else (row.revoked, row.user_id, row.status), caller.principal.user_id
    )
    return caller.principal


def with_token_state(table: Table, onclause: Any) -> Select[Any]:
    """A query for the row of `table` that `onclause` picks (bind parameters of the
    caller's choosing), with the state of the token whose digest is bound as `digest`:
    columns token_revoked, token_user_id, user_status (`token_state_of`). No token row, no
    row; a token but no row of `table`: its columns are None."""
    return (
        select(
            table,
            _TOKENS.c.revoked.label("token_revoked"),
            _TOKENS.c.user_id.label("token_user_id"),
            _USERS.c.status.label("user_status"),
        )
        .select_from(
            _TOKENS.join(_USERS, _TOKENS.c.user_id == _USERS.c.id).outerjoin(table, onclause)
        )
        .where(_TOKENS.c.token_hash == bindparam("digest"))
    )


def token_state_of(row: Any) -> tuple[bool, int, str] | None:
    """The token state of a `with_token_state` row (None: no row, no token)."""
    return None if row is None else (row.token_revoked, row.token_user_id, row.user_status)


def check_token_state(state: tuple[bool, int, str] | None, user_id: int) -> None:
    """Refuse a token whose database record — (revoked, user id, the user's status), None
    when there is none — says it was revoked, belongs to someone else or to a disabled user."""
    if state is None or state[1] != user_id:
        raise InvalidToken("The access token is not valid")
    if state[0]:
        raise InvalidToken("The access token has been revoked")
    if state[2] != "active":
        raise InvalidToken("The user is disabled")


def token_row_exists(conn: Connection, token: str) -> bool:
    """Whether the database holds a row for this token (one the SAM refused: forged)."""
    return (
        conn.execute(
            select(_TOKENS.c.id).where(_TOKENS.c.token_hash == token_digest(token))
        ).first()
        is not None
    )


def revoke_access_token(session: Session, principal: Principal, token: str) -> bool:
    """Revoke one of the caller's own access tokens; False if the token is not one."""
    result = session.execute(
        bulk_update(AccessToken)
        .where(
            AccessToken.token_hash == token_digest(token), AccessToken.user_id == principal.user_id
        )
        .values(revoked=True)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_token(
    session: Session, principal: Principal, token: str, *, hint: str = "access_token"
) -> None:
    """Revoke one of the caller's own tokens, looked for first where `hint` says (RFC 7009):
    an access token alone, a refresh token with its whole family."""
    kinds = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        kinds.reverse()
    for kind in kinds:
        if kind == "access_token" and revoke_access_token(session, principal, token):
            append_event(
                session,
                "token.revoked",
                actor=principal.username,
                subject=principal.username,
                kind=kind,
            )
            return
        if kind == "refresh_token":
            family = revoke_refresh_family(session, token, user_id=principal.user_id)
            if family is not None:
                append_event(
                    session,
                    "token.revoked",
                    actor=principal.username,
                    subject=principal.username,
                    kind=kind,
                    family=family,
                )
                return
    raise InvalidRequest("Invalid parameter token: not a token of the caller's")
