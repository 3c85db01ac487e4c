"""The Cloud Signature Consortium API: v2 (2.0.0.2) under /csc/v2 and v1 (1.0.4) under /csc/v1.

Each operation is written once, for v2: it reads the request's parameters by their v2 names
and returns the v2 answer. v1 serves the same operations under its own names for parameters
and answers (`web.csc_v1`). signDoc, v2 only, streams its request and answer (`web.signdoc`)."""

from __future__ import annotations

import base64
from collections.abc import Callable

from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from signet.algorithms import SIGNATURE_ALGORITHMS
from signet.errors import InvalidRequest, MethodNotImplemented, SignetError
from signet.signing import csc as usecases
from signet.signing import mobile, sign_doc, sign_hash
from signet.signing import send_otp as send_otp_usecase
from signet.signing.mobile_requests import Pending
from signet.web import csc_v1, openapi, signdoc
from signet.web.credential_view import CREDENTIAL_ANSWER, STRINGS, described
from signet.web.csc_v1 import Renaming
from signet.web.openapi import (
    BASE64,
    BOOLEAN,
    HASHES,
    LABELS,
    OPTIONAL_STRING,
    STRING,
    enum,
    obj,
    operation,
    with_description,
)
from signet.web.params import (
    Json,
    Params,
    authenticate,
    authenticated,
    body,
    caller,
    claimed,
    page,
    principal,
    services,
)

v2 = Blueprint("csc_v2", __name__, url_prefix="/csc/v2")
v1 = Blueprint("csc_v1", __name__, url_prefix="/csc/v1")
openapi.tag(v2, "CSC v2.0.0.2")
openapi.tag(v1, "CSC v1.0.4")

METHODS = [
    "info",
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/authorizeCheck",
    "credentials/extendTransaction",
    "credentials/sendOTP",
    "signatures/signHash",
    "signatures/signDoc",
]
TIMESTAMP = "signatures/timestamp"  # offered when a TSA is configured (formats.tsa_url)
# Methods the specification names that Signet does not offer: 501 with a CSC error, as the
# specification answers a method an RSSP does not implement (the OAuth 2.0 ones live outside
# /csc/v2; none is served).
NOT_OFFERED = {
    "v1": [],
    "v2": ["credentials/getChallenge", "signatures/signPolling"],
}


# What every CSC operation may answer besides its success
ERRORS = {
    "400": "invalid request: the description names the parameter",
    "503": "the database or the HSM is unavailable; try again",
}
TOKEN_ERRORS = {**ERRORS, "401": "no access token, or an expired or revoked one"}
CREDENTIAL_ERRORS = {
    **TOKEN_ERRORS,
    "403": "not the caller's credential, or a refusal of the SAM (locked, tampered record)",
}
CERTIFICATES = enum(
    "none", "single", "chain", description="which certificates to return (default single)"
)
HASH_OID = with_description(OPTIONAL_STRING, "OID of the hash algorithm of the hashes")
NUM_SIGNATURES = {"type": "integer", "minimum": 1}
AUTH_DATA = {
    "type": "array",
    "items": obj(required=("id", "value"), id=enum("PIN", "OTP"), value={"type": "string"}),
}
SAD_ANSWER = obj(
    required=("SAD", "expiresIn"), SAD=STRING, expiresIn={"type": "integer", "minimum": 1}
)
# A Mobile ID credential's authorization waits for the signer's phone (docs/mobile-id.md).
PENDING_ANSWER = obj(
    required=("authorizationID", "status", "expiresIn"),
    authorizationID=STRING,
    status=enum("pending"),
    expiresIn={"type": "integer", "minimum": 0},
    signet_approvalURL=with_description(
        STRING, "a passkey credential's: the page where the signer approves (docs/passkeys.md)"
    ),
)
AUTHORIZE_ANSWER = {"oneOf": [SAD_ANSWER, PENDING_ANSWER]}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def offered_methods() -> list[str]:
    """The methods info lists: those that work here, with this configuration."""
    methods = list(METHODS)
    if services().settings.formats.tsa_url:
        methods.append(TIMESTAMP)
    return methods


def not_implemented(method: str) -> MethodNotImplemented:
    return MethodNotImplemented(
        f"{method} is not implemented by this service; info lists the methods it offers"
    )


def not_offered(method: str) -> Callable[[], ResponseReturnValue]:
    def view() -> ResponseReturnValue:
        raise not_implemented(method)

    return openapi.attach(
        view,
        openapi.Operation(
            f"Not offered here (info lists the methods offered): {method}",
            request=obj(),
            success=None,
            errors={"501": "not implemented by this service"},
            auth=(),
        ),
    )


