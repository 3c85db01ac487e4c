"""The OAuth 2.0 device authorization grant (RFC 8628): a device without a browser (the desktop
virtual card's agent) asks for a device code and a short user code, the user enters the code on
Signet's verification page and logs in and approves there with the login pages' own machinery,
and the device polls the token endpoint for a service token (with a refresh token when they
are enabled), issued once.

Both codes are stored as SHA-256 only; the approval is a grant sealed by the SAM with the
device code's digest, the client and the user inside, so a row edited by SQL grants nothing.
Guesses at user codes count on the login throttle's shared counts per address."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from signet.auth.throttle import ThrottleKeys, reserve_login, settle_login
from signet.auth.tokens import Principal, record_login, token_digest
from signet.errors import TooManyRequests
from signet.events import append_event
from signet.sam import mint_grant, mint_token, open_grant
from signet.signing.context import Services
from signet.signing.oauth2 import AuthRequest, Page, ticket
from signet.signing.oauth2_clients import Client, OAuth2Error, registered_client
from signet.signing.oauth2_tokens import client_of
from signet.signing.sessions import begin_family, keep_refresh_token
from signet.store import OAuth2DeviceCode, User, bulk_update

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 8628 6.1: 20 consonants (no vowels: no words), 8 of them: 20^8, about 2^34.6 codes.
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5  # RFC 8628 3.5: the interval grows by 5 s at each slow_down
MAX_INTERVAL = 60


def normal_user_code(value: object) -> str | None:
    """A user code as typed (any case, dashes and spaces anywhere) in its stored form, or
    None if it cannot be one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    code = "".join(c for c in value.upper() if c not in "- ")
    if len(code) != USER_CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def shown(code: str) -> str:
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


# -- the device's request (RFC 8628 3.1, 3.2) ------------------------------------------------
def authorize_device(
    services: Services,
    params: dict[str, Any],
    basic: tuple[str, str] | None,
    source: str,
    verification_uri: str,
) -> dict[str, Any]:
    """A device code and user code for an authenticated client, scope service only."""
    client = client_of(services, params, basic)
    scope = params.get("scope")
    if scope not in (None, "", "service"):
        raise OAuth2Error(
            "A device login is a service login: scope must be service (a credential's "
            "authorization needs the authorization code grant)",
            "invalid_scope",
        )
    settings = services.settings.oauth2
    lifetime, interval = (
        settings.device_code_lifetime_seconds,
        settings.device_poll_interval_seconds,
    )
    device_code = secrets.token_urlsafe(32)
    for _ in range(5):  # a user code may collide with an old row's: draw another
        user_code = "".join(secrets.choice(ALPHABET) for _ in range(USER_CODE_LENGTH))
        stamp = _now()
        try:
            with services.database.transaction() as session:
                session.add(
                    OAuth2DeviceCode(
                        device_code_hash=token_digest(device_code),
                        user_code_hash=token_digest(user_code),
                        client_id=client.client_id,
                        status="pending",
                        poll_interval=interval,
                        created_at=stamp,
                        expires_at=stamp + timedelta(seconds=lifetime),
                    )
                )
                session.flush()
                append_event(
                    session,
                    "oauth2.device.requested",
                    actor=client.client_id,
                    subject=client.client_id,
                    scope="service",
                    expires_in=lifetime,
                    source=source,
                )
            break
        except IntegrityError:
            continue
    else:  # pragma: no cover - five collisions in 2^34 codes
        raise OAuth2Error("No user code is free; try again", "temporarily_unavailable", 503)
    return {
        "device_code": device_code,
        "user_code": shown(user_code),
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?user_code={shown(user_code)}",
        "expires_in": lifetime,
        "interval": interval,
    }


