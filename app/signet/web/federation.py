"""The login page's other ways in: a button per enabled identity provider, and the OpenID
Connect round trip's two addresses (off to the provider, back from it), rendered and hardened
as the OAuth 2.0 pages are. They live under /oauth2/ so the pages' CSRF cookie comes along."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue

from signet.errors import SignetError
from signet.signing import oauth2, oidc_login
from signet.web import oauth2 as pages
from signet.web.openapi import operation, tag
from signet.web.params import services

blueprint = Blueprint("federation", __name__)
tag(blueprint, "OAuth 2.0 authorization server (docs/oauth2.md)")

# The browser's half of an OIDC round trip (signing.oidc_login): sealed, HttpOnly, only sent
# back to the callback.
ROUND_TRIP_COOKIE = "signet_oidc"
_ROUND_TRIP_PATH = "/oauth2/login/oidc/"
# The route that starts a login at a provider of each kind; a kind whose blueprint is not
# registered (yet) shows no button.
# SAML providers have their own buttons (web.saml: forms that POST the ticket).
START_ENDPOINTS = {"oidc": "federation.oidc_start"}
HTML = {"answer_type": "text/html", "auth": ()}


@dataclass(frozen=True)
class Button:
    label: str
    href: str


def login_buttons(ticket: str) -> list[Button]:
    """The login page's buttons for the enabled providers, each carrying the page's ticket."""
    buttons = []
    for name, provider in services().settings.identity.enabled().items():
        endpoint = START_ENDPOINTS.get(provider.kind)
        if endpoint is None or endpoint not in current_app.view_functions:
            continue
        buttons.append(Button(provider.label, url_for(endpoint, provider=name, ticket=ticket)))
    return buttons


def _redirect_uri(name: str) -> str:
    base = (services().settings.web.base_url or request.host_url).rstrip("/")
    return base + url_for("federation.oidc_callback", provider=name)


@blueprint.after_request
def _harden(response: Response) -> Response:
    response.headers.update(pages.PAGE_HEADERS)
    return response


@blueprint.errorhandler(SignetError)
def _refused(exc: SignetError) -> ResponseReturnValue:
    if isinstance(exc, oauth2.RedirectError):  # one the application hears of (not her key)
        response = redirect(exc.location, code=303)
        response.delete_cookie(ROUND_TRIP_COOKIE, path=_ROUND_TRIP_PATH)
        return response
    status = exc.status if 400 <= exc.status < 600 and exc.status != 500 else 400
    response = pages.render(oauth2.Page("error", error=exc.description), status)
    response.delete_cookie(ROUND_TRIP_COOKIE, path=_ROUND_TRIP_PATH)
    return response


@operation(
    "Log in at an OpenID Connect provider from the login page: off to the provider (303), "
    "the round trip kept by this browser; an HTML error page (400, 404, 503) otherwise",
    success="303",
    **HTML,
)
@blueprint.route("/oauth2/login/oidc/<provider>", methods=["GET"])
def oidc_start(provider: str) -> ResponseReturnValue:
    ticket = request.args.get("ticket", "")
    url, sealed = oidc_login.start(
        services(), provider, ticket, pages.csrf_cookie(), _redirect_uri(provider)
    )
    return _to_provider(url, sealed)


def _to_provider(url: str, sealed: str) -> ResponseReturnValue:
    """Off to the provider (303), the round trip kept by this browser."""
    response = redirect(url, code=303)
    response.set_cookie(
        ROUND_TRIP_COOKIE,
        sealed,
        httponly=True,
        samesite="Lax",  # the provider's redirect back is a top-level GET: the cookie comes
        secure=request.is_secure,
        path=_ROUND_TRIP_PATH,
    )
    return response


@operation(
    "The OpenID Connect provider's answer (code and state, or an error): the consent page, "
    "back to the provider once for a stronger login (303, step-up), or (400) the login page "
    "again or an error page saying why",
    also=("303",),
    **HTML,
)
@blueprint.route("/oauth2/login/oidc/<provider>/callback", methods=["GET"])
def oidc_callback(provider: str) -> ResponseReturnValue:
    params = {k: request.args.get(k, "")[:4096] for k in ("code", "state", "error", "iss")}
    params["error_description"] = request.args.get("error_description", "")[:4096]
    page = oidc_login.callback(
        services(),
        provider,
        params,
        request.cookies.get(ROUND_TRIP_COOKIE),
        pages.csrf_cookie(),
        _redirect_uri(provider),
        request.remote_addr or "",
    )
    if isinstance(page, oidc_login.StepUp):  # the provider asked again, for more
        return _to_provider(page.location, page.round_trip)
    response = pages.render(page, 400 if page.error else 200)
    response.delete_cookie(ROUND_TRIP_COOKIE, path=_ROUND_TRIP_PATH)  # one round trip, once
    return response


def init_app(app: Flask) -> None:
    if app.extensions["signet"].settings.oauth2.enabled:
        app.register_blueprint(blueprint)
        app.jinja_env.globals["login_buttons"] = login_buttons