# -- the operations -------------------------------------------------------------------------
@operation(
    "Service information: the methods, algorithms, formats and levels offered",
    request=obj(lang=OPTIONAL_STRING),
    answer=obj(
        required=("specs", "name", "logo", "region", "lang", "description", "authType", "methods"),
        specs=STRING,
        name=STRING,
        logo=STRING,
        region=STRING,
        lang=STRING,
        description=STRING,
        authType=STRINGS,
        methods=STRINGS,
        oauth2=with_description(STRING, "the OAuth 2.0 authorization server (docs/oauth2.md)"),
        oauth2Issuer=STRING,
        supportsRar=BOOLEAN,
    ),
    errors={"400": ERRORS["400"]},
    auth=(),
    example={"lang": "en-US"},
)
def info(params: Params) -> Json:
    params.string("lang", required=False)  # answered in the service's language, but a string
    settings = services().settings.web
    oauth2 = services().settings.oauth2
    issuer = oauth2.issuer or (settings.base_url or request.host_url).rstrip("/")
    oauth2_fields: Json = (
        {"oauth2": issuer, "oauth2Issuer": issuer, "supportsRar": True} if oauth2.enabled else {}
    )
    return {
        "specs": "2.0.0.2",
        "name": settings.name,
        "logo": settings.logo_url
        or (settings.base_url or request.host_url.rstrip("/")) + "/static/logo.png",
        "region": settings.region,
        "lang": settings.lang,
        "description": "Signet remote signing service",
        "authType": ["basic", "oauth2code"] if oauth2.enabled else ["basic"],
        **oauth2_fields,
        "methods": offered_methods(),
        "signAlgorithms": {"algos": sorted(SIGNATURE_ALGORITHMS)},
        "signature_formats": {
            "formats": ["C", "X", "P", "J"],
            "envelope_properties": [
                ["Detached", "Attached"],
                ["Enveloped", "Enveloping", "Detached"],
                ["Enveloped"],
                ["Attached", "Detached"],
            ],
        },
        "conformance_levels": sign_doc.offered_levels(services()),
    }


@operation(
    "Send a one-time code by e-mail or SMS (the credential's channel); with the hashes, "
    "numSignatures, description and signet_labels of the authorize call to come (a Signet "
    "extension), the code approves that request only (docs/csc.md)",
    request=obj(
        required=("credentialID",),
        credentialID=STRING,
        hashes=HASHES,
        hashAlgorithmOID=HASH_OID,
        numSignatures=NUM_SIGNATURES,
        description=OPTIONAL_STRING,
        signet_labels=LABELS,
    ),
    success="204",
    errors={
        **CREDENTIAL_ERRORS,
        "429": "a code was sent moments ago; Retry-After says when",
        "503": "the mail server or SMS gateway did not take the code (down, refusing or "
        "silent); the error names it",
    },
)
def send_otp(params: Params) -> None:
    count = params.get("numSignatures")
    send_otp_usecase.send_otp(
        services(),
        principal(),
        params.string("credentialID"),
        hashes=params.hash_list("hashes", required=False),
        hash_oid=params.string("hashAlgorithmOID", required=False),
        num_signatures=None if count is None else params.integer("numSignatures"),
        description=params.string("description", required=False),
        labels=params.labels(),
    )


@operation(
    "The caller's credentials, a page at a time",
    request=obj(
        userID=OPTIONAL_STRING,
        credentialInfo=BOOLEAN,
        certificates=CERTIFICATES,
        certInfo=BOOLEAN,
        authInfo=BOOLEAN,
        onlyValid=BOOLEAN,
        maxResults={"type": "integer", "minimum": 1},
        pageToken=with_description(STRING, "the nextPageToken of the previous page"),
    ),
    answer=obj(
        required=("credentialIDs",),
        credentialIDs=STRINGS,
        credentialInfos={"type": "array", "items": CREDENTIAL_ANSWER},
        nextPageToken=STRING,
        onlyValid=BOOLEAN,
    ),
    errors=TOKEN_ERRORS,
)
def list_credentials(params: Params) -> Json:
    with_info = params.boolean("credentialInfo", False)
    which = params.choice("certificates", ("none", "single", "chain"), "single")
    cert_info = params.boolean("certInfo", False)
    auth_info = params.boolean("authInfo", False)
    only_valid = params.boolean("onlyValid", False)
    infos, following = page(
        params,
        usecases.list_credentials(
            services(),
            principal(),
            only_valid=only_valid,
            user_id=params.string("userID", required=False),
        ),
    )
    out: Json = {"credentialIDs": [i.credential_id for i in infos]}
    if following:
        out["nextPageToken"] = following
    if with_info:
        out["credentialInfos"] = [
            {"credentialID": i.credential_id, **described(i, which, cert_info, auth_info)}
            for i in infos
        ]
    if only_valid:
        out["onlyValid"] = True
    return out


