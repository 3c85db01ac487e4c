"""The login page's passkey button's form (the assertion the page's script, oauth2-login.js,
got from the browser's WebAuthn API, with the page's ticket), rendered and hardened as the
OAuth 2.0 pages are. It lives under /oauth2/ so the pages' CSRF cookie comes along."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask.typing import ResponseReturnValue

from signet.errors import SignetError
from signet.signing import oauth2, passkey_login
from signet.web import oauth2 as pages
from signet.web.csc import origin
from signet.web.openapi import STRING, obj, operation, tag, with_description
from signet.web.params import services

blueprint = Blueprint("passkey_login", __name__)
tag(blueprint, "OAuth 2.0 authorization server (docs/oauth2.md)")


def _form(name: str) -> str:
    value = request.form.get(name, "")
    return value if len(value) <= 65536 else ""


@blueprint.after_request
def _harden(response: Response) -> Response:
    for name, value in pages.PAGE_HEADERS.items():  # the login page's CSP is its own
        response.headers.setdefault(name, value)
    return response


@blueprint.errorhandler(SignetError)
def _refused(exc: SignetError) -> ResponseReturnValue:
    status = exc.status if 400 <= exc.status < 500 else 400
    return pages.render(oauth2.Page("error", error=exc.description), status)


@operation(
    "The login page's passkey button: a discoverable WebAuthn assertion (user verification) "
    "over the challenge of the page's ticket, verified as a passkey approval is, throttled and "
    "audited as the other logins; the consent page, or the login page again saying why",
    request=obj(
        required=("ticket", "assertion"),
        ticket=STRING,
        assertion=with_description(STRING, "the passkey's assertion, its JSON form"),
    ),
    request_types=pages.FORM,
    also=(),
    page_errors=pages.PAGE_400,
    **pages.HTML,
)
@blueprint.route("/oauth2/login/passkey", methods=["POST"])
def login() -> ResponseReturnValue:
    page = passkey_login.login(
        services(),
        _form("ticket"),
        pages.csrf_cookie(),
        _form("assertion"),
        request.remote_addr or "",
        origin(),
    )
    return pages.render(page, 400 if page.error else 200)


def init_app(app: Flask) -> None:
    if app.extensions["signet"].settings.oauth2.enabled:
        app.register_blueprint(blueprint)
