"""The steps of Signet's own login pages after the request is checked: the password login,
the consent, the credential's second factor (as at credentials/authorize: its policy, its
shared counter of failed tries, its lock), and the authorization code that ends them."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from signet.auth.tokens import Principal, token_digest
from signet.errors import AccessDenied, SignetError
from signet.events import append_event
from signet.sam import mint_grant
from signet.signing import csc, oauth2_device, send_otp, sessions
from signet.signing.context import Services
from signet.signing.oauth2 import AuthRequest, Page, RedirectError, open_ticket, ticket
from signet.store import OAuth2Code


def _credential(services: Services, request: AuthRequest, user: Principal) -> csc.CredentialInfo:
    try:
        return csc.credential_info(services, user, request.credential_id)
    except SignetError:
        raise RedirectError(
            request, "invalid_request", "Invalid parameter credentialID: not a credential of hers"
        ) from None


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


def logged_in_elsewhere(
    services: Services, value: str, cookie: str | None, user: Principal
) -> Page:
    """The login page left for an identity provider (OIDC, SAML) and come back with `user`
    (signing.federation.login verified her): the consent page, as after a password login.
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
    services: Services, value: str, cookie: str | None, approve: bool, source: str
) -> Page | str:
    """The consent form sent: a redirect to the client (a code, or access_denied), or the
    second-factor page."""
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
        granted = csc.authorize(
            services,
            user,
            credential_id=request.credential_id,
            num_signatures=request.num_signatures,
            hashes=request.hashes,
            hash_oid=request.hash_oid,
            pin=None if by_otp else code,
            otp=code if by_otp else None,
            description=request.description,
            labels=request.labels,
            asynchronous=False,  # these pages do not wait for a phone (Mobile ID): refused
        )
    except AccessDenied as refused:  # locked, or a policy this login cannot meet
        raise RedirectError(request, "access_denied", refused.description) from None
    except SignetError as refused:
        return Page(**{**page.__dict__, "error": refused.description})
    assert isinstance(granted, tuple)  # not asynchronous: a SAD or an error
    return issue_code(services, request, user, granted[0], source)


def issue_code(
    services: Services, request: AuthRequest, user: Principal, sad: str | None, source: str
) -> str:
    """A code for this request and user (and the SAD her second factor earned): the grant is
    sealed in its row with the code's digest; the client gets the code at its redirect URI."""
    code = secrets.token_urlsafe(32)
    lifetime = services.settings.oauth2.code_lifetime_seconds
    grant = mint_grant(
        services.hsm,
        "code",
        {
            "h": token_digest(code),
            "r": asdict(request),
            "u": [user.user_id, user.username, user.auth_methods, user.loa],
            "d": sad,
        },
        lifetime,
    )
    stamp = datetime.now(UTC)
    with services.database.transaction() as session:
        session.add(
            OAuth2Code(
                code_hash=token_digest(code),
                client_id=request.client_id,
                user_id=user.user_id,
                used=False,
                grant=grant,
                created_at=stamp,
                expires_at=stamp + timedelta(seconds=lifetime),
            )
        )
        append_event(
            session,
            "oauth2.authorized",
            actor=user.username,
            subject=request.client_id,
            scope=request.scope,
            credential=request.credential_id,
            num_signatures=request.num_signatures or None,
            auth_methods=user.auth_methods.split(),
            loa=user.loa,
            source=source,
        )
    return request.redirect_with(code=code)
