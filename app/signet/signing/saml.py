"""A SAML 2.0 login's round trip through the identity provider: the OAuth 2.0 login page's
ticket and the AuthnRequest's ID kept for this browser in a SAM-sealed state, the IdP's
Response verified against them once, the login audited, and the pages continued at consent."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from signet.auth import saml
from signet.auth.tokens import Principal
from signet.config.identity import SamlProviderSettings
from signet.errors import NotFound
from signet.events import append_event
from signet.sam.seals import mint_grant, open_grant
from signet.signing import federation
from signet.signing.context import Services
from signet.signing.oauth2 import Page, PageError, open_ticket
from signet.signing.oauth2_consent import logged_in_elsewhere
from signet.store import SpentAssertion


@dataclass(frozen=True)
class Begun:
    """Where the browser goes (the IdP, with a signed AuthnRequest), and the sealed state it
    must bring back to the ACS in its cookie."""

    location: str
    state: str


def settings_of(services: Services, name: str) -> SamlProviderSettings:
    """The enabled SAML provider `name`, or a 404."""
    found = federation.provider(services, name)
    if not isinstance(found, SamlProviderSettings):
        raise NotFound(f"{name!r} is not a SAML identity provider")
    return found


def metadata(services: Services, name: str, public_url: str, sign: bool = False) -> str:
    """The SP metadata of provider `name`, to hand to its IdP."""
    return saml.metadata(settings_of(services, name), name, public_url, sign)


def begin(
    services: Services, name: str, public_url: str, ticket_value: str, cookie: str | None
) -> Begun:
    """Leave the login page (its ticket, from this browser) for the IdP. RelayState is a
    short random value (SAML bindings allow 80 bytes); the ticket, the page's CSRF cookie and
    the AuthnRequest ID stay in the sealed state the browser keeps in an HttpOnly cookie."""
    settings = settings_of(services, name)
    open_ticket(services, ticket_value, cookie, "login")
    assert cookie is not None  # open_ticket refuses a browser without it
    return _begun(services, settings, name, public_url, ticket_value, cookie)


def _begun(
    services: Services,
    settings: SamlProviderSettings,
    name: str,
    public_url: str,
    ticket_value: str,
    cookie: str,
    stronger: list[str] | None = None,
) -> Begun:
    """The AuthnRequest and its sealed state; with `stronger`, the step-up's (those contexts,
    ForceAuthn, and the state marked so that it is asked once)."""
    relay = secrets.token_urlsafe(24)
    started = saml.start(settings, name, public_url, relay, contexts=stronger)
    claims: dict[str, object] = {
        "p": name, "t": ticket_value, "c": cookie, "i": started.request_id, "r": relay
    }  # fmt: skip
    if stronger:
        claims["u"] = 1
    state = mint_grant(services.hsm, "saml", claims, services.settings.oauth2.page_lifetime_seconds)
    return Begun(started.location, state)


def _spend_request(services: Services, name: str, request_id: str, until: int) -> bool:
    """Mark the AuthnRequest answered: one Response per request, whatever it carries."""
    digest = hashlib.sha256(f"{name}\0request\0{request_id}".encode()).hexdigest()
    try:
        with services.database.transaction() as session:
            session.add(
                SpentAssertion(
                    digest=digest,
                    provider=name,
                    expires_at=datetime.fromtimestamp(until, UTC) + timedelta(hours=1),
                )
            )
    except IntegrityError:
        return False
    return True


def _audit_refusal(services: Services, name: str, reason: str, source: str) -> None:
    with services.database.transaction() as session:
        append_event(
            session,
            "federation.login",
            actor=f"idp:{name}",
            subject=f"idp:{name}",
            outcome="failure",
            provider=name,
            protocol="saml",
            reason=reason,
            source=source,
        )


def finish(
    services: Services,
    name: str,
    public_url: str,
    state: str | None,
    relay_state: str,
    posted: str,
    source: str,
) -> Page | Begun:
    """The IdP's Response posted to the ACS with this browser's state: verified, spent, the
    user logged in (signing.federation), and the consent page of the OAuth 2.0 request; or,
    when her login falls short of the credential's policy, the IdP asked again once for a
    stronger context (`step_up`), then the login page naming the step-up."""
    settings = settings_of(services, name)
    claims = open_grant(services.hsm, "saml", state or "")
    if claims is None or claims.get("p") != name:
        reason = "This SAML login has expired or was not started in this browser; start again"
        _audit_refusal(services, name, reason, source)
        raise PageError(reason)
    if not hmac.compare_digest(str(claims["r"]), relay_state or ""):
        reason = "RelayState: the Response does not continue this browser's login"
        _audit_refusal(services, name, reason, source)
        raise PageError(reason)
    if not _spend_request(services, name, str(claims["i"]), int(claims["x"])):
        reason = "InResponseTo: this login request was answered before (a replay)"
        _audit_refusal(services, name, reason, source)
        raise federation.FederationRefused(reason)
    try:
        asserted = saml.verify(settings, name, public_url, posted, str(claims["i"]))
    except saml.SamlRefused as exc:
        _audit_refusal(services, name, exc.description, source)
        raise
    principal: Principal = federation.login(services, asserted, source)
    ticket_value, cookie = str(claims["t"]), str(claims["c"])
    page = logged_in_elsewhere(services, ticket_value, cookie, principal)
    short = federation.short_of_policy(services, page, principal)
    if not short:
        return page
    once = settings.step_up and not claims.get("u")
    stronger = federation.stronger(settings, principal) if once else []
    if not stronger:
        return Page("login", page.request, ticket_value, error=short)
    federation.step_up_asked(services, principal, name, "saml", stronger, source)
    return _begun(services, settings, name, public_url, ticket_value, cookie, stronger)
