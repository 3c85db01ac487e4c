"""Passkey pages under /passkey/v1: registration (password login on the page, the activation
code, navigator.credentials.create) and the approval of one request (its documents, count and
fingerprint; navigator.credentials.get over its challenge). Server-rendered HTML with one
script of this origin under a strict CSP; the JSON calls answer CSC error JSON on refusal
(docs/passkeys.md)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from signet.errors import SignetError
from signet.signing import passkey as usecase
from signet.signing import passkey_registration
from signet.web import openapi
from signet.web.csc import ERRORS, origin
from signet.web.errors import error_response
from signet.web.openapi import STRING, enum, obj, operation, with_description
from signet.web.params import Params, body, services

blueprint = Blueprint("passkey", __name__, url_prefix="/passkey/v1", template_folder="templates")
openapi.tag(blueprint, "Passkey pages (docs/passkeys.md)")

_PAGES = ("passkey.register_page", "passkey.approve_page")
_HEADERS = {
    # one script, of this origin; calls to this origin only; nothing framed, nothing else
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HTML = {"answer_type": "text/html", "auth": ()}
PASSKEY_ERRORS = {
    **ERRORS,
    "401": "wrong user name or password",
    "403": "a record the SAM did not write, a locked credential, a cloned authenticator",
    "404": "no passkey request of that id",
    "409": "the request was decided already (a replay)",
    "410": "the request has expired",
}
CREDENTIAL = with_description(obj(), "the PublicKeyCredential's JSON form (base64url fields)")


@blueprint.after_request
def _harden(response: Response) -> Response:
    response.headers.update(_HEADERS)
    return response


@blueprint.errorhandler(SignetError)
def _refused(exc: SignetError) -> ResponseReturnValue:
    if request.endpoint in _PAGES:
        status = exc.status if 400 <= exc.status < 500 else 400
        return Response(
            render_template("passkey/error.html", error=exc.description, status=status),
            status=status,
        )
    return error_response(exc.status, exc.error, exc.description)


@operation("The page that registers a passkey for a pending passkey credential", **HTML)
def register_page() -> ResponseReturnValue:
    return render_template("passkey/register.html", credential_id=request.args.get("credential"))


@operation(
    "WebAuthn creation options for the user's pending passkey credential (password login)",
    request=obj(
        required=("credentialID", "username", "password"),
        credentialID=STRING,
        username=STRING,
        password=STRING,
    ),
    answer=obj(required=("challenge", "publicKey"), challenge=STRING, publicKey=obj()),
    errors=PASSKEY_ERRORS,
    auth=(),
)
def options_view() -> ResponseReturnValue:
    params = Params(body())
    options = passkey_registration.registration_options(
        services(),
        credential_id=params.get("credentialID"),
        username=params.get("username"),
        password=params.get("password"),
        source=request.remote_addr or "",
        origin=origin(),
    )
    return jsonify({"challenge": options.challenge, "publicKey": options.public_key})


@operation(
    "Register the passkey the browser made over the sealed challenge, with the activation code",
    request=obj(
        required=(
            "credentialID",
            "username",
            "password",
            "activationCode",
            "challenge",
            "credential",
        ),
        credentialID=STRING,
        username=STRING,
        password=STRING,
        activationCode=STRING,
        challenge=STRING,
        label=STRING,
        credential=CREDENTIAL,
    ),
    answer=obj(
        required=("deviceID", "credentialID", "status"),
        deviceID=STRING,
        credentialID=STRING,
        status=enum("active"),
    ),
    errors=PASSKEY_ERRORS,
    auth=(),
)
def register_view() -> ResponseReturnValue:
    params = Params(body())
    done = passkey_registration.register_passkey(
        services(),
        credential_id=params.get("credentialID"),
        username=params.get("username"),
        password=params.get("password"),
        activation_code=params.get("activationCode"),
        challenge=params.get("challenge"),
        credential=params.get("credential"),
        label=params.get("label"),
        source=request.remote_addr or "",
        origin=origin(),
    )
    return jsonify(
        {"deviceID": done.device_id, "credentialID": done.credential_id, "status": "active"}
    )


@operation("The page that approves or denies one request with the credential's passkey", **HTML)
def approve_page(request_id: str) -> ResponseReturnValue:
    shown = usecase.approval(services(), request_id, origin())
    return render_template("passkey/approve.html", page=shown)


@operation(
    "Approve or deny the request with the passkey's assertion over its challenge",
    request=obj(
        required=("decision", "credential"),
        decision=enum("approve", "deny"),
        credential=CREDENTIAL,
    ),
    answer=obj(required=("requestID", "state"), requestID=STRING, state=STRING),
    errors=PASSKEY_ERRORS,
    auth=(),
)
def decide_view(request_id: str) -> ResponseReturnValue:
    params = Params(body())
    state = usecase.decide(
        services(),
        request_id=request_id,
        decision=params.get("decision"),
        assertion=params.get("credential"),
    )
    return jsonify({"requestID": request_id, "state": state})


blueprint.add_url_rule("/register", "register_page", register_page, methods=["GET"])
blueprint.add_url_rule("/register/options", "options", options_view, methods=["POST"])
blueprint.add_url_rule("/register", "register", register_view, methods=["POST"])
blueprint.add_url_rule("/approve/<request_id>", "approve_page", approve_page, methods=["GET"])
blueprint.add_url_rule("/approve/<request_id>", "decide", decide_view, methods=["POST"])


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
