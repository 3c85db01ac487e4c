"""The OAuth 2.0 client registry: clients registered by the operator (their records sealed by
the SAM, so that no redirect URI or secret can be slipped in through the database) or declared
in the settings file, and the check of a client at the authorization and token endpoints."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select

from signet.config import ConfigError, OAuth2ClientSettings, redirect_uri_problem
from signet.errors import SignetError
from signet.events import append_event
from signet.sam import IntegrityViolation, client_intact, client_seal
from signet.signing.context import Services
from signet.store import OAuth2Client


class OAuth2Error(SignetError):
    """An RFC 6749 error: `error` one of its codes, answered as JSON by the token endpoint."""

    def __init__(self, description: str, error: str = "invalid_request", status: int = 400):
        super().__init__(description, error=error, status=status)


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    public: bool
    redirect_uris: tuple[str, ...]
    source: str = "database"  # or "settings": [oauth2.clients.<client_id>]


def _secret_digest(secret: str) -> str:
    # Secrets are 256 random bits: a fast hash is as safe as a slow one, and cheap per call.
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def _check_redirect_uri(uri: str) -> str:
    problem = redirect_uri_problem(uri)
    if problem:
        raise ValueError(problem)
    return uri


def _declared(services: Services, client_id: object) -> OAuth2ClientSettings | None:
    if not isinstance(client_id, str):
        return None
    return services.settings.oauth2.clients.get(client_id)


def _declared_view(client_id: str, declared: OAuth2ClientSettings) -> Client:
    return Client(
        client_id, declared.name, declared.public, tuple(declared.redirect_uris), "settings"
    )


def _view(row: OAuth2Client) -> Client:
    return Client(
        row.client_id, row.name, row.secret_hash is None, tuple(row.redirect_uris.split("\n"))
    )


def add_client(
    services: Services, name: str, redirect_uris: list[str], *, public: bool, actor: str
) -> tuple[Client, str | None]:
    """Register a client; returns it and, for a confidential one, its secret (shown once)."""
    if not name or len(name) > 128:
        raise ValueError("client name: 1 to 128 characters")
    if not redirect_uris:
        raise ValueError("at least one --redirect-uri")
    uris = [_check_redirect_uri(u) for u in redirect_uris]
    secret = None if public else secrets.token_urlsafe(32)
    row = OAuth2Client(
        client_id=secrets.token_urlsafe(16),
        name=name,
        secret_hash=None if secret is None else _secret_digest(secret),
        redirect_uris="\n".join(uris),
        created_at=datetime.now(UTC),
    )
    row.seal = client_seal(services.hsm, row)
    with services.database.transaction() as session:
        session.add(row)
        append_event(
            session,
            "oauth2.client_added",
            actor=actor,
            subject=row.client_id,
            name=name,
            public=public,
            redirect_uris=uris,
        )
        client = _view(row)
    return client, secret


def list_clients(services: Services) -> list[Client]:
    declared = [_declared_view(i, c) for i, c in services.settings.oauth2.clients.items()]
    with services.database.transaction() as session:
        rows = session.execute(select(OAuth2Client).order_by(OAuth2Client.id)).scalars()
        return declared + [_view(row) for row in rows]


def remove_client(services: Services, client_id: str, *, actor: str) -> bool:
    if _declared(services, client_id) is not None:
        raise ValueError(
            f"client {client_id} is declared in the settings file ([oauth2.clients]): "
            "remove it there"
        )
    with services.database.transaction() as session:
        gone = session.execute(delete(OAuth2Client).where(OAuth2Client.client_id == client_id))
        if not gone.rowcount:  # type: ignore[attr-defined]
            return False
        append_event(session, "oauth2.client_removed", actor=actor, subject=client_id)
    return True


def _sealed_client(services: Services, client_id: object) -> OAuth2Client | None:
    """The record of the client with this ID, checked against its seal; None if there is
    none. A record that fails its seal is refused once its audit record is committed."""
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    with services.database.transaction() as session:
        row = session.execute(
            select(OAuth2Client).where(OAuth2Client.client_id == client_id)
        ).scalar_one_or_none()
        if row is None:
            return None
        intact = client_intact(services.hsm, row)
        if not intact:
            append_event(
                session,
                "integrity.violation",
                actor="-",
                subject=client_id,
                outcome="failure",
                reason="an OAuth 2.0 client record the SAM did not seal",
            )
        session.expunge(row)
    if not intact:
        raise IntegrityViolation(f"The record of OAuth 2.0 client {client_id} fails its seal")
    return row


def registered_client(services: Services, client_id: object) -> Client | None:
    """The client with this ID as the settings declare it or the SAM sealed it, None if there
    is none."""
    declared = _declared(services, client_id)
    if declared is not None:
        assert isinstance(client_id, str)
        return _declared_view(client_id, declared)
    row = _sealed_client(services, client_id)
    return None if row is None else _view(row)


def authenticate_client(services: Services, client_id: object, secret: str | None) -> Client:
    """The client calling the token endpoint: a confidential one by its secret, a public one
    by its ID alone (PKCE then proves it is the one that began the flow)."""
    declared = _declared(services, client_id)
    if declared is not None:
        return _declared_client(client_id, declared, secret)
    row = _sealed_client(services, client_id)
    if row is None:
        raise OAuth2Error("Unknown client", "invalid_client", 401)
    client = _view(row)
    if client.public:
        if secret:
            raise OAuth2Error("A public client has no secret", "invalid_client", 401)
        return client
    stored = row.secret_hash
    if not secret or not stored or not hmac.compare_digest(stored, _secret_digest(secret)):
        raise OAuth2Error("Client authentication failed", "invalid_client", 401)
    return client


def _declared_client(
    client_id: object, declared: OAuth2ClientSettings, secret: str | None
) -> Client:
    assert isinstance(client_id, str)
    client = _declared_view(client_id, declared)
    if client.public:
        if secret:
            raise OAuth2Error("A public client has no secret", "invalid_client", 401)
        return client
    try:
        expected = declared.read_secret()
    except ConfigError:
        raise OAuth2Error(
            "The client's secret cannot be read on the server; tell its operator",
            "temporarily_unavailable",
            503,
        ) from None
    if not secret or not hmac.compare_digest(_secret_digest(expected), _secret_digest(secret)):
        raise OAuth2Error("Client authentication failed", "invalid_client", 401)
    return client
