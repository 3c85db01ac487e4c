"""Identity provider settings, `[identity.providers.<name>]`: the OpenID Connect providers and
SAML 2.0 identity providers users may log in with, each with the level its assertions map to
and the rule that finds the enrolled user they name.

Several providers may be configured at once; each is one table whose `kind` says which
protocol it speaks:

    [identity.providers.corp]
    kind = "oidc"
    label = "Corporate login"
    issuer = "https://login.example.com"
    client_id = "signet"
    client_secret_file = "/etc/signet/oidc-corp.secret"
    levels = { "urn:example:acr:mfa" = "substantial", "urn:example:acr:pwd" = "low" }
    match_claim = "preferred_username"
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Level = Literal["low", "substantial", "high"]
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# The block ciphers an encrypted assertion may use: AES-GCM (authenticated). The CBC modes are
# open to padding-oracle attacks on XML Encryption; an operator may admit them for an IdP that
# cannot do better (SimpleSAMLphp 1.x, AD FS), never 3DES.
GCM_CIPHERS = tuple(f"http://www.w3.org/2009/xmlenc11#aes{n}-gcm" for n in (128, 192, 256))
CBC_CIPHERS = tuple(f"http://www.w3.org/2001/04/xmlenc#aes{n}-cbc" for n in (128, 192, 256))
_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class _Provider(BaseModel):
    """What every provider has: how it is shown, what its assertions are worth, whom they
    name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Shown on the login page's button.
    label: str = Field(min_length=1, max_length=64)
    enabled: bool = True
    # The provider's authentication context (OIDC `acr`, SAML AuthnContextClassRef) -> the eIDAS
    # level Signet credits a login with (docs/assurance.md: idp_low, idp_substantial,
    # idp_high). A context not listed gets `default_level`; None refuses the login.
    levels: dict[str, Level] = Field(default_factory=dict)
    default_level: Level | None = None
    # The claim (OIDC) or attribute (SAML; "NameID" for the subject) naming the user, and
    # what it is compared with: the enrolled user's name or e-mail address.
    match_claim: str = "preferred_username"
    match_to: Literal["username", "email"] = "username"
    # Enrol a user the provider names and Signet does not know yet (no credential: an
    # administrator still issues those). False: such a login is refused.
    provision: bool = False
    # Clock skew tolerated on the assertion's times.
    max_skew_seconds: int = Field(default=60, ge=0, le=600)
    # A login whose context falls short of the credential the application asks for: ask the
    # provider again, once, for the stronger contexts `levels` maps (strongest first; OIDC
    # acr_values with prompt=login, SAML RequestedAuthnContext with ForceAuthn). False: the
    # login page says so and the user steps up herself.
    step_up: bool = True


class OidcProviderSettings(_Provider):
    kind: Literal["oidc"]
    # The OP's issuer; its metadata is read from <issuer>/.well-known/openid-configuration.
    issuer: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    # A confidential client's secret, read from a file (never from the database); None: a
    # public client (PKCE only).
    client_secret_file: str | None = None
    # How a confidential client authenticates at the token endpoint (RFC 6749 2.3.1).
    client_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    # acr values asked for (OIDC Core 3.1.2.1 acr_values); empty: none asked.
    acr_values: list[str] = Field(default_factory=list)
    # CA bundle for the OP's TLS; None: the system store.
    ca_file: str | None = None
    # The ID token signature algorithms accepted (asymmetric only: a client secret never
    # signs what Signet trusts, and "none" never passes).
    allowed_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256"])
    # OIDC Core 3.1.2.1 max_age: the OP must have authenticated the user this recently
    # (auth_time is then required and checked); None: not asked.
    max_age_seconds: int | None = Field(default=None, ge=0, le=86400)

    @field_validator("issuer")
    @classmethod
    def _https(cls, issuer: str) -> str:
        url = urlsplit(issuer)
        loopback = url.hostname in ("127.0.0.1", "::1", "localhost")
        if url.scheme != "https" and not (url.scheme == "http" and loopback):
            raise ValueError("issuer must be an https URL (http only on loopback, for tests)")
        if url.query or url.fragment:
            raise ValueError("issuer has no query or fragment (OIDC Discovery 2)")
        return issuer

    @field_validator("allowed_algorithms")
    @classmethod
    def _asymmetric(cls, algorithms: list[str]) -> list[str]:
        wrong = [a for a in algorithms if a not in _ASYMMETRIC]
        if wrong or not algorithms:
            raise ValueError(f"allowed_algorithms: one or more of {', '.join(_ASYMMETRIC)}")
        return algorithms

    @field_validator("scopes")
    @classmethod
    def _openid(cls, scopes: list[str]) -> list[str]:
        if "openid" not in scopes:
            raise ValueError("scopes must include 'openid'")
        return scopes


