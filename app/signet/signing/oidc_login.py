"""An OpenID Connect login from Signet's login page: the round trip to the provider and back,
sealed by the SAM and kept by this browser, and its end: the consent page for the user the
verified ID token names, or the login page again saying why.

The round trip's state (the provider, the login page's ticket, the OIDC state, nonce and PKCE
verifier) is a grant sealed by the SAM that the browser keeps in an HttpOnly cookie; only the
state goes to the provider, so the verifier is never in a URL, and a callback from another
browser, to another provider's address or with another state is refused. The nonce is spent
once by `signing.federation.login`: the same ID token, or another the OP issued for the same
request, never logs in twice."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from signet.auth import oidc
from signet.config.identity import OidcProviderSettings
from signet.errors import ServiceUnavailable, SignetError
from signet.events import append_event
from signet.sam import mint_grant, open_grant
from signet.signing import federation, oauth2_consent
from signet.signing.context import Services
from signet.signing.oauth2 import Page, PageError, open_ticket

# Time at the provider to log in: the login page's own lifetime, at least ten minutes.
_MIN_ROUND_TRIP = 600


def settings_of(services: Services, name: str) -> OidcProviderSettings:
    """The enabled OpenID Connect provider `name`, else a clear 404."""
    found = federation.provider(services, name)
    if not isinstance(found, OidcProviderSettings):
        raise SignetError(
            f"Identity provider {name!r} is not an OpenID Connect provider", status=404
        )
    return found


def _secret(settings: OidcProviderSettings) -> str | None:
    if settings.client_secret_file is None:
        return None
    try:
        return Path(settings.client_secret_file).read_text().strip()
    except OSError:
        raise ServiceUnavailable(
            "The identity provider's client secret cannot be read; tell the operator"
        ) from None


@dataclass(frozen=True)
class StepUp:
    """The provider asked again for a stronger context: where to send the browser, and the
    sealed round trip it keeps until the callback."""

    location: str
    round_trip: str


def start(
    services: Services, name: str, ticket: str, cookie: str | None, redirect_uri: str
) -> tuple[str, str]:
    """The provider's authorization URL for the login page's `ticket` (this browser's), and the
    sealed round trip the browser keeps until the callback."""
    settings = settings_of(services, name)
    open_ticket(services, ticket, cookie, "login")  # this browser's login page, still valid
    return _round_trip(services, settings, name, ticket, redirect_uri)


def _round_trip(
    services: Services,
    settings: OidcProviderSettings,
    name: str,
    ticket: str,
    redirect_uri: str,
    stronger: list[str] | None = None,
) -> tuple[str, str]:
    """The authorization URL and its sealed round trip; with `stronger`, the step-up's (those
    acr values, prompt=login, and marked so that it is asked once)."""
    try:
        url, pending = oidc.authorization_url(
            settings, redirect_uri, acr_values=stronger, prompt="login" if stronger else None
        )
    except oidc.OidcError as exc:
        _failed(services, name, str(exc), "")
        raise ServiceUnavailable(f"{settings.label} cannot be reached now: {exc}") from None
    lifetime = max(services.settings.oauth2.page_lifetime_seconds, _MIN_ROUND_TRIP)
    claims: dict[str, object] = {
        "p": name,
        "t": ticket,
        "s": pending.state,
        "n": pending.nonce,
        "v": pending.verifier,
    }
    if stronger:
        claims["u"] = 1
    return url, mint_grant(services.hsm, "oidc", claims, lifetime)


def _failed(services: Services, name: str, reason: str, source: str) -> None:
    """A round trip that did not come back with a verified ID token, audited."""
    with services.database.transaction() as session:
        append_event(
            session,
            "federation.login",
            actor=f"idp:{name}",
            subject=None,
            outcome="failure",
            provider=name,
            protocol="oidc",
            reason=reason[:500],
            source=source,
        )


def callback(
    services: Services,
    name: str,
    params: Mapping[str, str],
    round_trip: str | None,
    cookie: str | None,
    redirect_uri: str,
    source: str,
) -> Page | StepUp:
    """The provider sent the browser back: the consent page for the user its verified ID
    token names, the login page again saying why not, or an error page when not even the
    login page can be shown (no round trip of this browser's, another state). A login that
    falls short of the credential's policy is asked again of the provider, once, for the
    stronger contexts its levels map (`step_up`)."""
    claims = open_grant(services.hsm, "oidc", round_trip or "")

    def refused(reason: str) -> PageError:
        _failed(services, name, reason, source)
        return PageError(reason)

    if claims is None:
        raise refused(
            "No login at an identity provider is under way in this browser (or it expired)"
        )
    if claims["p"] != name:
        raise refused("The identity provider's answer came back to another provider's address")
    if not hmac.compare_digest(str(params.get("state", "")), claims["s"]):
        raise refused("The identity provider's answer is not for this browser's login (state)")
    ticket = claims["t"]
    request, _ = open_ticket(services, ticket, cookie, "login")
    settings = settings_of(services, name)

    def again(reason: str) -> Page:
        return Page("login", request, ticket, error=reason)

    if params.get("error"):
        reason = f"{settings.label} answered {params['error']}"
        if params.get("error_description"):
            reason += f": {params['error_description'][:200]}"
        _failed(services, name, reason, source)
        return again(reason)
    if params.get("iss") and params["iss"] != settings.issuer:  # RFC 9207: mix-up defence
        _failed(services, name, f"iss {params['iss']!r} in the answer", source)
        return again(f"The answer did not come from {settings.label} (iss)")
    code = params.get("code")
    if not code:
        _failed(services, name, "no code", source)
        return again(f"{settings.label} sent no authorization code")
    pending = oidc.Pending(claims["s"], claims["n"], claims["v"])
    try:
        asserted = oidc.login(settings, name, _secret(settings), redirect_uri, code, pending)
    except oidc.OidcError as exc:
        _failed(services, name, str(exc), source)
        return again(f"The login at {settings.label} was not accepted: {exc}")
    try:
        principal = federation.login(services, asserted, source)
    except federation.FederationRefused as exc:  # audited there
        return again(exc.description)
    page = oauth2_consent.logged_in_elsewhere(services, ticket, cookie, principal)
    short = federation.short_of_policy(services, page, principal)
    if not short:
        return page
    stronger = (
        federation.stronger(settings, principal) if settings.step_up and not claims.get("u") else []
    )
    if not stronger:
        return again(short)
    federation.step_up_asked(services, principal, name, "oidc", stronger, source)
    return StepUp(*_round_trip(services, settings, name, ticket, redirect_uri, stronger))