@operation(
    "One credential: its key, certificate and how it is activated",
    request=obj(
        required=("credentialID",),
        credentialID=STRING,
        certificates=CERTIFICATES,
        certInfo=BOOLEAN,
        authInfo=BOOLEAN,
    ),
    answer=CREDENTIAL_ANSWER,
    errors=CREDENTIAL_ERRORS,
)
def credential_info(params: Params) -> Json:
    which = params.choice("certificates", ("none", "single", "chain"), "single")
    cert_info = params.boolean("certInfo", False)
    auth_info = params.boolean("authInfo", False)
    info = usecases.credential_info(services(), principal(), params.string("credentialID"))
    return described(info, which, cert_info, auth_info)


@operation(
    "Second factor → SAD bound to the hashes; an OTP works only for the request it was sent "
    "for (hashes, numSignatures, description, signet_labels: docs/csc.md)",
    request=obj(
        required=("credentialID", "numSignatures"),
        credentialID=STRING,
        numSignatures=NUM_SIGNATURES,
        hashes=HASHES,
        hashAlgorithmOID=HASH_OID,
        authData=AUTH_DATA,
        description=OPTIONAL_STRING,
        signet_labels=LABELS,
    ),
    answer=AUTHORIZE_ANSWER,
    errors={**CREDENTIAL_ERRORS, "429": "too many wrong factors for now; Retry-After says when"},
)
def authorize(params: Params) -> Json:
    factors = params.auth_data()
    authorized = usecases.authorize(
        services(),
        principal(),
        credential_id=params.string("credentialID"),
        num_signatures=params.integer("numSignatures"),
        hashes=params.hash_list("hashes", required=False),
        hash_oid=params.string("hashAlgorithmOID", required=False),
        pin=factors.get("PIN"),
        otp=factors.get("OTP"),
        description=params.string("description", required=False),
        labels=params.labels(),
        origin=origin(),
        asynchronous=request.blueprint == v2.name,
    )
    return sad_or_pending(authorized)


def origin() -> str:
    """This service's origin as a Mobile ID device is shown it: [web] base_url, else the
    scheme and host the request came to."""
    return (services().settings.web.base_url or request.host_url).rstrip("/")


def sad_or_pending(authorized: tuple[str, int] | Pending) -> Json:
    if isinstance(authorized, Pending):
        answer: Json = {
            "authorizationID": authorized.authorization_id,
            "status": "pending",
            "expiresIn": authorized.expires_in,
        }
        if authorized.approval_path:  # a passkey's: where the signer approves (docs/passkeys.md)
            answer["signet_approvalURL"] = origin() + authorized.approval_path
        return answer
    sad, expires = authorized
    return {"SAD": sad, "expiresIn": expires}


@operation(
    "Mobile ID: the SAD of an authorization the signer approved on her phone (once), or "
    "pending; denied is 403 access_denied, expired 400 (docs/mobile-id.md)",
    request=obj(
        required=("credentialID", "authorizationID"),
        credentialID=STRING,
        authorizationID=STRING,
    ),
    answer=AUTHORIZE_ANSWER,
    errors=CREDENTIAL_ERRORS,
)
def authorize_check(params: Params) -> Json:
    return sad_or_pending(
        mobile.authorize_check(
            services(),
            principal(),
            credential_id=params.string("credentialID"),
            authorization_id=params.string("authorizationID"),
        )
    )


@operation(
    "Renew a SAD for the signatures it has left; at SCAL2 bound to the hashes sent with it",
    request=obj(
        required=("credentialID", "SAD"),
        credentialID=STRING,
        SAD=STRING,
        hashes=HASHES,
        hashAlgorithmOID=HASH_OID,
    ),
    answer=SAD_ANSWER,
    errors=CREDENTIAL_ERRORS,
)
def extend_transaction(params: Params) -> Json:
    sad, expires = usecases.extend_transaction(
        services(),
        principal(),
        credential_id=params.string("credentialID"),
        sad=params.string("SAD"),
        hashes=params.hash_list("hashes", required=False),
        hash_oid=params.string("hashAlgorithmOID", required=False),
    )
    return {"SAD": sad, "expiresIn": expires}


