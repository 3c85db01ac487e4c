"""Sessions: password logins, refresh tokens (rotated on each use), bearer authentication and
revocation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from signet.auth import assurance
from signet.auth.throttle import (
    ThrottleKeys,
    audit_refusal,
    prune_due,
    prune_stale,
    reserve_login,
    settle_login,
)
from signet.auth.tokens import (
    Claimed,
    Principal,
    check_password,
    record_login,
    record_refresh_token,
    resolve_token,
    revoke_refresh_family,
    revoke_token,
    spend_refresh_token,
    token_row_exists,
)
from signet.errors import InvalidRequest, InvalidToken, SignetError, TooManyRequests
from signet.events import append_event
from signet.sam import RefreshClaims, mint_refresh_token, mint_token, open_refresh_token, open_token
from signet.signing.context import Services
from signet.signing.prune import prune_if_due
from signet.store import User


@dataclass(frozen=True)
class Login:
    """What auth/login answers: an access token, its lifetime, and a refresh token when one
    was asked for (rememberMe) or used."""

    access_token: str
    expires_in: int
    refresh_token: str | None = None


def _moment(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


# What a password login reaches on its own (docs/assurance.md).
PASSWORD_LOGIN = assurance.reached(("pwd",))


def login(
    services: Services, username: str, password: str, source: str, *, remember_me: bool = False
) -> Login:
    """A password login, throttled per user name and per client address (`source`) on the
    counts all nodes share; the tokens are minted by the SAM. With `remember_me`, a refresh
    token begins a family that lives web.refresh_token_lifetime_seconds (none if 0)."""
    keys, limits = ThrottleKeys.of(username, source), services.settings.login
    reserve_try(services, keys, username, source)
    result = None
    with services.database.transaction() as session:
        user = check_password(session, username, password, source=source)
        if user is not None:
            result = issue_tokens(services, session, user, PASSWORD_LOGIN, source, remember_me)
        settle_login(session, keys, limits, ok=result is not None, username=username, source=source)
    if prune_due():
        with services.database.transaction() as session:
            prune_stale(session, limits)
    prune_if_due(services)
    if result is None:
        raise SignetError("Invalid username or password", error="authentication_error", status=401)
    return result


def reserve_try(services: Services, keys: ThrottleKeys, username: str, source: str) -> None:
    """Reserve a login try on the throttle's keys, or refuse (429, audited) a blocked one."""
    with services.database.transaction() as session:
        wait = reserve_login(session, keys, services.settings.login)
    if wait is not None:
        with services.database.transaction() as session:
            audit_refusal(session, username=username, source=source, retry_after=wait)
        raise TooManyRequests(
            f"Too many failed logins for this user or from this address; try again in {wait} s",
            retry_after=wait,
        )


def issue_tokens(
    services: Services,
    session: Session,
    user: User,
    level: assurance.Level,
    source: str,
    remember_me: bool,
    method: str = "password",
) -> Login:
    """Mint (in the SAM) and record an access token for a login that reached `level`, and
    with `remember_me` the first refresh token of a family."""
    web = services.settings.web
    lifetime = web.access_token_lifetime_seconds
    token, claims = mint_token(
        services.hsm,
        user_id=user.id,
        username=user.username,
        methods=" ".join(level.methods),
        loa=level.eidas,
        lifetime=lifetime,
    )
    record_login(
        session,
        token,
        user_id=user.id,
        username=user.username,
        methods=claims.methods,
        loa=claims.loa,
        expires_at=_moment(claims.expires_at),
        source=source,
        method=method,
    )
    refresh = None
    if remember_me:
        begun = begin_family(
            services,
            user_id=user.id,
            username=user.username,
            methods=claims.methods,
            loa=claims.loa,
        )
        if begun is not None:
            refresh = begun[0]
            keep_refresh_token(session, *begun, access_token=token)
    return Login(token, lifetime, refresh)


