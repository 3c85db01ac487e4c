"""CSC auth/login and auth/revoke under /csc/v2 and /csc/v1: HTTP Basic, a TLS client
certificate or a refresh token in, access (and refresh) tokens out; revocation of either kind."""

from __future__ import annotations

import binascii
from base64 import b64decode

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from signet.errors import InvalidRequest, SignetError
from signet.signing import sessions
from signet.signing.certificate_login import certificate_login
from signet.web.client_certificate import presented_certificate
from signet.web.csc import ERRORS, TOKEN_ERRORS, v1, v2
from signet.web.openapi import BOOLEAN, STRING, enum, obj, operation, with_description
from signet.web.params import Params, authenticated, body, principal, services

TOKEN_TYPES = ("access_token", "refresh_token")


def basic_credentials() -> tuple[str, str] | None:
    """(user name, password) from an HTTP Basic Authorization header (RFC 7617), None when
    the request has no Authorization header. Anything else there is refused, never read as a
    user with an empty password."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise SignetError(
            "HTTP Basic authentication (user name and password) is required",
            error="invalid_request",
            status=401,
        )
    try:
        decoded = b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise InvalidRequest(
            'Malformed HTTP Basic credentials: base64 of UTF-8 "user-id:password" expected'
        ) from None
    username, colon, password = decoded.partition(":")
    if not colon or not username:
        raise InvalidRequest(
            'Malformed HTTP Basic credentials: "user-id:password" '
            "expected, a user name and a colon before the password"
        )
    return username, password


@operation(
    "HTTP Basic login, or a TLS client certificate without Basic credentials, → access "
    "token (and, with rememberMe, a refresh token); or "
    "refresh_token → new access and refresh tokens (each refresh token is used once; a replay "
    "revokes its family)",
    request=obj(
        rememberMe=with_description(BOOLEAN, "also issue a refresh token (Basic login only)"),
        refresh_token=with_description(STRING, "instead of HTTP Basic credentials"),
    ),
    answer=obj(
        required=("access_token", "expires_in"),
        access_token=STRING,
        refresh_token=STRING,
        expires_in={"type": "integer", "minimum": 1},
    ),
    errors={
        **ERRORS,
        "400": "malformed Basic credentials, both Basic credentials and refresh_token, or a "
        "refresh token that is expired, revoked, replayed or not this service's",
        "401": "no credentials, a wrong user name or password, or a client certificate "
        "refused (untrusted, expired, revoked, mapped to no active user)",
        "429": "too many failed logins for this user or address; Retry-After says when",
    },
    auth=("basic",),
    auth_optional=True,
    example={"rememberMe": False},
)
def login_view() -> ResponseReturnValue:
    params = Params(body())
    remember_me = params.boolean("rememberMe", False)
    refresh_token = params.string("refresh_token", required=False)
    credentials = basic_credentials()
    source = request.remote_addr or ""
    if refresh_token is not None:
        if credentials is not None:
            raise InvalidRequest("Give either HTTP Basic credentials or refresh_token, not both")
        if not refresh_token:
            raise InvalidRequest("Invalid parameter refresh_token: empty")
        outcome = sessions.refresh(services(), refresh_token, source)
    elif credentials is None:
        presented = presented_certificate()
        if presented is None:
            raise SignetError(
                "HTTP Basic authentication (user name and password) or a TLS client "
                "certificate is required",
                error="invalid_request",
                status=401,
            )
        outcome = certificate_login(services(), presented, source, remember_me=remember_me)
    else:
        outcome = sessions.login(services(), *credentials, source, remember_me=remember_me)
    answer: dict[str, str | int] = {"access_token": outcome.access_token}
    if outcome.refresh_token is not None:
        answer["refresh_token"] = outcome.refresh_token
    answer["expires_in"] = outcome.expires_in
    return jsonify(answer)


@operation(
    "Revoke an access token, or a refresh token with its family",
    request=obj(
        required=("token",),
        token=STRING,
        token_type_hint=enum(*TOKEN_TYPES, description="default access_token"),
    ),
    success="204",
    errors=TOKEN_ERRORS,
)
@authenticated
def revoke_view() -> ResponseReturnValue:
    params = Params(body())
    token = params.string("token")
    assert token is not None
    hint = params.get("token_type_hint", "access_token")
    if hint not in TOKEN_TYPES:
        raise InvalidRequest(
            f"Invalid parameter token_type_hint: use one of {', '.join(TOKEN_TYPES)}"
        )
    sessions.logout(services(), principal(), token, hint)
    return Response(status=204)


for blueprint in (v2, v1):
    blueprint.add_url_rule("/auth/login", "login", login_view, methods=["POST"])
    blueprint.add_url_rule("/auth/revoke", "revoke", revoke_view, methods=["POST"])
