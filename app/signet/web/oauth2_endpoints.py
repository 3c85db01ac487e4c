"""The OAuth 2.0 authorization server's client-facing endpoints, on `web.oauth2`'s blueprint:
token (code, device and refresh grants), revocation, device authorization, pushed requests
(each with the client's authentication; RFC 6749 errors as JSON) and the server's metadata."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue

from signet.signing import oauth2, oauth2_device, oauth2_refresh, oauth2_tokens
from signet.signing.oauth2_clients import OAuth2Error
from signet.web.csc_auth import basic_credentials
from signet.web.oauth2 import FORM, blueprint, issuer, params_of, source
from signet.web.openapi import STRING, enum, obj, operation, with_description
from signet.web.params import services

CLIENT = {
    "client_id": with_description(STRING, "a public client's; else HTTP Basic or with the secret"),
    "client_secret": with_description(STRING, "client_secret_post (or HTTP Basic, not both)"),
}
OAUTH2_ERRORS = {
    "400": "RFC 6749 5.2: invalid_request, invalid_grant, invalid_scope, unsupported_grant_type",
    "401": "invalid_client: unknown client, wrong secret, a public client sending one",
}


def _endpoint_params() -> dict[str, Any]:
    try:
        return params_of(request.form)
    except oauth2.PageError as exc:
        raise OAuth2Error(exc.description) from None


@operation(
    "Token request (RFC 6749 4.1.3, 6, RFC 8628 3.4): an authorization code, its PKCE verifier "
    "and the client's authentication, a device code, or a refresh token, for an access token "
    "(a service token with a refresh token, when they are enabled)",
    request=obj(
        required=("grant_type",),
        grant_type=enum("authorization_code", oauth2_device.GRANT_TYPE, oauth2_refresh.GRANT_TYPE),
        code=STRING,
        device_code=with_description(STRING, "RFC 8628: the device authorization's"),
        refresh_token=with_description(STRING, "grant_type refresh_token: used once"),
        scope=with_description(STRING, "grant_type refresh_token: service, or left out"),
        redirect_uri=STRING,
        code_verifier=STRING,
        **CLIENT,
    ),
    request_types=FORM,
    answer=obj(
        required=("access_token", "token_type", "expires_in", "scope"),
        access_token=STRING,
        token_type=enum("Bearer"),
        expires_in={"type": "integer", "minimum": 1},
        scope=enum("service", "credential"),
        refresh_token=with_description(STRING, "a service token's, when they are enabled"),
        credentialID=STRING,
        authorization_details={"type": "array", "items": {"type": "object"}},
    ),
    errors={
        **OAUTH2_ERRORS,
        "400": OAUTH2_ERRORS["400"] + "; RFC 8628 3.5: authorization_pending, slow_down, "
        "access_denied, expired_token",
    },
    auth=("basic",),
    auth_optional=True,
)
@blueprint.route("/oauth2/token", methods=["POST"])
def token() -> ResponseReturnValue:
    params = _endpoint_params()
    if params.get("grant_type") == oauth2_device.GRANT_TYPE:
        return jsonify(oauth2_device.poll(services(), params, basic_credentials(), source()))
    if params.get("grant_type") == oauth2_refresh.GRANT_TYPE:
        return jsonify(oauth2_refresh.refresh(services(), params, basic_credentials(), source()))
    return jsonify(oauth2_tokens.exchange(services(), params, basic_credentials(), source()))


@operation(
    "Device authorization request (RFC 8628 3.1, 3.2): a device code to poll the token "
    "endpoint with, and a user code for the user to enter at the verification page",
    request=obj(
        required=(), scope=with_description(enum("service"), "service only (the default)"), **CLIENT
    ),
    request_types=FORM,
    answer=obj(
        required=(
            "device_code",
            "user_code",
            "verification_uri",
            "verification_uri_complete",
            "expires_in",
            "interval",
        ),
        device_code=STRING,
        user_code=with_description(STRING, "XXXX-XXXX, 20 consonants"),
        verification_uri=STRING,
        verification_uri_complete=STRING,
        expires_in={"type": "integer", "minimum": 1},
        interval={"type": "integer", "minimum": 1},
    ),
    errors={
        "400": "RFC 6749 5.2: invalid_request, invalid_scope (a scope other than service)",
        "401": OAUTH2_ERRORS["401"],
    },
    auth=("basic",),
    auth_optional=True,
)
@blueprint.route("/oauth2/device_authorization", methods=["POST"])
def device_authorization() -> ResponseReturnValue:
    params = _endpoint_params()
    verification_uri = issuer() + "/oauth2/device"
    answer = oauth2_device.authorize_device(
        services(), params, basic_credentials(), source(), verification_uri
    )
    return jsonify(answer)


@operation(
    "Revoke an access token given to this client, or a refresh token with its family (RFC "
    "7009): 200 whatever the token",
    request=obj(
        required=("token",),
        token=STRING,
        token_type_hint=enum("access_token", "refresh_token"),
        **CLIENT,
    ),
    request_types=FORM,
    answer_type="text/plain",
    errors=OAUTH2_ERRORS,
    auth=("basic",),
    auth_optional=True,
)
@blueprint.route("/oauth2/revoke", methods=["POST"])
def revoke() -> ResponseReturnValue:
    oauth2_tokens.revoke(services(), _endpoint_params(), basic_credentials(), source())
    return Response(status=200)


@operation(
    "Pushed authorization request (RFC 9126): the request's parameters for a request_uri used once",
    request=obj(
        required=("client_id", "response_type"),
        client_id=STRING,
        client_secret=CLIENT["client_secret"],
        response_type=enum("code"),
        redirect_uri=STRING,
        scope=enum("service", "credential"),
        state=STRING,
        code_challenge=STRING,
        code_challenge_method=enum("S256"),
        credentialID=STRING,
        numSignatures=STRING,
        hashes=with_description(STRING, "base64url hashes separated by commas"),
        hashAlgorithmOID=STRING,
        description=STRING,
        authorization_details=with_description(STRING, "RFC 9396 JSON, type credential"),
    ),
    request_types=FORM,
    success="201",
    answer=obj(
        required=("request_uri", "expires_in"),
        request_uri=STRING,
        expires_in={"type": "integer", "minimum": 1},
    ),
    errors=OAUTH2_ERRORS,
    auth=("basic",),
    auth_optional=True,
)
@blueprint.route("/oauth2/pushed_authorize", methods=["POST"])
def pushed_authorize() -> ResponseReturnValue:
    params = _endpoint_params()
    client = oauth2_tokens.client_of(services(), params, basic_credentials())
    request_uri, lifetime = oauth2.push(services(), client, params)
    response = jsonify({"request_uri": request_uri, "expires_in": lifetime})
    response.status_code = 201
    return response


@operation(
    "Authorization server metadata (RFC 8414)",
    answer=obj(required=("issuer", "authorization_endpoint", "token_endpoint"), issuer=STRING),
    auth=(),
)
@blueprint.route("/.well-known/oauth-authorization-server", methods=["GET"])
def server_metadata() -> ResponseReturnValue:
    refresh_tokens = services().settings.web.refresh_token_lifetime_seconds > 0
    return jsonify(oauth2_tokens.metadata(issuer(), refresh_tokens=refresh_tokens))