def check_login(services: Services, username: str, password: str, source: str) -> Principal:
    """A password login on Signet's own pages (OAuth 2.0): throttled on the same shared counts
    and audited as `oauth2.login`; the principal, no token (the token endpoint mints it once
    the client has the code)."""
    keys, limits = ThrottleKeys.of(username, source), services.settings.login
    reserve_try(services, keys, username, source)
    found = None
    with services.database.transaction() as session:
        user = check_password(session, username, password, source=source)
        if user is not None:
            found = page_login(session, user, PASSWORD_LOGIN, "password", source)
        settle_login(session, keys, limits, ok=found is not None, username=username, source=source)
    if found is None:
        raise SignetError("Invalid username or password", error="authentication_error", status=401)
    return found


def page_login(
    session: Session, user: User, level: assurance.Level, method: str, source: str
) -> Principal:
    """A login on Signet's own pages that reached `level` by `method`: audited as
    `oauth2.login`; the principal the pages carry on (no token: the token endpoint mints it
    once the client has the code)."""
    append_event(
        session,
        "oauth2.login",
        actor=user.username,
        subject=user.username,
        method=method,
        source=source,
        auth_methods=list(level.methods),
        loa=level.eidas,
    )
    return Principal(user.id, user.username, " ".join(level.methods), level.eidas)


def begin_family(
    services: Services,
    *,
    user_id: int,
    username: str,
    methods: str,
    loa: str,
    client: str | None = None,
) -> tuple[str, RefreshClaims] | None:
    """The first refresh token of a family, minted by the SAM for a login that reached
    `methods` and `loa` (and, from the OAuth 2.0 token endpoint, bound to its `client`): the
    family ends web.refresh_token_lifetime_seconds from now. None when that is 0."""
    lifetime = services.settings.web.refresh_token_lifetime_seconds
    if not lifetime:
        return None
    return mint_refresh_token(
        services.hsm,
        user_id=user_id,
        username=username,
        methods=methods,
        loa=loa,
        family=None,
        expires_at=int(time.time()) + lifetime,
        client=client,
    )


def keep_refresh_token(
    session: Session, refresh_token: str, claims: RefreshClaims, *, access_token: str
) -> None:
    """Record a refresh token the SAM minted, with the access token issued beside it."""
    record_refresh_token(
        session,
        refresh_token,
        user_id=claims.user_id,
        family=claims.family,
        access_token=access_token,
        expires_at=_moment(claims.expires_at),
        client_id=claims.client,
    )


@dataclass(frozen=True)
class Renewal:
    """Where a refresh token is renewed, and how that is audited: auth/login (no client,
    `login` and `login.failed`) or an OAuth 2.0 client at the token endpoint (its client ID,
    `oauth2.token_issued` and `oauth2.token_refused`)."""

    lifetime: int  # the new access token's, never past the family's end
    client: str | None = None
    issued: str = "login"
    refused: str = "login.failed"


def refresh(services: Services, refresh_token: str, source: str) -> Login:
    """auth/login with a refresh token: the token (sealed by the SAM) is spent and replaced
    by the next of its family, with a new access token; the family's end stays where the
    password login put it. A token spent before is a replay: its whole family is revoked."""
    claims = open_refresh_token(services.hsm, refresh_token)
    if claims.client is not None:
        # An OAuth 2.0 client's renews only at the token endpoint, with that client's
        # authentication: here it would need none.
        raise InvalidRequest(
            "Invalid parameter refresh_token: issued to an OAuth 2.0 client, which renews it "
            "at /oauth2/token"
        )
    if claims.expires_at <= int(time.time()):
        raise InvalidRequest("Invalid parameter refresh_token: expired; log in with the password")
    outcome = rotate(
        services,
        refresh_token,
        claims,
        source,
        Renewal(services.settings.web.access_token_lifetime_seconds),
    )
    if isinstance(outcome, str):
        raise InvalidRequest(
            f"Invalid parameter refresh_token: {outcome}; log in with the password"
        )
    return outcome


