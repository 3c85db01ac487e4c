"""The OAuth 2.0 token and revocation endpoints: a code (used once, its PKCE verifier, its
client, its redirect URI) exchanged for an access token the SAM mints — carrying the SAD of a
credential grant; a service grant's with a refresh token —, a second use of a code revoking
what it gave (RFC 6749 10.5), revocation by the client (RFC 7009: a device grant's or a
refresh grant's token too, a refresh token with its family), and the server's metadata (RFC
8414)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from signet.auth.tokens import (
    Principal,
    family_issued_with,
    record_login,
    revoke_family,
    revoke_refresh_family,
    token_digest,
)
from signet.errors import InvalidRequest, InvalidToken
from signet.events import append_event
from signet.sam import mint_token, open_grant, open_refresh_token, open_token, void_sad
from signet.signing.context import Services
from signet.signing.oauth2 import AuthRequest
from signet.signing.oauth2_clients import Client, OAuth2Error, authenticate_client
from signet.signing.prune import prune_if_due
from signet.signing.sessions import begin_family, keep_refresh_token
from signet.store import AccessToken, OAuth2Code, OAuth2DeviceCode, User, bulk_update

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def client_of(services: Services, params: dict[str, Any], basic: tuple[str, str] | None) -> Client:
    """The calling client, by HTTP Basic (client_secret_basic) or the body's client_id and
    client_secret (client_secret_post), or a public client's client_id — one way only."""
    client_id: Any
    secret: Any
    if basic is not None:
        if params.get("client_secret") is not None:
            raise OAuth2Error("Use one client authentication method, not two")
        if params.get("client_id") not in (None, basic[0]):
            raise OAuth2Error("client_id differs from the authenticated client")
        client_id, secret = basic
    else:
        client_id, secret = params.get("client_id"), params.get("client_secret")
        if secret is not None and not isinstance(secret, str):
            raise OAuth2Error("Invalid parameter client_secret")
    return authenticate_client(services, client_id, secret)


def refuse_grant(services: Services, client: Client, reason: str, source: str) -> OAuth2Error:
    """An invalid_grant refusal, audited `oauth2.token_refused` with the reason."""
    with services.database.transaction() as session:
        append_event(
            session,
            "oauth2.token_refused",
            actor=client.client_id,
            subject=client.client_id,
            outcome="failure",
            reason=reason,
            source=source,
        )
    return OAuth2Error(reason, "invalid_grant")


def _pkce_ok(challenge: str | None, verifier: Any) -> bool:
    if challenge is None:
        return verifier is None
    if not isinstance(verifier, str) or not _VERIFIER.fullmatch(verifier):
        return False
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return hmac.compare_digest(computed.rstrip(b"=").decode(), challenge)


def exchange(
    services: Services, params: dict[str, Any], basic: tuple[str, str] | None, source: str
) -> dict[str, Any]:
    """grant_type=authorization_code: the token answer (RFC 6749 5.1), else an OAuth2Error."""
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise OAuth2Error("Missing parameter grant_type")
    if grant_type != "authorization_code":
        raise OAuth2Error(
            "grant_type must be authorization_code, refresh_token or "
            "urn:ietf:params:oauth:grant-type:device_code",
            "unsupported_grant_type",
        )
    client = client_of(services, params, basic)
    code = params.get("code")
    if not isinstance(code, str) or not code or len(code) > 128:
        raise OAuth2Error("Missing (or invalid) parameter code")
    with services.database.transaction() as session:
        row = session.execute(
            select(OAuth2Code).where(OAuth2Code.code_hash == token_digest(code))
        ).scalar_one_or_none()
        row_id, grant = (row.id, row.grant) if row else (None, None)
    claims = open_grant(services.hsm, "code", grant or "")
    if row_id is None or claims is None or claims.get("h") != token_digest(code):
        raise refuse_grant(
            services, client, "The code is unknown, expired or not this server's", source
        )
    request = AuthRequest(**claims["r"])
    if request.client_id != client.client_id:
        raise refuse_grant(services, client, "The code was issued to another client", source)
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is not None and redirect_uri != request.redirect_uri:
        raise refuse_grant(
            services, client, "redirect_uri differs from the authorization's", source
        )
    if not _pkce_ok(request.code_challenge, params.get("code_verifier")):
        raise refuse_grant(services, client, "The PKCE code_verifier does not match", source)
    user = Principal(*claims["u"])
    sad = claims.get("d")
    if sad is None:
        lifetime = services.settings.oauth2.access_token_lifetime_seconds
    else:
        # no longer than its SAD: the SAD's own expiry refuses a signature after that anyway
        lifetime = services.settings.sam.sad_lifetime_seconds
    token, minted = mint_token(
        services.hsm,
        user_id=user.user_id,
        username=user.username,
        methods=user.auth_methods,
        loa=user.loa,
        lifetime=lifetime,
        sad=sad,
    )
    # A service grant's token comes with a refresh token (CSC API v2 oauth2/token: never a
    # credential grant's, whose SAD is for the hashes approved once), bound to this client.
    refresh = None
    if sad is None:
        refresh = begin_family(
            services,
            user_id=user.user_id,
            username=user.username,
            methods=minted.methods,
            loa=minted.loa,
            client=client.client_id,
        )
    reused = False
    with services.database.transaction() as session:
        spent = session.execute(
            bulk_update(OAuth2Code)
            .where(OAuth2Code.id == row_id, OAuth2Code.used.is_(False))
            .values(used=True, access_token_hash=token_digest(token))
        )
        if not spent.rowcount:  # type: ignore[attr-defined]
            reused = True
            _revoke_reused(session, row_id, sad, client, user, source)
        else:
            state = session.get(User, user.user_id)
            if state is None or state.status != "active":
                reused = None  # type: ignore[assignment]
            else:
                record_login(
                    session,
                    token,
                    user_id=user.user_id,
                    username=user.username,
                    methods=minted.methods,
                    loa=minted.loa,
                    expires_at=datetime.fromtimestamp(minted.expires_at, UTC),
                    source=source,
                    method="authorization_code",
                    scope=request.scope,
                    event="oauth2.token_issued",
                    client_id=client.client_id,
                    credential=request.credential_id,
                )
                if refresh is not None:
                    keep_refresh_token(session, *refresh, access_token=token)
    if reused:
        raise OAuth2Error(
            "The code was used before; the tokens it gave are revoked", "invalid_grant"
        )
    if reused is None:
        raise refuse_grant(services, client, "The user is disabled", source)
    answer: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": request.scope,
    }
    if refresh is not None:
        answer["refresh_token"] = refresh[0]
    if request.rar:
        answer["authorization_details"] = request.authorization_details()
    elif request.credential_id is not None:
        answer["credentialID"] = request.credential_id
    prune_if_due(services)
    return answer


