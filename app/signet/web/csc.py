"""The Cloud Signature Consortium API: v2 (2.0.0.2) under /csc/v2 and v1 (1.0.4) under /csc/v1.

Each operation is written once, for v2: it reads the request's parameters by their v2 names
and returns the v2 answer. v1 serves the same operations under its own names for parameters
and answers (`web.csc_v1`). signDoc, v2 only, streams its request and answer (`web.signdoc`)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime

from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from signet.algorithms import CURVES, SIGNATURE_ALGORITHMS
from signet.errors import InvalidRequest, MethodNotImplemented, SignetError
from signet.signing import csc as usecases
from signet.signing import sign_doc, sign_hash
from signet.web import csc_v1, signdoc
from signet.web.csc_v1 import Renaming
from signet.web.openapi import describe
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

METHODS = [
    "info",
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
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
    "v2": ["credentials/authorizeCheck", "credentials/getChallenge", "signatures/signPolling"],
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generalized(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")


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

    return view


# -- the operations -------------------------------------------------------------------------
def info(_params: Params) -> Json:
    settings = services().settings.web
    return {
        "specs": "2.0.0.2",
        "name": settings.name,
        "logo": settings.logo_url
        or (settings.base_url or request.host_url.rstrip("/")) + "/static/logo.png",
        "region": settings.region,
        "lang": settings.lang,
        "description": "Signet remote signing service",
        "authType": ["basic"],
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


def send_otp(params: Params) -> None:
    count = params.get("numSignatures")
    usecases.send_otp(
        services(),
        principal(),
        params.string("credentialID"),
        hashes=params.hash_list("hashes", required=False),
        hash_oid=params.string("hashAlgorithmOID", required=False),
        num_signatures=None if count is None else params.integer("numSignatures"),
        description=params.string("description", required=False),
        labels=params.labels(),
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


def credential_info(params: Params) -> Json:
    which = params.choice("certificates", ("none", "single", "chain"), "single")
    cert_info = params.boolean("certInfo", False)
    auth_info = params.boolean("authInfo", False)
    info = usecases.credential_info(services(), principal(), params.string("credentialID"))
    return described(info, which, cert_info, auth_info)


def authorize(params: Params) -> Json:
    factors = params.auth_data()
    sad, expires = usecases.authorize(
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
    )
    return {"SAD": sad, "expiresIn": expires}


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
        sad=params.string("SAD"),
        hashes=params.hash_list("hashes", required=True),
        hash_oid=params.string("hashAlgorithmOID", required=False),
        sign_algo=params.string("signAlgo") or "",
        sign_algo_params=params.string("signAlgoParams", required=False),
    )
    return {"signatures": [b64(s) for s in signatures]}


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


# -- what credentials/list and credentials/info say of a credential -------------------------
def certificates_of(info: usecases.CredentialInfo, which: str) -> list[str]:
    if which == "none":
        return []
    ders = info.certificates if which == "chain" else info.certificates[:1]
    return [b64(d) for d in ders]


def cert_block(info: usecases.CredentialInfo, which: str, cert_info: bool) -> Json:
    block: Json = {"status": info.cert_status}
    if which != "none":
        block["certificates"] = certificates_of(info, which)
    if cert_info:
        block.update(
            issuerDN=info.issuer,
            serialNumber=info.serial,
            subjectDN=info.subject,
            validFrom=generalized(info.valid_from),
            validTo=generalized(info.valid_to),
        )
    return block


def key_block(info: usecases.CredentialInfo) -> Json:
    key: Json = {
        "status": "enabled" if info.key_enabled else "disabled",
        "algo": info.algorithms,
        "len": info.key_size,
    }
    if info.curve:
        key["curve"] = CURVES[info.curve].oid
    return key


def described(info: usecases.CredentialInfo, which: str, cert_info: bool, auth_info: bool) -> Json:
    out: Json = {
        "description": info.description or "",
        "key": key_block(info),
        "cert": cert_block(info, which, cert_info),
    }
    if auth_info:
        factor = (
            {
                "type": "Password",
                "id": "PIN",
                "format": "N",
                "label": "PIN",
                "description": "The credential's PIN",
            }
            if info.activation == "pin"
            else {
                "type": "OTP",
                "id": "OTP",
                "format": "N",
                "label": "OTP",
                "generator": "email",
                "description": "One-time code sent by e-mail (credentials/sendOTP)",
            }
        )
        out["auth"] = {"mode": "explicit", "expression": factor["id"], "objects": [factor]}
    # The specification's tables name the field SCAL (docs/csc.md)
    out.update(SCAL=info.scal, multisign=info.multisign, lang=services().settings.web.lang)
    return out


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
    for method, (operation, guard) in OPERATIONS.items():
        for blueprint, renaming in ((v2, Renaming()), (v1, csc_v1.RENAMED[method])):
            view = json_view(operation, guard, renaming)
            blueprint.add_url_rule(f"/{method}", _endpoint(method), view, methods=["POST"])
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


def _describe_all() -> None:
    for version, title in (("v2", "CSC v2.0.0.2"), ("v1", "CSC v1.0.4")):
        base = f"/csc/{version}"
        describe(f"{base}/info", "post", f"{title}: service information", tag=title, auth=None)
        describe(
            f"{base}/auth/login",
            "post",
            f"{title}: HTTP Basic login → access token (and, with rememberMe, a refresh "
            "token); or refresh_token → new access and refresh tokens (each refresh "
            "token is used once; a replay revokes its family)",
            tag=title,
            auth="basic",
            responses={
                "401": "wrong user name or password",
                "400": "malformed Basic credentials, or a refresh token that is "
                "expired, revoked, replayed or not this service's",
            },
        )
        describe(
            f"{base}/auth/revoke",
            "post",
            f"{title}: revoke an access token, or a refresh token with its family "
            "(token required; token_type_hint)",
            tag=title,
        )
        describe(
            f"{base}/credentials/list", "post", f"{title}: the caller's credentials", tag=title
        )
        describe(f"{base}/credentials/info", "post", f"{title}: one credential", tag=title)
        describe(
            f"{base}/credentials/sendOTP",
            "post",
            f"{title}: send a one-time code by e-mail; with the hashes, numSignatures, "
            "description and signet_labels of the authorize call to come (a Signet "
            "extension), the code approves that request only (docs/csc.md)",
            tag=title,
        )
        describe(
            f"{base}/credentials/authorize",
            "post",
            f"{title}: second factor → SAD bound to the hashes; an OTP works only for "
            "the request it was sent for (hashes, numSignatures, description, "
            "signet_labels: docs/csc.md)",
            tag=title,
        )
        describe(
            f"{base}/credentials/extendTransaction",
            "post",
            f"{title}: renew a SAD for the signatures it has left; at SCAL2 bound to the "
            "hashes sent with it",
            tag=title,
        )
        describe(
            f"{base}/{TIMESTAMP}",
            "post",
            f"{title}: an RFC 3161 time-stamp token over a hash (only when a TSA is "
            "configured; else 501)",
            tag=title,
            responses={"501": "no TSA configured"},
        )
        describe(
            f"{base}/signatures/signHash", "post", f"{title}: sign hashes with a SAD", tag=title
        )


def init_app(app: Flask) -> None:
    # The extension's views join the v1 and v2 blueprints when the module is first imported.
    from signet.web import csc_auth  # noqa: F401 - auth/login and auth/revoke
    from signet.web.activation import describe_activate

    _describe_all()
    signdoc.describe_sign_doc()
    describe_activate()
    app.register_blueprint(v2)
    app.register_blueprint(v1)