@operation(
    "Sign hashes with a SAD",
    request=obj(
        required=("credentialID", "hashes", "signAlgo"),
        credentialID=STRING,
        SAD=with_description(STRING, "required unless the token is an OAuth 2.0 credential token"),
        hashes=HASHES,
        hashAlgorithmOID=HASH_OID,
        signAlgo=with_description(STRING, "OID of the signature algorithm (info lists them)"),
        signAlgoParams=with_description(BASE64, "DER of the algorithm's parameters (RSASSA-PSS)"),
        operationMode=enum("S", description="synchronous only; A is refused"),
    ),
    answer=obj(required=("signatures",), signatures={"type": "array", "items": BASE64}),
    errors=CREDENTIAL_ERRORS,
)
def sign_hashes(params: Params) -> Json:
    mode = params.choice("operationMode", ("S", "A"), "S")
    if mode == "A":
        raise InvalidRequest(
            "Invalid parameter operationMode: only synchronous (S) signing is offered"
        )
    signatures = sign_hash.sign_hash(
        services(),
        caller(),
        credential_id=params.string("credentialID"),
        # An OAuth 2.0 credential token carries its SAD (CSC: SAD not needed then).
        sad=params.string("SAD", required=False) or caller().principal.sad,
        hashes=params.hash_list("hashes", required=True),
        hash_oid=params.string("hashAlgorithmOID", required=False),
        sign_algo=params.string("signAlgo") or "",
        sign_algo_params=params.string("signAlgoParams", required=False),
    )
    return {"signatures": [b64(s) for s in signatures]}


@operation(
    "An RFC 3161 time-stamp token over a hash (only when a TSA is configured; else 501)",
    request=obj(
        required=("hash", "hashAlgorithmOID"),
        hash=BASE64,
        hashAlgorithmOID=STRING,
        nonce=with_description(STRING, "hexadecimal"),
    ),
    answer=obj(required=("timestamp",), timestamp=BASE64),
    errors={**TOKEN_ERRORS, "501": "no TSA configured"},
)
def timestamp(params: Params) -> Json:
    if TIMESTAMP not in offered_methods():
        # like the other methods not offered: after the body is read, before any token
        raise not_implemented(TIMESTAMP)
    authenticate()
    token = sign_doc.timestamp(
        services(),
        principal(),
        hash_b64=params.get("hash"),
        hash_oid=params.get("hashAlgorithmOID"),
        nonce=params.get("nonce"),
    )
    return {"timestamp": b64(token)}


# -- the views ------------------------------------------------------------------------------
Operation = Callable[[Params], Json | None]
Guard = Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]

# method -> (operation, how its caller is checked before the body is read)
OPERATIONS: dict[str, tuple[Operation, Guard | None]] = {
    "info": (info, None),
    "credentials/list": (list_credentials, authenticated),
    "credentials/info": (credential_info, authenticated),
    "credentials/sendOTP": (send_otp, authenticated),
    "credentials/authorize": (authorize, authenticated),
    "credentials/extendTransaction": (extend_transaction, authenticated),
    "signatures/signHash": (sign_hashes, claimed),
    # checks its token itself, once it knows the method is offered
    TIMESTAMP: (timestamp, None),
}


def json_view(
    operation: Operation, guard: Guard | None, renaming: Renaming
) -> Callable[[], ResponseReturnValue]:
    """The view of an operation: the body read, renamed to v2, the operation called with it,
    and its answer (None: 204 No Content) renamed back."""

    def view() -> ResponseReturnValue:
        data = body()
        try:
            answer = operation(renaming.params(data))
        except SignetError as refused:
            refused.description = renaming.worded(refused.description)
            raise
        if answer is None:
            return Response(status=204)
        return jsonify(renaming.answered(answer, data))

    return guard(view) if guard else view


def _add_rules() -> None:
    for method, (operation_, guard) in OPERATIONS.items():
        declared = openapi.operation_of(operation_)
        assert declared is not None, f"{method} declares no operation"
        for blueprint, renaming in ((v2, Renaming()), (v1, csc_v1.RENAMED[method])):
            view = openapi.attach(json_view(operation_, guard, renaming), renaming.of(declared))
            blueprint.add_url_rule(f"/{method}", _endpoint(method), view, methods=["POST"])
    # v2 only (v1 has no asynchronous authorization)
    declared = openapi.operation_of(authorize_check)
    assert declared is not None
    check = openapi.attach(json_view(authorize_check, authenticated, Renaming()), declared)
    v2.add_url_rule(
        "/credentials/authorizeCheck", "credentials_authorizeCheck", check, methods=["POST"]
    )
    v2.add_url_rule(
        "/signatures/signDoc", "signatures_signDoc", signdoc.sign_doc_view, methods=["POST"]
    )
    for version, blueprint in (("v2", v2), ("v1", v1)):
        for method in NOT_OFFERED[version]:
            view = not_offered(method)
            blueprint.add_url_rule(f"/{method}", _endpoint(method), view, methods=["POST"])


def _endpoint(method: str) -> str:
    return method.replace("/", "_")


_add_rules()


def init_app(app: Flask) -> None:
    # The extension's views join the v1 and v2 blueprints when the module is first imported.
    from signet.web import activation, csc_auth  # noqa: F401 - their views join v1 and v2

    app.register_blueprint(v2)
    app.register_blueprint(v1)
