"""The OAuth 2.0 authorization server's settings, `[oauth2]`, and the clients the settings file
declares, `[oauth2.clients.<client_id>]` (docs/oauth2.md)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signet.config.errors import ConfigError


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be an OAuth 2.0 redirect URI (RFC 6749 3.1.2, RFC 8252), or None."""
    try:
        parts = urlsplit(uri)
        loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    except ValueError:  # e.g. an unclosed [IPv6] host
        return f"redirect URI {uri!r}: not a URL"
    if parts.fragment or not parts.netloc or parts.scheme not in ("https", "http"):
        return f"redirect URI {uri!r}: an absolute https:// URI with no fragment"
    if parts.scheme == "http" and not loopback:
        return f"redirect URI {uri!r}: http:// only on loopback (RFC 8252)"
    return None


class OAuth2ClientSettings(_Section):
    """A client declared in the settings file, `[oauth2.clients.<client_id>]`: the operator's
    file, not the database, vouches for its redirect URIs and secret."""

    name: str = Field(min_length=1, max_length=128)
    redirect_uris: list[str] = Field(min_length=1)
    # A confidential client's secret, in a file of its own (at least 32 characters); a
    # public client (PKCE S256 required) sets `public = true` instead.
    secret_file: str | None = None
    public: bool = False

    @field_validator("redirect_uris")
    @classmethod
    def _uris(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            problem = redirect_uri_problem(uri)
            if problem:
                raise ValueError(problem)
        return uris

    @model_validator(mode="after")
    def _kind(self) -> OAuth2ClientSettings:
        if self.public == bool(self.secret_file):
            raise ValueError("set exactly one of secret_file (confidential) or public = true")
        return self

    def read_secret(self) -> str:
        assert self.secret_file
        try:
            secret = Path(self.secret_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {self.secret_file}: {exc.strerror}") from exc
        if len(secret) < 32:
            raise ConfigError(f"{self.secret_file}: a client secret has at least 32 characters")
        return secret


_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


class OAuth2Settings(_Section):
    """The CSC OAuth 2.0 authorization server (docs/oauth2.md). Clients are registered with
    `signet oauth2-clients add` (stored in the database sealed by the SAM, audited) or
    declared here under `[oauth2.clients.<client_id>]`."""

    enabled: bool = True
    # The issuer identifier (RFC 8414): the public base URL; None derives it from web.base_url
    # or the request.
    issuer: str | None = None
    # An authorization code is exchanged by the client right after the redirect: a minute
    # leaves room for a slow network, and a stolen one is soon worthless (RFC 6749 4.1.2).
    code_lifetime_seconds: int = Field(default=60, ge=10, le=600)
    # A pushed authorization request's request_uri (RFC 9126 section 2.2: short-lived).
    request_uri_lifetime_seconds: int = Field(default=90, ge=10, le=600)
    # How long the login pages' tickets hold (from the login to the last step of consent).
    page_lifetime_seconds: int = Field(default=600, ge=60, le=3600)
    # A service token's lifetime; a credential token lives as long as its SAD (sam).
    access_token_lifetime_seconds: int = Field(default=3600, ge=60, le=86400)
    # The device authorization grant (RFC 8628): how long a device code and its user code
    # wait for the user's approval, and the least seconds between the device's polls.
    device_code_lifetime_seconds: int = Field(default=600, ge=60, le=1800)
    device_poll_interval_seconds: int = Field(default=5, ge=1, le=60)
    # Clients the settings file declares (beside those `signet oauth2-clients add` registers).
    clients: dict[str, OAuth2ClientSettings] = Field(default_factory=dict)

    @field_validator("clients")
    @classmethod
    def _client_ids(
        cls, clients: dict[str, OAuth2ClientSettings]
    ) -> dict[str, OAuth2ClientSettings]:
        for client_id in clients:
            if not _CLIENT_ID.match(client_id):
                raise ValueError(
                    f"client ID {client_id!r}: letters, digits and . _ ~ -, at most 64"
                )
        return clients

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, url: str | None) -> str | None:
        if url and (not url.startswith(("https://", "http://")) or "?" in url or "#" in url):
            raise ValueError("expected an https:// URL with no query or fragment (RFC 8414)")
        return url.rstrip("/") if url else None
