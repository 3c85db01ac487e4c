"""The OAuth 2.0 refresh token grant (RFC 6749 6, CSC API v2 oauth2/token): a service token's
refresh token — sealed by the SAM with the client it was issued to — spent once and replaced
by the next of its family, with a new access token, through auth/login's machinery
(`signing.sessions.rotate`): single use, rotation, a replay revoking the family."""

from __future__ import annotations

import time
from typing import Any

from signet.errors import InvalidRequest
from signet.sam import open_refresh_token
from signet.signing.context import Services
from signet.signing.oauth2_clients import OAuth2Error
from signet.signing.oauth2_tokens import client_of, refuse_grant
from signet.signing.sessions import Renewal, rotate

GRANT_TYPE = "refresh_token"
# What a refusal after the spend says to the client (`sessions.rotate`'s reasons).
_REASONS = {
    "unknown": "The refresh token is not known here",
    "revoked": "The refresh token was revoked",
    "replayed": "The refresh token was used before; its whole family is revoked",
    "user disabled": "The user is disabled",
}


def refresh(
    services: Services, params: dict[str, Any], basic: tuple[str, str] | None, source: str
) -> dict[str, Any]:
    """grant_type=refresh_token: the token answer with the next refresh token of the family,
    else an OAuth2Error (invalid_grant for any token that cannot be used, audited)."""
    client = client_of(services, params, basic)
    token = params.get("refresh_token")
    if not isinstance(token, str) or not token:
        raise OAuth2Error("Missing parameter refresh_token")
    scope = params.get("scope")
    if scope is not None and scope != "service":
        # A refresh token is only ever a service grant's: no scope is narrower, none wider.
        raise OAuth2Error("scope may only be the grant's own: service", "invalid_scope")
    try:
        claims = open_refresh_token(services.hsm, token)
    except InvalidRequest:
        raise refuse_grant(
            services, client, "The refresh token is not one this server issued", source
        ) from None
    if claims.client != client.client_id:
        raise refuse_grant(
            services, client, "The refresh token was not issued to this client", source
        )
    if claims.expires_at <= int(time.time()):
        raise refuse_grant(
            services, client, "The refresh token expired (its login is over); log in again", source
        )
    renewal = Renewal(
        services.settings.oauth2.access_token_lifetime_seconds,
        client=client.client_id,
        issued="oauth2.token_issued",
        refused="oauth2.token_refused",
    )
    outcome = rotate(services, token, claims, source, renewal)
    if isinstance(outcome, str):
        raise OAuth2Error(
            _REASONS.get(outcome, "The refresh token cannot be used"), "invalid_grant"
        )
    return {
        "access_token": outcome.access_token,
        "token_type": "Bearer",
        "expires_in": outcome.expires_in,
        "scope": "service",
        "refresh_token": outcome.refresh_token,
    }
