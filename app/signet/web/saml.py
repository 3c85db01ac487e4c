"""The SAML 2.0 service provider's HTTP face: its metadata, the login page's button that sends
the browser to the IdP (HTTP-Redirect), and the assertion consumer service the IdP posts the
Response to (HTTP-POST), which continues the OAuth 2.0 pages at consent (docs/saml.md)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, redirect, request
from flask.typing import ResponseReturnValue

from signet.config.identity import SamlProviderSettings
from signet.errors import SignetError
from signet.signing import oauth2 as oauth2_pages
from signet.signing import saml
from signet.web.oauth2 import CSRF_COOKIE, PAGE_HEADERS, issuer, render
from signet.web.openapi import STRING, obj, operation, tag
from signet.web.params import services

blueprint = Blueprint("saml", __name__)
tag(blueprint, "SAML 2.0 service provider (docs/saml.md)")

# The sealed round-trip state (signing.saml.begin). The IdP posts the Response from its own
# site: a browser sends this cookie with that POST only if it is SameSite=None, which browsers
# accept only with Secure, i.e. over https (the only way a deployment serves these pages).
STATE_COOKIE = "signet_saml"
_PATH = "/saml/"
_PAGES = ("saml.login", "saml.login_link", "saml.acs")


def _public_url() -> str:
    settings = services().settings
    return (settings.web.base_url or issuer()).rstrip("/")


@blueprint.after_request
def _harden(response: Response) -> Response:
    if request.endpoint in _PAGES:
        response.headers.update(PAGE_HEADERS)
    return response


@blueprint.errorhandler(SignetError)
def _refused(exc: SignetError) -> ResponseReturnValue:
    status = exc.status if 400 <= exc.status < 500 else 400
    response = render(oauth2_pages.Page("error", error=exc.description), status)
    if request.endpoint == "saml.acs":
        response.delete_cookie(STATE_COOKIE, path=_PATH)
    return response


@operation(
    "The SP metadata (entity ID, assertion consumer service, signing certificate) to hand "
    "to the identity provider",
    answer_type="application/samlmetadata+xml",
    auth=(),
)
@blueprint.route("/saml/<name>/metadata", methods=["GET"])
def metadata(name: str) -> ResponseReturnValue:
    xml = saml.metadata(services(), name, _public_url())
    return Response(xml, mimetype="application/samlmetadata+xml")


def _leave_for_idp(name: str, ticket: str) -> ResponseReturnValue:
    begun = saml.begin(
        services(),
        name,
        _public_url(),
        ticket if len(ticket) <= 65536 else "",
        request.cookies.get(CSRF_COOKIE),
    )
    return _to_idp(begun)


def _to_idp(begun: saml.Begun) -> ResponseReturnValue:
    """Off to the IdP (303), the sealed state kept by this browser."""
    response = redirect(begun.location, code=303)
    secure = request.is_secure
    response.set_cookie(
        STATE_COOKIE,
        begun.state,
        httponly=True,
        secure=secure,
        samesite="None" if secure else "Lax",
        path=_PATH,
    )
    return response


@operation(
    "The login page's SAML button: a signed AuthnRequest to the identity provider "
    "(HTTP-Redirect); the login page's ticket waits in a sealed cookie",
    request=obj(required=("ticket",), ticket=STRING),
    request_types=("application/x-www-form-urlencoded",),
    also=("303",),
    answer_type="text/html",
    auth=(),
)
@blueprint.route("/login/saml/<name>", methods=["POST"])
def login(name: str) -> ResponseReturnValue:
    # the login page posts its ticket: no ticket in URLs, logs, or request-line limits
    return _leave_for_idp(name, request.form.get("ticket", ""))


@operation(
    "The same as a link: `?ticket=` the login page's sealed ticket",
    also=("303",),
    answer_type="text/html",
    auth=(),
)
@blueprint.route("/login/saml/<name>", methods=["GET"])
def login_link(name: str) -> ResponseReturnValue:
    return _leave_for_idp(name, request.args.get("ticket", ""))


@operation(
    "Assertion consumer service (HTTP-POST binding): the IdP's Response verified, the user "
    "logged in, the consent page; back to the IdP once for a stronger login (303, step-up); "
    "any failed check is an error page naming it",
    request=obj(required=("SAMLResponse",), SAMLResponse=STRING, RelayState=STRING),
    request_types=("application/x-www-form-urlencoded",),
    also=("303",),
    answer_type="text/html",
    auth=(),
)
@blueprint.route("/saml/<name>/acs", methods=["POST"])
def acs(name: str) -> ResponseReturnValue:
    page = saml.finish(
        services(),
        name,
        _public_url(),
        request.cookies.get(STATE_COOKIE),
        request.form.get("RelayState", ""),
        request.form.get("SAMLResponse", ""),
        request.remote_addr or "",
    )
    if isinstance(page, saml.Begun):  # the IdP asked again, for a stronger login
        return _to_idp(page)
    response = render(page, 400 if page.error else 200)
    response.delete_cookie(STATE_COOKIE, path=_PATH)
    return response


@blueprint.app_context_processor
def _providers() -> dict[str, object]:
    """`saml_providers()` for the login page: (name, label) of each enabled SAML provider."""

    def saml_providers() -> list[tuple[str, str]]:
        enabled = services().settings.identity.enabled()
        return [(n, p.label) for n, p in enabled.items() if isinstance(p, SamlProviderSettings)]

    return {"saml_providers": saml_providers}


def init_app(app: Flask) -> None:
    """The SAML pages continue the OAuth 2.0 pages: served when those are."""
    if app.extensions["signet"].settings.oauth2.enabled:
        app.register_blueprint(blueprint)