# -- the verification page -------------------------------------------------------------------
def enter(services: Services, typed: str, cookie: str, source: str) -> Page:
    """The user code sent from the verification page: the login page for the device's
    request (its ticket bound to this browser), or the code page again saying why. Every
    try counts on the throttle's counts for this address; a wrong one is audited."""
    code = normal_user_code(typed)
    if code is None and not typed.strip():
        return Page("device", error="Enter the code your device shows", user_code=typed)
    keys = ThrottleKeys(f"device:{source}"[:300], f"addr:{source}"[:300])
    limits = services.settings.login
    with services.database.transaction() as session:
        wait = reserve_login(session, keys, limits)
    if wait is not None:
        with services.database.transaction() as session:
            append_event(
                session,
                "oauth2.device.throttled",
                actor="-",
                outcome="failure",
                source=source,
                retry_after=wait,
            )
        raise TooManyRequests(
            f"Too many wrong codes from this address; try again in {wait} s", retry_after=wait
        )
    found: tuple[int, str] | None = None
    with services.database.transaction() as session:
        if code is not None:
            row = session.execute(
                select(OAuth2DeviceCode).where(
                    OAuth2DeviceCode.user_code_hash == token_digest(code)
                )
            ).scalar_one_or_none()
            if row is not None and row.status == "pending" and _aware(row.expires_at) > _now():
                found = (row.id, row.client_id)
        settle_login(
            session,
            keys,
            limits,
            ok=found is not None,
            username="-",
            source=source,
            clear_user=False,
        )
        append_event(
            session,
            "oauth2.device.code_entered" if found else "oauth2.device.code_failed",
            actor="-",
            subject=found[1] if found else None,
            outcome="success" if found else "failure",
            source=source,
        )
    if found is None:
        return Page(
            "device",
            error="This code is unknown, used or expired; check it, or start again on the device",
            user_code=typed[:64],
        )
    client = registered_client(services, found[1])
    if client is None:  # removed since the device asked
        return Page("device", error="The application that asked is no longer registered")
    request = AuthRequest(
        client.client_id,
        client.name,
        "",
        None,
        "service",
        None,
        device=found[0],
        user_code=shown(code or ""),
    )
    return Page("login", request, ticket(services, request, cookie, "login"))


def decide(
    services: Services, request: AuthRequest, user: Principal, approve: bool, source: str
) -> Page:
    """The consent page's answer for a device: the approval sealed into the row (the device's
    next poll gets its token), or the row denied. The page says which; a code that expired or
    was decided meanwhile says so."""
    assert request.device is not None
    stamp = _now()
    with services.database.transaction() as session:
        row = session.get(OAuth2DeviceCode, request.device)
        live = (
            row is not None
            and row.status == "pending"
            and row.client_id == request.client_id
            and _aware(row.expires_at) > stamp
        )
        if row is None or not live:
            return Page("error", error="This device's code expired or was used; start again")
        approval = None
        if approve:
            left = max(1, int((_aware(row.expires_at) - stamp).total_seconds()))
            approval = mint_grant(
                services.hsm,
                "device",
                {
                    "h": row.device_code_hash,
                    "c": row.client_id,
                    "u": [user.user_id, user.username, user.auth_methods, user.loa],
                },
                left,
            )
        decided = session.execute(
            bulk_update(OAuth2DeviceCode)
            .where(OAuth2DeviceCode.id == row.id, OAuth2DeviceCode.status == "pending")
            .values(
                status="approved" if approve else "denied",
                user_id=user.user_id,
                approval=approval,
            )
        )
        if not decided.rowcount:  # type: ignore[attr-defined]
            return Page("error", error="This device's code was used meanwhile; start again")
        append_event(
            session,
            "oauth2.device.approved" if approve else "oauth2.device.denied",
            actor=user.username,
            subject=request.client_id,
            outcome="success" if approve else "failure",
            auth_methods=user.auth_methods.split(),
            loa=user.loa,
            source=source,
        )
    return Page("device_approved" if approve else "device_denied", request, user=user.username)


# -- the device's polls (RFC 8628 3.4, 3.5) --------------------------------------------------
def _refuse(services: Services, client: Client, reason: str, source: str, **extra: Any) -> None:
    with services.database.transaction() as session:
        append_event(
            session,
            "oauth2.device.refused",
            actor=client.client_id,
            subject=client.client_id,
            outcome="failure",
            reason=reason,
            source=source,
            **extra,
        )