def _revoke_reused(
    session: Any, row_id: int, sad: str | None, client: Client, user: Principal, source: str
) -> None:
    """RFC 6749 10.5: a code used twice was stolen (or its holder's copy was): what it gave
    is revoked — the access token, the refresh family begun with it —, the SAD it carried
    left with nothing to sign."""
    issued = session.execute(
        select(OAuth2Code.access_token_hash).where(OAuth2Code.id == row_id)
    ).scalar_one()
    family = None
    if issued is not None:
        session.execute(
            bulk_update(AccessToken).where(AccessToken.token_hash == issued).values(revoked=True)
        )
        begun = family_issued_with(session, issued)
        if begun is not None:
            family = begun[0]
            revoke_family(session, family, user_id=begun[1])
    voided = void_sad(session, sad) if sad else False
    append_event(
        session,
        "oauth2.code_reused",
        actor=client.client_id,
        subject=user.username,
        outcome="failure",
        revoked_token=issued is not None,
        voided_sad=voided,
        source=source,
        **({"revoked_family": family} if family else {}),
    )


def revoke(
    services: Services, params: dict[str, Any], basic: tuple[str, str] | None, source: str
) -> None:
    """RFC 7009: revoke an access token this client was given (its SAD voided with it), or a
    refresh token with its family; an unknown or foreign token is answered the same, as the
    RFC asks. Each kind of token says what it is, so the hint only has to be a known one."""
    client = client_of(services, params, basic)
    token = params.get("token")
    if not isinstance(token, str) or not token:
        raise OAuth2Error("Missing parameter token")
    hint = params.get("token_type_hint")
    if hint not in (None, "access_token", "refresh_token"):
        raise OAuth2Error("Invalid parameter token_type_hint", "unsupported_token_type")
    try:
        claims = open_token(services.hsm, token)
    except InvalidToken:
        _revoke_refresh(services, client, token, source)
        return
    digest = token_digest(token)
    with services.database.transaction() as session:
        if not _issued_to(session, digest, client):
            return
        session.execute(
            bulk_update(AccessToken).where(AccessToken.token_hash == digest).values(revoked=True)
        )
        if claims.sad is not None:
            void_sad(session, claims.sad)
        append_event(
            session,
            "oauth2.token_revoked",
            actor=client.client_id,
            subject=claims.username,
            kind="access_token",
            source=source,
        )


def _issued_to(session: Any, digest: str, client: Client) -> bool:
    """Whether the access token of this SHA-256 was issued to `client`: for a code, a device
    code, or with a refresh token."""
    if session.execute(
        select(OAuth2Code.id).where(
            OAuth2Code.access_token_hash == digest, OAuth2Code.client_id == client.client_id
        )
    ).first():
        return True
    if session.execute(
        select(OAuth2DeviceCode.id).where(
            OAuth2DeviceCode.access_token_hash == digest,
            OAuth2DeviceCode.client_id == client.client_id,
        )
    ).first():
        return True
    family = family_issued_with(session, digest)
    return family is not None and family[2] == client.client_id


def _revoke_refresh(services: Services, client: Client, token: str, source: str) -> None:
    """A refresh token this client was given (its binding sealed in it): its whole family
    revoked, as auth/revoke does; anything else is ignored."""
    try:
        claims = open_refresh_token(services.hsm, token)
    except InvalidRequest:
        return
    if claims.client != client.client_id:
        return
    with services.database.transaction() as session:
        family = revoke_refresh_family(session, token, user_id=claims.user_id)
        if family is not None:
            append_event(
                session,
                "oauth2.token_revoked",
                actor=client.client_id,
                subject=claims.username,
                kind="refresh_token",
                family=family,
                source=source,
            )


def metadata(issuer: str, *, refresh_tokens: bool) -> dict[str, Any]:
    """Authorization server metadata (RFC 8414); the refresh token grant while refresh tokens
    are issued (web.refresh_token_lifetime_seconds > 0)."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "pushed_authorization_request_endpoint": f"{issuer}/oauth2/pushed_authorize",
        "device_authorization_endpoint": f"{issuer}/oauth2/device_authorization",
        "response_types_supported": ["code"],
        "grant_types_supported": [
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:device_code",
            *(["refresh_token"] if refresh_tokens else []),
        ],
        "scopes_supported": ["service", "credential"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "authorization_details_types_supported": ["credential"],
        "request_uri_parameter_supported": True,
        "require_pushed_authorization_requests": False,
    }
