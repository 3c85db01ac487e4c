"""The OAuth 2.0 authorization endpoint's flow on Signet's own pages: the request checked
(client, redirect URI, PKCE, scope, the credential's hashes or authorization_details), the
pages' tickets, and the code at the end (the pages' steps are oauth2_consent's and, for a
credential approved on its owner's device, oauth2_factor's).

Between pages the state travels in a ticket sealed by the SAM (its kind its own), bound to the
browser's CSRF cookie: nothing on the pages or in the database can make Signet issue a code
for a user who did not log in, or a SAD for hashes she did not approve."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from signet.algorithms import HASH_BY_OID
from signet.auth.tokens import Principal, token_digest
from signet.errors import SignetError
from signet.events import append_event
from signet.sam import decode_hash, mint_grant, open_grant
from signet.signing import csc
from signet.signing.context import Services
from signet.signing.oauth2_clients import Client, OAuth2Error, registered_client
from signet.store import OAuth2Code

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
SCOPES = ("service", "credential")
MAX_HASHES = 100


class PageError(SignetError):
    """A request that cannot be sent back to the client (unknown client, redirect URI not
    registered): shown to the user on an error page, never redirected (RFC 6749 4.1.2.1)."""

    def __init__(self, description: str):
        super().__init__(description, error="invalid_request", status=400)


class RedirectError(SignetError):
    """An error the client hears of at its (checked) redirect URI."""

    def __init__(self, request: AuthRequest, error: str, description: str):
        super().__init__(description, error=error, status=302)
        self.location = request.redirect_with(error=error, error_description=description)


@dataclass(frozen=True)
class AuthRequest:
    """An authorization request, checked: what the user is asked to approve."""

    client_id: str
    client_name: str
    redirect_uri: str
    state: str | None
    scope: str
    code_challenge: str | None
    credential_id: str | None = None
    num_signatures: int = 0
    hashes: list[str] = field(default_factory=list)  # standard base64
    hash_oid: str | None = None
    labels: list[str] = field(default_factory=list)
    description: str | None = None
    rar: bool = False  # asked as authorization_details (echoed with the token)
    # A device authorization (RFC 8628, signing.oauth2_device): its row, and the user code
    # the device shows; no redirect then, the consent ends on Signet's own page.
    device: int | None = None
    user_code: str | None = None

    def redirect_with(self, **params: str) -> str:
        if self.state is not None:
            params["state"] = self.state
        joiner = "&" if "?" in self.redirect_uri else "?"
        return self.redirect_uri + joiner + urlencode(params)

    def authorization_details(self) -> list[dict[str, Any]]:
        digests = [
            {"hash": h, **({"label": self.labels[i]} if i < len(self.labels) else {})}
            for i, h in enumerate(self.hashes)
        ]
        return [
            {
                "type": "credential",
                "credentialID": self.credential_id,
                "documentDigests": digests,
                "hashAlgorithmOID": self.hash_oid,
            }
        ]


@dataclass(frozen=True)
class Waiting:
    """An approval the page waits for on the user's device (Mobile ID, passkey): what her
    phone shows, and for a passkey the WebAuthn options of its approval."""

    kind: str  # "mobile" or "passkey"
    fingerprint: str  # of the hashes, as the phone and the passkey page show it
    expires_in: int
    rp_id: str = ""
    webauthn_id: str = ""  # the passkey's WebAuthn credential id (allowCredentials)
    challenge: str = ""  # base64url: the approve decision's challenge


@dataclass(frozen=True)
class Page:
    """A page to show: its name (login, consent, factor, approval, error; device,
    device_approved, device_denied), and what it says."""

    name: str
    request: AuthRequest | None = None
    ticket: str = ""
    user: str = ""
    error: str | None = None
    field: str | None = None  # the input the error is about
    credential: csc.CredentialInfo | None = None
    sent_to: str | None = None  # where the one-time code went
    user_code: str = ""  # the device page's code, as the user typed or the link gave it
    waiting: Waiting | None = None  # the approval page's request, while it can be decided
    note: str | None = None  # a status that is no error ("still waiting")


def _one(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 8192:
        raise ValueError(f"Invalid parameter {name}")
    return value


def _client_and_redirect(
    services: Services, params: dict[str, Any]
) -> tuple[Client, str, str | None]:
    """The client, its redirect URI and the state: what must hold before any redirect."""
    try:
        client_id, redirect_uri = _one(params, "client_id"), _one(params, "redirect_uri")
        state = _one(params, "state")
    except ValueError as exc:
        raise PageError(str(exc)) from None
    client = registered_client(services, client_id)
    if client is None:
        raise PageError("Unknown client_id: this application is not registered with Signet")
    if redirect_uri is None and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri not in client.redirect_uris:
        raise PageError("The redirect_uri is not one this application registered")
    return client, redirect_uri, state


def check_request(
    services: Services, params: dict[str, Any], *, pushed: bool = False
) -> AuthRequest:
    """Check an authorization request's parameters (RFC 6749 4.1.1, RFC 7636, CSC 8.3.2,
    RFC 9396); a PAR request_uri is opened in their place."""
    request_uri = params.get("request_uri")
    if request_uri is not None and not pushed:
        return _pushed(services, params)
    client, redirect_uri, state = _client_and_redirect(services, params)
    shell = AuthRequest(client.client_id, client.name, redirect_uri, state, "service", None)

    def refuse(error: str, description: str) -> RedirectError:
        return RedirectError(shell, error, description)

    try:
        response_type = _one(params, "response_type")
        scope = _one(params, "scope")
        if scope is None and params.get("authorization_details") is not None:
            scope = "credential"
        challenge, method = _one(params, "code_challenge"), _one(params, "code_challenge_method")
    except ValueError as exc:
        raise refuse("invalid_request", str(exc)) from None
    if response_type != "code":
        raise refuse("unsupported_response_type", "response_type must be code")
    if scope not in SCOPES:
        raise refuse("invalid_scope", "scope must be service or credential")
    if challenge is None and client.public:
        raise refuse("invalid_request", "A public client must use PKCE (code_challenge, S256)")
    if challenge is not None and (method or "plain") != "S256":
        raise refuse("invalid_request", "code_challenge_method must be S256")
    if challenge is not None and not (43 <= len(challenge) <= 128):
        raise refuse("invalid_request", "Invalid parameter code_challenge")
    base = AuthRequest(client.client_id, client.name, redirect_uri, state, scope, challenge)
    if scope == "service":
        return base
    try:
        return _credential_request(base, params)
    except ValueError as exc:
        raise refuse("invalid_request", str(exc)) from None


def _credential_request(base: AuthRequest, params: dict[str, Any]) -> AuthRequest:
    details = params.get("authorization_details")
    labels: list[str] = []
    if details is not None:
        entry = _rar_entry(details)
        credential_id = entry.get("credentialID")
        digests = entry.get("documentDigests")
        hash_oid = entry.get("hashAlgorithmOID")
        if not isinstance(digests, list) or not digests or len(digests) > MAX_HASHES:
            raise ValueError(f"authorization_details: documentDigests, 1 to {MAX_HASHES} entries")
        hashes = []
        for digest in digests:
            if not isinstance(digest, dict) or not isinstance(digest.get("hash"), str):
                raise ValueError("authorization_details: each documentDigest has a hash")
            hashes.append(digest["hash"])
            label = digest.get("label")
            labels.append(label if isinstance(label, str) and label else f"Document {len(hashes)}")
        count: Any = len(hashes)
        description = None
    else:
        credential_id = _one(params, "credentialID")
        hash_oid = _one(params, "hashAlgorithmOID")
        raw = _one(params, "hashes")
        hashes = raw.split(",") if raw else []
        count = _one(params, "numSignatures")
        description = _one(params, "description")
        if not isinstance(count, str) or not count.isdigit():
            raise ValueError("Missing (or invalid) parameter numSignatures")
        count = int(count)
    if not isinstance(credential_id, str) or not credential_id or len(credential_id) > 64:
        raise ValueError("Missing (or invalid) parameter credentialID")
    if hash_oid is not None and (not isinstance(hash_oid, str) or hash_oid not in HASH_BY_OID):
        raise ValueError("Invalid parameter hashAlgorithmOID")
    if hashes and hash_oid is None:
        raise ValueError("Missing parameter hashAlgorithmOID (the hashes' algorithm)")
    if not 1 <= count <= 1000 or len(hashes) > MAX_HASHES or (hashes and len(hashes) > count):
        raise ValueError("Invalid parameter numSignatures: at least the number of hashes")
    try:
        normal = [base64.b64encode(decode_hash(h.strip())).decode() for h in hashes]
        csc.check_hash_lengths(normal, hash_oid)
    except SignetError as exc:
        raise ValueError(exc.description) from None
    return AuthRequest(
        **{
            **asdict(base),
            "credential_id": credential_id,
            "num_signatures": count,
            "hashes": normal,
            "hash_oid": hash_oid,
            "labels": labels,
            "description": description,
            "rar": details is not None,
        }
    )


def _rar_entry(details: Any) -> dict[str, Any]:
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            raise ValueError("authorization_details: not JSON") from None
    if not isinstance(details, list) or len(details) != 1 or not isinstance(details[0], dict):
        raise ValueError("authorization_details: one object of type credential")
    if details[0].get("type") != "credential":
        raise ValueError("authorization_details: type must be credential")
    return details[0]


# -- pushed authorization requests (RFC 9126) ------------------------------------------------
def push(services: Services, client: Client, params: dict[str, Any]) -> tuple[str, int]:
    """Check a pushed request from an authenticated client; its request_uri (one use)."""
    if params.get("request_uri") is not None:
        raise OAuth2Error("request_uri cannot be pushed")
    if params.get("client_id") != client.client_id:
        raise OAuth2Error("client_id differs from the authenticated client")
    try:
        request = check_request(services, params, pushed=True)
    except (PageError, RedirectError) as exc:
        raise OAuth2Error(exc.description) from None
    lifetime = services.settings.oauth2.request_uri_lifetime_seconds
    sealed = mint_grant(services.hsm, "request", {"r": asdict(request)}, lifetime)
    return REQUEST_URI_PREFIX + sealed, lifetime


def _pushed(services: Services, params: dict[str, Any]) -> AuthRequest:
    value = params.get("request_uri")
    claims = None
    if isinstance(value, str) and value.startswith(REQUEST_URI_PREFIX):
        claims = open_grant(services.hsm, "request", value[len(REQUEST_URI_PREFIX) :])
    if claims is None:
        raise PageError("The request_uri is unknown or expired; the application must push again")
    request = AuthRequest(**claims["r"])
    if params.get("client_id") != request.client_id:
        raise PageError("client_id differs from the one that pushed the request")
    # One use (RFC 9126 section 4): its nonce is spent as a code row would be; of two
    # parallel uses, the unique digest lets one through.
    try:
        with services.database.transaction() as session:
            fresh = spend_once(session, "par:" + claims["j"], request.client_id, None, claims["x"])
    except IntegrityError:
        fresh = False
    if not fresh:
        raise PageError("The request_uri was used before; the application must push again")
    return request


def spend_once(session: Any, key: str, client_id: str, user_id: int | None, until: int) -> bool:
    """Spend a one-time value (a PAR nonce, a passkey login's challenge) as a used code row
    kept until `until`: False if it was spent before (two at once: the unique digest)."""
    digest = token_digest(key)
    if session.execute(select(OAuth2Code.id).where(OAuth2Code.code_hash == digest)).first():
        return False
    session.add(
        OAuth2Code(
            code_hash=digest,
            client_id=client_id,
            user_id=user_id,
            used=True,
            created_at=datetime.now(UTC),
            expires_at=datetime.fromtimestamp(until, UTC),
        )
    )
    session.flush()
    return True


# -- the pages' tickets ----------------------------------------------------------------------
def csrf_binding(cookie: str) -> str:
    return hashlib.sha256(b"signet-oauth2-csrf\0" + cookie.encode()).hexdigest()


def ticket(
    services: Services,
    request: AuthRequest,
    cookie: str,
    stage: str,
    user: Principal | None = None,
    pending: str | None = None,
) -> str:
    """A ticket for the page at `stage`, for this browser (its CSRF cookie); at the approval
    page, with the id of the request her device is asked to approve (`pending`)."""
    claims: dict[str, Any] = {"r": asdict(request), "c": csrf_binding(cookie), "s": stage}
    if user is not None:
        claims["u"] = [user.user_id, user.username, user.auth_methods, user.loa]
    if pending is not None:
        claims["a"] = pending
    lifetime = services.settings.oauth2.page_lifetime_seconds
    return mint_grant(services.hsm, "ticket", claims, lifetime)


def open_ticket(
    services: Services, value: str, cookie: str | None, stage: str
) -> tuple[AuthRequest, Principal | None]:
    """The request and user of a ticket at `stage`, from the browser it was given to."""
    request, user, _ = open_ticket_claims(services, value, cookie, stage)
    return request, user


def open_ticket_claims(
    services: Services, value: str, cookie: str | None, stage: str
) -> tuple[AuthRequest, Principal | None, dict[str, Any]]:
    """As open_ticket, with the ticket's claims (the approval page's request id, "a")."""
    claims = open_grant(services.hsm, "ticket", value)
    if claims is None:
        raise PageError("This page has expired; go back to the application and start again")
    if not cookie or not hmac.compare_digest(claims["c"], csrf_binding(cookie)):
        raise PageError("This form was not sent from this browser's Signet page (CSRF check)")
    if claims["s"] != stage:
        raise PageError("This form was sent out of order; start again from the application")
    user = claims.get("u")
    return AuthRequest(**claims["r"]), None if user is None else Principal(*user), claims


def start(services: Services, params: dict[str, Any], cookie: str) -> Page:
    request = check_request(services, params)
    return Page("login", request, ticket(services, request, cookie, "login"))


# -- the end: the credential shown, the code -------------------------------------------------
def credential_of(services: Services, request: AuthRequest, user: Principal) -> csc.CredentialInfo:
    """The request's credential, hers; else the client hears invalid_request."""
    try:
        return csc.credential_info(services, user, request.credential_id)
    except SignetError:
        raise RedirectError(
            request, "invalid_request", "Invalid parameter credentialID: not a credential of hers"
        ) from None


def authorize(services: Services, request: AuthRequest, user: Principal, **factor: Any) -> Any:
    """credentials/authorize's own use case for the request's credential, hashes, count,
    labels and description, with `factor` (pin, otp, origin, asynchronous) as the page has it."""
    return csc.authorize(
        services,
        user,
        credential_id=request.credential_id,
        num_signatures=request.num_signatures,
        hashes=request.hashes,
        hash_oid=request.hash_oid,
        description=request.description,
        labels=request.labels,
        **factor,
    )


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
