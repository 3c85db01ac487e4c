"""The steps of Signet's own login pages after the request is checked: the password or
client-certificate login, the consent, and the credential's second factor (as at
credentials/authorize: its policy, its shared counter of failed tries, its lock) that ends
them with the authorization code; a credential approved on its owner's device (Mobile ID,
passkey) goes on to oauth2_factor's approval page instead."""

from __future__ import annotations

from signet.auth.tokens import Principal
from signet.errors import AccessDenied, SignetError
from signet.events import append_event
from signet.signing import oauth2_device, oauth2_factor, send_otp, sessions
from signet.signing.certificate_login import Presented, certificate_principal
from signet.signing.context import Services
from signet.signing.mobile_requests import DEVICE_KINDS
from signet.signing.oauth2 import Page, RedirectError, authorize, issue_code, open_ticket, ticket
from signet.signing.oauth2 import credential_of as _credential

__all__ = ["certificate", "consent", "factor", "issue_code", "logged_in_elsewhere", "login"]

NO_CERTIFICATE = (
    "Your browser sent no client certificate on this connection: choose yours when the "
    "browser asks (reload the page if it did not), or log in with your password"
)


def login(
    services: Services, value: str, cookie: str | None, username: str, password: str, source: str
) -> Page:
    """The login form sent: the consent page, or the login page again with why."""
    request, _ = open_ticket(services, value, cookie, "login")
    if not username or not password or len(username) > 128 or len(password) > 1024:
        field = "username" if not username or len(username) > 128 else "password"
        wanted = "user name" if field == "username" else "password"
        return Page("login", request, value, error=f"Enter your {wanted}", field=field)
    try:
        user = sessions.check_login(services, username, password, source)
    except SignetError as refused:
        return Page("login", request, value, error=refused.description, field="password")
    credential = _credential(services, request, user) if request.scope == "credential" else None
    return Page(
        "consent",
        request,
        ticket(services, request, cookie or "", "consent", user),
        user=user.username,
        credential=credential,
    )


def certificate(
    services: Services,
    value: str,
    cookie: str | None,
    presented: Presented | None,
    unreadable: str | None,
    source: str,
) -> Page:
    """The login page's certificate button: the TLS client certificate the browser presented
    (`presented`; `unreadable`: why it could not be read) verified, mapped and throttled as at
    auth/login; the consent page, or the login page again with why."""
    request, _ = open_ticket(services, value, cookie, "login")
    if presented is None:
        return Page("login", request, value, error=unreadable or NO_CERTIFICATE)
    try:
        user = certificate_principal(services, presented, source)
    except SignetError as refused:
        return Page("login", request, value, error=refused.description)
    return logged_in_elsewhere(services, value, cookie, user)


def logged_in_elsewhere(
    services: Services, value: str, cookie: str | None, user: Principal
) -> Page:
    """The login page left for an identity provider (OIDC, SAML) and come back with `user`
    (signing.federation.login verified her), or her certificate verified: the consent page,
    as after a password login.
    `value` is the login page's ticket the provider round trip carried."""
    request, _ = open_ticket(services, value, cookie, "login")
    credential = _credential(services, request, user) if request.scope == "credential" else None
    return Page(
        "consent",
        request,
        ticket(services, request, cookie or "", "consent", user),
        user=user.username,
        credential=credential,
    )


def consent(
    services: Services,
    value: str,
    cookie: str | None,
    approve: bool,
    source: str,
    origin: str = "",
) -> Page | str:
    """The consent form sent: a redirect to the client (a code, or access_denied), or the
    second-factor page (for a credential approved on a device, the page that waits for it;
    `origin`: this service's, as her phone is shown it)."""
    request, user = open_ticket(services, value, cookie, "consent")
    assert user is not None
    with services.database.transaction() as session:
        append_event(
            session,
            "oauth2.consent",
            actor=user.username,
            subject=request.client_id,
            outcome="success" if approve else "failure",
            approved=approve,
            scope=request.scope,
            credential=request.credential_id,
            num_signatures=request.num_signatures or None,
            hashes=request.hashes or None,
            source=source,
        )
    if request.device is not None:  # a device's request: no redirect, the page says
        return oauth2_device.decide(services, request, user, approve, source)
    if not approve:
        return request.redirect_with(
            error="access_denied", error_description="The user did not approve the request"
        )
    if request.scope == "service":
        return issue_code(services, request, user, None, source)
    credential = _credential(services, request, user)
    if credential.activation in DEVICE_KINDS:
        return oauth2_factor.start(services, request, user, cookie or "", credential, origin)
    page = Page(
        "factor",
        request,
        ticket(services, request, cookie or "", "factor", user),
        user=user.username,
        credential=credential,
    )
    if credential.otp_channel is None:
        return page
    try:
        send_otp.send_otp(
            services,
            user,
            request.credential_id,
            hashes=request.hashes,
            hash_oid=request.hash_oid,
            num_signatures=request.num_signatures,
            description=request.description,
            labels=request.labels,
        )
    except SignetError as failed:
        return Page(**{**page.__dict__, "error": failed.description, "field": "code"})
    return Page(**{**page.__dict__, "sent_to": credential.otp_to})


def factor(
    services: Services, value: str, cookie: str | None, code: str, source: str
) -> Page | str:
    """The second factor sent: checked by credentials/authorize's own use case (policy,
    counter, lock); a redirect with the code, or the page again with why."""
    request, user = open_ticket(services, value, cookie, "factor")
    assert user is not None and request.credential_id is not None
    credential = _credential(services, request, user)
    by_otp = credential.otp_channel is not None
    page = Page("factor", request, value, user=user.username, credential=credential, field="code")
    if not code or len(code) > 64:
        return Page(**{**page.__dict__, "error": "Enter the code" if by_otp else "Enter the PIN"})
    try:
        granted = authorize(
            services,
            request,
            user,
            pin=None if by_otp else code,
            otp=code if by_otp else None,
            asynchronous=False,  # a device's approval is oauth2_factor's page, not this form
        )
    except AccessDenied as refused:  # locked, or a policy this login cannot meet
        raise RedirectError(request, "access_denied", refused.description) from None
    except SignetError as refused:
        return Page(**{**page.__dict__, "error": refused.description})
    assert isinstance(granted, tuple)  # not asynchronous: a SAD or an error
    return issue_code(services, request, user, granted[0], source)