class SamlProviderSettings(_Provider):
    kind: Literal["saml"]
    # The IdP's metadata: a local file (path) or an https URL (fetched again hourly).
    idp_metadata: str = Field(min_length=1)
    # The certificate (PEM file) of the key that signs the IdP's metadata (a federation's or an
    # eIDAS node's metadata signer); set, the metadata is used only with a valid signature by
    # it over the whole document. None: the metadata is trusted as read.
    idp_metadata_signer_cert: str | None = None
    # The IdP's entity ID, to pick it from metadata describing several; None: the metadata's
    # only IdP.
    idp_entity_id: str | None = None
    # Signet's SP entity ID; None: <web.public_url>/saml/<name>/metadata.
    sp_entity_id: str | None = None
    # The key and certificate Signet signs AuthnRequests with (files).
    sp_key_file: str
    sp_cert_file: str
    # AuthnContextClassRef values asked for; empty: none asked.
    requested_contexts: list[str] = Field(default_factory=list)
    # Which signatures a Response must carry; with both False either one still must be there
    # (an unsigned message is never a login). Unsolicited Responses are always refused: the
    # login page's ticket travels with the request.
    want_assertions_signed: bool = True
    want_response_signed: bool = False
    # Encrypted assertions (EncryptedAssertion) are decrypted with this key, whose certificate
    # the SP metadata publishes for encryption; None: the signing pair above.
    sp_encryption_key_file: str | None = None
    sp_encryption_cert_file: str | None = None
    # True: a Response whose assertion is not encrypted is refused (eIDAS nodes encrypt).
    want_assertions_encrypted: bool = False
    # The block ciphers accepted for an encrypted assertion (the key always travels by
    # RSA-OAEP; RSA PKCS#1 v1.5 key transport is refused).
    assertion_ciphers: list[str] = Field(default_factory=lambda: list(GCM_CIPHERS), min_length=1)

    @field_validator("assertion_ciphers")
    @classmethod
    def _ciphers(cls, ciphers: list[str]) -> list[str]:
        unknown = [c for c in ciphers if c not in GCM_CIPHERS + CBC_CIPHERS]
        if unknown:
            raise ValueError(
                f"unknown or refused cipher {unknown[0]!r}; use AES-GCM "
                f"({', '.join(GCM_CIPHERS)}) or, for an IdP without it, AES-CBC "
                f"({', '.join(CBC_CIPHERS)})"
            )
        return ciphers

    @model_validator(mode="after")
    def _encryption_pair(self) -> SamlProviderSettings:
        if (self.sp_encryption_key_file is None) != (self.sp_encryption_cert_file is None):
            raise ValueError(
                "set both sp_encryption_key_file and sp_encryption_cert_file, or neither"
            )
        return self

    @property
    def encryption_pair(self) -> tuple[str, str]:
        """The key and certificate files assertions are encrypted to."""
        if self.sp_encryption_key_file and self.sp_encryption_cert_file:
            return self.sp_encryption_key_file, self.sp_encryption_cert_file
        return self.sp_key_file, self.sp_cert_file


ProviderSettings = Annotated[
    OidcProviderSettings | SamlProviderSettings, Field(discriminator="kind")
]


class IdentitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderSettings] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _names(cls, providers: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
        for name in providers:
            if not _NAME.match(name):
                raise ValueError(
                    f"provider name {name!r}: lower-case letters, digits, - and _, at most 32"
                )
        return providers

    def enabled(self) -> dict[str, OidcProviderSettings | SamlProviderSettings]:
        return {name: p for name, p in self.providers.items() if p.enabled}
