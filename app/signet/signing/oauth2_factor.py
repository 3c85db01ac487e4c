"""The OAuth 2.0 pages' second factor for a credential approved on its owner's device (Mobile
ID, passkey): the request made by credentials/authorize's own use case, the page that waits
for her phone or runs her passkey, the request's state for the page's script, and the code
issued once the request's SAD is collected — one request, one SAD, one code (docs/oauth2.md).

The page's ticket names the request (sealed by the SAM with the user, the client's request
and the browser's CSRF binding), so no form can point it at another one; the SAD is taken
by authorizeCheck's own conditional update, so of two sends of the same ticket one gets a
code and the other is refused."""

from __future__ import annotations

import time
from typing import Any

from signet.auth.tokens import Principal
from signet.errors import AccessDenied, SignetError
from signet.sam import decode_hash
from signet.sam import mobile as mobile_trust
from signet.signing import csc, mobile, passkey
from signet.signing.context import Services
from signet.signing.mobile_requests import PASSKEY, MobileRefused, Pending
from signet.signing.oauth2 import (
    AuthRequest,
    Page,
    PageError,
    RedirectError,
    Waiting,
    authorize,
    credential_of,
    issue_code,
    open_ticket_claims,
    ticket,
)
from signet.store import MobileRequest

STAGE = "approval"
STILL_PENDING = "Not approved yet: approve on your device, then press Continue."


def start(
    services: Services,
    request: AuthRequest,
    user: Principal,
    cookie: str,
    credential: csc.CredentialInfo,
    origin: str,
) -> Page:
    """After the consent: the request for her device, made and bound to the hashes, count,
    labels and description as credentials/authorize makes it (its policy first, its audit
    events, the push), and the page that waits for it (`origin`: this service's)."""
    try:
        pending = authorize(services, request, user, pin=None, otp=None, origin=origin)
    except AccessDenied as refused:  # locked, a policy she cannot meet, no sound device
        raise RedirectError(request, "access_denied", refused.description) from None
    except SignetError as refused:  # what the client asked cannot be authorized
        raise RedirectError(request, "invalid_request", refused.description) from None
    assert isinstance(pending, Pending)
    value = ticket(services, request, cookie, STAGE, user, pending.authorization_id)
    return page(services, request, value, user, credential, pending.authorization_id, origin)


def page(
    services: Services,
    request: AuthRequest,
    value: str,
    user: Principal,
    credential: csc.CredentialInfo,
    request_id: str,
    origin: str,
    *,
    error: str | None = None,
    note: str | None = None,
) -> Page:
    """The approval page: what her device shows, while it can still be decided."""
    return Page(
        STAGE,
        request,
        value,
        user=user.username,
        credential=credential,
        error=error,
        waiting=_waiting(services, request, credential, request_id, origin),
        note=note,
    )


def _waiting(
    services: Services,
    request: AuthRequest,
    credential: csc.CredentialInfo,
    request_id: str,
    origin: str,
) -> Waiting | None:
    if credential.activation == PASSKEY:
        try:
            shown = passkey.approval(services, request_id, origin)
        except SignetError:  # decided, expired: nothing left to approve on this page
            return None
        return Waiting(
            "passkey",
            shown.fingerprint,
            shown.expires_in,
            rp_id=shown.rp_id,
            webauthn_id=shown.webauthn_id,
            challenge=shown.challenges["approve"],
        )
    state, left = _state(services, request, None, request_id)
    if state != "pending":
        return None
    hashes = [mobile_trust.b64url(decode_hash(h)) for h in request.hashes]
    return Waiting("mobile", mobile.fingerprint(hashes), left)


def _state(
    services: Services, request: AuthRequest, user: Principal | None, request_id: str
) -> tuple[str, int]:
    """The request's state as the page tells it (pending, approved, denied, expired, issued)
    and its seconds left. Read only: whatever a row says here, the code needs authorizeCheck."""
    with services.database.transaction(read_only=True) as session:
        row = session.get(MobileRequest, request_id)
        if (
            row is None
            or row.credential_id != request.credential_id
            or (user is not None and row.user_id != user.user_id)
        ):
            raise PageError("This approval's request is gone; start again from the application")
        left = mobile_trust.epoch_seconds(row.expires_at) - int(time.time())
        state = row.state
    if state == "pending" and left <= 0:
        state = "expired"
    return state, max(left, 0)


def _opened(
    services: Services, value: str, cookie: str | None
) -> tuple[AuthRequest, Principal, str]:
    request, user, claims = open_ticket_claims(services, value, cookie, STAGE)
    assert user is not None and isinstance(claims.get("a"), str)
    return request, user, claims["a"]


def status(services: Services, value: str, cookie: str | None) -> dict[str, Any]:
    """What the page's script polls: the request's state and its seconds left."""
    request, user, request_id = _opened(services, value, cookie)
    state, left = _state(services, request, user, request_id)
    return {"status": state, "expiresIn": left}


def finish(
    services: Services,
    value: str,
    cookie: str | None,
    *,
    decision: str,
    assertion: str,
    source: str,
    origin: str,
) -> Page | str:
    """The approval page's form: `cancel` (the request withdrawn, access_denied), or on with
    a passkey's `assertion` (decided by the passkey page's own use case) or the phone's
    decision: the code with the request's SAD, access_denied if she denied or it expired, or
    the page again (still pending, an assertion refused)."""
    request, user, request_id = _opened(services, value, cookie)
    credential = credential_of(services, request, user)

    def again(**said: str) -> Page:
        return page(services, request, value, user, credential, request_id, origin, **said)

    if decision == "cancel":
        mobile.expire(services, request_id, user.username)
        return request.redirect_with(
            error="access_denied", error_description="The user cancelled the approval"
        )
    if assertion:
        try:
            passkey.decide(services, request_id=request_id, decision="approve", assertion=assertion)
        except SignetError as refused:  # not this passkey's over this request, a replay...
            return again(error=refused.description)
    try:
        granted = mobile.authorize_check(
            services, user, credential_id=request.credential_id, authorization_id=request_id
        )
    except MobileRefused as refused:  # its SAD was collected: this ticket gave its code
        raise PageError(refused.description) from None
    except SignetError as refused:  # denied on her device, expired, a record not the SAM's
        raise RedirectError(request, "access_denied", refused.description) from None
    if isinstance(granted, Pending):
        return again(note=STILL_PENDING)
    return issue_code(services, request, user, granted[0], source)