def rotate(
    services: Services, refresh_token: str, claims: RefreshClaims, source: str, renewal: Renewal
) -> Login | str:
    """Spend a refresh token whose claims the SAM opened (not expired) and replace it by the
    next of its family, with a new access token; else why not: "unknown", "revoked",
    "replayed" (a token spent before: its whole family is revoked) or "user disabled". The
    refusal (and a replay's revocation) is audited and committed before the caller answers."""
    with services.database.transaction() as session:
        reason = spend_refresh_token(session, refresh_token, user_id=claims.user_id)
        if reason is None:
            return _renew(services, session, claims, renewal, source)
        family = (
            revoke_refresh_family(session, refresh_token, user_id=claims.user_id)
            if reason == "replayed"
            else None
        )
        append_event(
            session,
            renewal.refused,
            actor=renewal.client or claims.username,
            subject=claims.username,
            outcome="failure",
            method="refresh_token",
            reason=f"refresh token {reason}",
            source=source,
            **({"client_id": renewal.client} if renewal.client else {}),
            **({"revoked_family": family} if family else {}),
        )
    return reason


def _renew(
    services: Services, session: Session, claims: RefreshClaims, renewal: Renewal, source: str
) -> Login:
    lifetime = max(1, min(claims.expires_at - int(time.time()), renewal.lifetime))
    token, access = mint_token(
        services.hsm,
        user_id=claims.user_id,
        username=claims.username,
        methods=claims.methods,
        loa=claims.loa,
        lifetime=lifetime,
    )
    record_login(
        session,
        token,
        user_id=claims.user_id,
        username=claims.username,
        methods=access.methods,
        loa=access.loa,
        expires_at=_moment(access.expires_at),
        source=source,
        method="refresh_token",
        event=renewal.issued,
        **({"client_id": renewal.client, "family": claims.family} if renewal.client else {}),
    )
    following, next_claims = mint_refresh_token(
        services.hsm,
        user_id=claims.user_id,
        username=claims.username,
        methods=claims.methods,
        loa=claims.loa,
        family=claims.family,
        expires_at=claims.expires_at,
        client=claims.client,
    )
    keep_refresh_token(session, following, next_claims, access_token=token)
    return Login(token, lifetime, following)


def claimed(services: Services, token: str) -> Claimed:
    """The caller behind a bearer token as its claims say (MAC-checked by the SAM, not
    expired), the database not asked yet: signHash reads the token's state with the
    credential (`signing.csc.signing_credential`). A token refused by the SAM that the
    database nevertheless knows was written there by someone else: recorded."""
    try:
        claims = open_token(services.hsm, token)
    except InvalidToken:
        with services.database.single_read() as conn:
            forged = token_row_exists(conn, token)
        if forged:
            with services.database.transaction() as session:
                append_event(
                    session,
                    "integrity.violation",
                    actor="-",
                    subject="access_tokens",
                    outcome="failure",
                    reason="an access token row the SAM did not mint was presented",
                )
        raise
    if claims.expires_at <= time.time():
        raise InvalidToken("The access token has expired")
    return Claimed(
        Principal(claims.user_id, claims.username, claims.methods, claims.loa, claims.sad), token
    )


def authenticate(services: Services, token: str) -> Principal:
    """The caller behind a bearer token: its claims are the SAM's (`claimed`), the database
    adds only revocation and the user's status."""
    caller = claimed(services, token)
    if caller.principal.sad is not None:
        # A credential token (OAuth 2.0 scope "credential") signs the hashes it was granted
        # for, and nothing else: it lists, authorizes and revokes nothing.
        raise InvalidToken(
            "This access token (scope credential) is good for signatures/signHash only"
        )
    with services.database.single_read() as conn:
        return resolve_token(conn, caller)


def logout(
    services: Services, principal: Principal, token: str, hint: str = "access_token"
) -> None:
    """Revoke one of the caller's tokens: an access token, or a refresh token's family."""
    with services.database.transaction() as session:
        revoke_token(session, principal, token, hint=hint)