def poll(
    services: Services, params: dict[str, Any], basic: tuple[str, str] | None, source: str
) -> dict[str, Any]:
    """grant_type=device_code: authorization_pending, slow_down, access_denied,
    expired_token, or the service token (once)."""
    client = client_of(services, params, basic)
    device_code = params.get("device_code")
    if not isinstance(device_code, str) or not device_code or len(device_code) > 128:
        raise OAuth2Error("Missing (or invalid) parameter device_code")
    digest, stamp = token_digest(device_code), _now()
    with services.database.transaction() as session:
        row = session.execute(
            select(OAuth2DeviceCode)
            .where(OAuth2DeviceCode.device_code_hash == digest)
            .with_for_update()
        ).scalar_one_or_none()
        reason: str | None = None
        expired, status, too_soon = False, "", False
        row_id, user_id, approval = 0, None, None
        if row is None:
            reason = "The device code is unknown"
        elif row.client_id != client.client_id:
            reason = "The device code was issued to another client"
        elif row.access_token_hash is not None:
            reason = "The device code was used before"
        if reason is None and row is not None:
            expired, status = _aware(row.expires_at) <= stamp, row.status
            row_id, user_id, approval = row.id, row.user_id, row.approval
            if status == "pending" and not expired:
                last = row.last_poll_at
                too_soon = last is not None and stamp - _aware(last) < timedelta(
                    seconds=row.poll_interval
                )
                if too_soon:
                    row.poll_interval = min(MAX_INTERVAL, row.poll_interval + SLOW_DOWN_STEP)
                row.last_poll_at = stamp
    if reason is not None:
        _refuse(services, client, reason, source)
        raise OAuth2Error(reason, "invalid_grant")
    if status == "denied":
        raise OAuth2Error("The user denied the request", "access_denied")
    if expired:
        raise OAuth2Error("The device code expired; ask for a new one", "expired_token")
    if status == "pending":
        if too_soon:
            raise OAuth2Error("Polling too fast: wait longer between requests", "slow_down")
        raise OAuth2Error("The user has not approved yet", "authorization_pending")
    return _issue(services, client, row_id, digest, user_id, approval, source)


def _issue(
    services: Services,
    client: Client,
    row_id: int,
    digest: str,
    user_id: int | None,
    approval: str | None,
    source: str,
) -> dict[str, Any]:
    """The approved row's token, once: the approval must open under the SAM's MAC and name
    this very device code, client and user; the spend is one guarded update."""
    claims = open_grant(services.hsm, "device", approval or "")
    if (
        claims is None
        or claims.get("h") != digest
        or claims.get("c") != client.client_id
        or not isinstance(claims.get("u"), list)
        or claims["u"][0] != user_id
    ):
        with services.database.transaction() as session:
            append_event(
                session,
                "integrity.violation",
                actor="-",
                subject=client.client_id,
                outcome="failure",
                reason="a device code's approval the SAM did not seal for it",
            )
        raise OAuth2Error("The device code's approval is not valid", "invalid_grant")
    user = Principal(*claims["u"])
    lifetime = services.settings.oauth2.access_token_lifetime_seconds
    token, minted = mint_token(
        services.hsm,
        user_id=user.user_id,
        username=user.username,
        methods=user.auth_methods,
        loa=user.loa,
        lifetime=lifetime,
    )
    refresh = begin_family(
        services,
        user_id=user.user_id,
        username=user.username,
        methods=minted.methods,
        loa=minted.loa,
        client=client.client_id,
    )
    disabled = False
    with services.database.transaction() as session:
        spent = session.execute(
            bulk_update(OAuth2DeviceCode)
            .where(
                OAuth2DeviceCode.id == row_id,
                OAuth2DeviceCode.status == "approved",
                OAuth2DeviceCode.access_token_hash.is_(None),
            )
            .values(access_token_hash=token_digest(token))
        )
        if spent.rowcount:  # type: ignore[attr-defined]
            state = session.get(User, user.user_id)
            disabled = state is None or state.status != "active"
            if not disabled:
                record_login(
                    session,
                    token,
                    user_id=user.user_id,
                    username=user.username,
                    methods=minted.methods,
                    loa=minted.loa,
                    expires_at=datetime.fromtimestamp(minted.expires_at, UTC),
                    source=source,
                    method="device_code",
                    scope="service",
                    event="oauth2.device.token_issued",
                    client_id=client.client_id,
                )
                if refresh is not None:
                    keep_refresh_token(session, *refresh, access_token=token)
    if not spent.rowcount:  # type: ignore[attr-defined]
        _refuse(services, client, "The device code was used before", source)
        raise OAuth2Error("The device code was used before", "invalid_grant")
    if disabled:
        _refuse(services, client, "The user is disabled", source)
        raise OAuth2Error("The user is disabled", "invalid_grant")
    answer = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": "service",
    }
    if refresh is not None:
        answer["refresh_token"] = refresh[0]
    return answer
