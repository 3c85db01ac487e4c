"""The OAuth 2.0 authorization server's HTTP face: Signet's own login pages (plain HTML, one
style sheet, no script but the device approval page's and the login page's passkey button's),
the blueprint they share with the client-facing endpoints (`web.oauth2_endpoints`: token,
revocation, device authorization, pushed requests, metadata; RFC 6749 errors as JSON), and its
error handling."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue

from signet.errors import SignetError, TooManyRequests
from signet.signing import (
    oauth2,
    oauth2_consent,
    oauth2_device,
    oauth2_factor,
)
from signet.signing.oauth2_clients import OAuth2Error
from signet.signing.passkey_login import offer as passkey_offer
from signet.web.client_certificate import presented_certificate
from signet.web.csc import origin
from signet.web.openapi import STRING, enum, obj, operation, tag, with_description
from signet.web.params import services

blueprint = Blueprint("oauth2", __name__, template_folder="templates")
tag(blueprint, "OAuth 2.0 authorization server (docs/oauth2.md)")

FORM = ("application/x-www-form-urlencoded",)
TICKET_FORM = obj(required=("ticket",), ticket=with_description(STRING, "the page's sealed ticket"))
HTML = {"answer_type": "text/html", "auth": ()}
# What the pages' forms answer when they cannot go on: the page again saying why, or the
# error page (a ticket expired, edited, of another browser or stage).
PAGE_400 = {"400": "the page again saying why, or the error page (a ticket that cannot be used)"}

CSRF_COOKIE = "signet_oauth2_csrf"
_PAGES = (
    "oauth2.authorize",
    "oauth2.login",
    "oauth2.certificate_login",
    "oauth2.consent",
    "oauth2.factor",
    "oauth2.approval",
    "oauth2.device",
    "oauth2.device_page",
)
PAGE_HEADERS = {
    # no script, no frames, nothing from elsewhere; forms post to this origin (and the
    # consent's redirect goes on to the client, which form-action would block in Chromium)
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# The device approval page (its two scripts), and the login page with its passkey button:
# scripts of this origin, which call this origin only.
SCRIPT_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def issuer() -> str:
    settings = services().settings
    return settings.oauth2.issuer or (settings.web.base_url or request.host_url).rstrip("/")


def source() -> str:
    return request.remote_addr or ""


def params_of(given: Any) -> dict[str, Any]:
    """The parameters of a query or form, each given once (RFC 6749 3.1)."""
    params: dict[str, Any] = {}
    for name in given:
        values = given.getlist(name)
        if len(values) > 1:
            raise oauth2.PageError(f"Parameter {name} given more than once")
        params[name] = values[0]
    return params


def render(page: oauth2.Page, status: int = 200) -> Response:
    """A page of the login flow (oauth2/<name>.html) with this status; the login page with
    its passkey button where WebAuthn can work here (and the script that shows it)."""
    offer = None
    if page.name == "login" and page.ticket:
        offer = passkey_offer(services(), page.ticket, origin())
    body = render_template(f"oauth2/{page.name}.html", page=page, passkey=offer)
    response = Response(body, status=status)
    if page.name == oauth2_factor.STAGE or offer is not None:
        response.headers["Content-Security-Policy"] = SCRIPT_CSP
    return response


def csrf_cookie() -> str | None:
    return request.cookies.get(CSRF_COOKIE)


def _outcome(result: oauth2.Page | str) -> ResponseReturnValue:
    if isinstance(result, str):
        return redirect(result, code=303)
    return render(result, 400 if result.error else 200)


@blueprint.after_request
def _harden(response: Response) -> Response:
    if request.endpoint in _PAGES:
        for name, value in PAGE_HEADERS.items():  # the approval page's CSP is its own
            response.headers.setdefault(name, value)
    elif request.endpoint in (
        "oauth2.approval_status",
        "oauth2.token",
        "oauth2.pushed_authorize",
        "oauth2.device_authorization",
    ):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


@blueprint.errorhandler(SignetError)
def _refused(exc: SignetError) -> ResponseReturnValue:
    if isinstance(exc, oauth2.RedirectError):
        return redirect(exc.location, code=303)
    if request.endpoint in _PAGES:
        status = exc.status if 400 <= exc.status < 500 else 400
        return render(oauth2.Page("error", error=exc.description), status)
    error = exc.error if isinstance(exc, OAuth2Error) else "invalid_request"
    status = exc.status if isinstance(exc, OAuth2Error | TooManyRequests) else 400
    response = jsonify({"error": error, "error_description": exc.description})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="signet-oauth2"'
    return response


@operation(
    "Authorization request (RFC 6749 4.1.1, PKCE, CSC 8.3.2, RAR, PAR): the login page; an "
    "error the client may hear goes back to its redirect URI, any other is an HTML error page",
    also=("303",),
    **HTML,
)
@blueprint.route("/oauth2/authorize", methods=["GET"])
def authorize() -> ResponseReturnValue:
    cookie = csrf_cookie() or secrets.token_urlsafe(24)
    page = oauth2.start(services(), params_of(request.args), cookie)
    return _with_cookie(render(page), cookie)


def _with_cookie(response: Response, cookie: str) -> Response:
    response.set_cookie(
        CSRF_COOKIE,
        cookie,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
        # "/": the SAML and OIDC login buttons (/login/...) check the ticket's browser too
        path="/",
    )
    return response


def _form(name: str) -> str:
    value = request.form.get(name, "")
    return value if len(value) <= 65536 else ""


@operation(
    "The login page's form: the consent page, or the login page again saying why",
    request=obj(required=("ticket",), ticket=STRING, username=STRING, password=STRING),
    request_types=FORM,
    also=(),
    page_errors=PAGE_400,
    **HTML,
)
@blueprint.route("/oauth2/login", methods=["POST"])
def login() -> ResponseReturnValue:
    page = oauth2_consent.login(
        services(), _form("ticket"), csrf_cookie(), _form("username"), _form("password"), source()
    )
    return _outcome(page)


@operation(
    "The login page's certificate button: the TLS client certificate of this connection (or "
    "of a trusted proxy's header) verified and mapped as at auth/login; the consent page, or "
    "the login page again saying why",
    request=obj(required=("ticket",), ticket=STRING),
    request_types=FORM,
    also=(),
    page_errors=PAGE_400,
    **HTML,
)
@blueprint.route("/oauth2/login/certificate", methods=["POST"])
def certificate_login() -> ResponseReturnValue:
    unreadable = None
    try:
        presented = presented_certificate()
    except SignetError as refused:  # a certificate or proxy header that cannot be read
        presented, unreadable = None, refused.description
    page = oauth2_consent.certificate(
        services(), _form("ticket"), csrf_cookie(), presented, unreadable, source()
    )
    return _outcome(page)


@blueprint.app_context_processor
def _certificate_button() -> dict[str, Any]:
    """`certificate_login_offered()` for the login page: client-certificate logins enabled."""

    def offered() -> bool:
        return services().settings.client_certificates.enabled

    return {"certificate_login_offered": offered}


@operation(
    "The consent page's form: back to the client (a code, or access_denied), or the "
    "second-factor page",
    request=obj(required=("ticket",), ticket=STRING, decision=enum("approve", "deny")),
    request_types=FORM,
    also=("303",),
    page_errors=PAGE_400,
    **HTML,
)
@blueprint.route("/oauth2/consent", methods=["POST"])
def consent() -> ResponseReturnValue:
    approve = request.form.get("decision") == "approve"
    return _outcome(
        oauth2_consent.consent(
            services(), _form("ticket"), csrf_cookie(), approve, source(), origin()
        )
    )


@operation(
    "The second-factor page's form (the one-time code or the PIN): back to the client with "
    "a code, or the page again saying why",
    request=obj(required=("ticket",), ticket=STRING, code=STRING),
    request_types=FORM,
    also=("303",),
    page_errors=PAGE_400,
    **HTML,
)
@blueprint.route("/oauth2/factor", methods=["POST"])
def factor() -> ResponseReturnValue:
    return _outcome(
        oauth2_consent.factor(services(), _form("ticket"), csrf_cookie(), _form("code"), source())
    )


@operation(
    "The device approval page's form (Mobile ID, passkey): continue — with the passkey's "
    "assertion, or once her phone decided — back to the client with a code, or access_denied "
    "if she denied or the request expired, or the page again saying why; cancel withdraws the "
    "request (access_denied)",
    request=obj(
        required=("ticket",),
        ticket=STRING,
        decision=enum("continue", "cancel"),
        assertion=with_description(STRING, "a passkey's assertion, its JSON form"),
    ),
    request_types=FORM,
    also=("303",),
    page_errors=PAGE_400,
    **HTML,
)
@blueprint.route("/oauth2/approval", methods=["POST"])
def approval() -> ResponseReturnValue:
    return _outcome(
        oauth2_factor.finish(
            services(),
            _form("ticket"),
            csrf_cookie(),
            decision=request.form.get("decision") or "continue",
            assertion=_form("assertion"),
            source=source(),
            origin=origin(),
        )
    )


@operation(
    "The device approval page's poll: the state of the request her device is asked to approve "
    "(the page's ticket, from the browser it was given to); it issues nothing",
    request=TICKET_FORM,
    request_types=FORM,
    answer=obj(
        required=("status", "expiresIn"),
        status=enum("pending", "approved", "denied", "expired", "issued"),
        expiresIn={"type": "integer", "minimum": 0},
    ),
    errors={"400": "invalid_request: a ticket expired, edited, of another browser or stage"},
    auth=(),
)
@blueprint.route("/oauth2/approval/status", methods=["POST"])
def approval_status() -> ResponseReturnValue:
    return jsonify(oauth2_factor.status(services(), _form("ticket"), csrf_cookie()))


@operation(
    "The device verification page (RFC 8628 3.3): the user code form, filled in from "
    "user_code (verification_uri_complete) for the user to confirm",
    **HTML,
)
@blueprint.route("/oauth2/device", methods=["GET"])
def device_page() -> ResponseReturnValue:
    cookie = csrf_cookie() or secrets.token_urlsafe(24)
    typed = request.args.get("user_code", "")[:64]
    return _with_cookie(render(oauth2.Page("device", user_code=typed)), cookie)


@operation(
    "The device verification page's form: the login page for the device's request, or the "
    "form again saying why (400), or 429 after too many wrong codes from this address",
    request=obj(user_code=with_description(STRING, "the code the device shows, XXXX-XXXX")),
    request_types=FORM,
    also=(),
    page_errors={
        **PAGE_400,
        "429": "too many wrong codes from this address: the error page, saying when to retry",
    },
    **HTML,
)
@blueprint.route("/oauth2/device", methods=["POST"])
def device() -> ResponseReturnValue:
    cookie = csrf_cookie() or secrets.token_urlsafe(24)
    page = oauth2_device.enter(services(), _form("user_code"), cookie, source())
    return _with_cookie(render(page, 400 if page.error else 200), cookie)


def init_app(app: Flask) -> None:
    if app.extensions["signet"].settings.oauth2.enabled:
        # The client-facing endpoints join the blueprint when their module is first imported.
        from signet.web import oauth2_endpoints  # noqa: F401

        app.register_blueprint(blueprint)
