"""Client certificate login settings, `[client_certificates]`: the trust anchors a login
certificate must chain to, how it maps to a user, how its revocation is checked, and which
certificates count as held on a card (signet.validation.client_certificates applies them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAPPINGS = ("subject_cn", "subject_dn", "san_email", "fingerprint")
REVOCATION_MODES = ("off", "crl", "ocsp", "require")


class ClientCertificateSettings(BaseModel):
    """Logins with a TLS client certificate (auth/login without Basic credentials)."""

    model_config = ConfigDict(extra="forbid")

    # Off by default: no certificate logs anyone in until an operator names the anchors.
    enabled: bool = False
    # PEM files of the CAs whose certificates may log in (each file may hold several).
    trust_anchors: list[str] = Field(default_factory=list)
    # PEM files of intermediate CAs, for clients that send only their own certificate.
    intermediates: list[str] = Field(default_factory=list)
    # subject_cn: the subject's CN is the user name; subject_dn: the whole subject DN
    # (RFC 4514) is; san_email: an rfc822Name equals the user's e-mail; fingerprint: the
    # certificate's SHA-256 is registered to the user (`signet users cert-add`).
    mapping: Literal["subject_cn", "subject_dn", "san_email", "fingerprint"] = "fingerprint"
    # off: no check; crl: the certificate's CRL distribution points (or crl_urls); ocsp: its
    # AIA OCSP responder (or ocsp_url); require: OCSP where there is a responder, else CRL.
    revocation: Literal["off", "crl", "ocsp", "require"] = "require"
    # true: a revocation source that cannot be reached or gives no answer lets the login
    # through (audited). A certificate found revoked is refused either way.
    soft_fail: bool = False
    # Extra CRL sources (http(s):// URLs or files), used besides the certificate's own.
    crl_urls: list[str] = Field(default_factory=list)
    # An OCSP responder to ask instead of the one the certificate names.
    ocsp_url: str | None = None
    # How long a fetched CRL is kept (never beyond its nextUpdate).
    crl_cache_seconds: int = Field(default=300, ge=0, le=86400)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Certificate policy OIDs whose key is held on a card or token behind a PIN (login method
    # x509_card); a certificate with the QcStatement QcSSCD counts as one too.
    card_policies: list[str] = Field(default_factory=list)
    # The request header in which a trusted reverse proxy (web.trusted_proxies) passes the
    # certificate, URL-escaped PEM (nginx: $ssl_client_escaped_cert).
    proxy_header: str = "X-SSL-Client-Cert"

    @field_validator("card_policies")
    @classmethod
    def _oids(cls, oids: list[str]) -> list[str]:
        for oid in oids:
            parts = oid.split(".")
            if len(parts) < 2 or not all(p.isdigit() for p in parts):
                raise ValueError(f"not an OID: {oid!r}")
        return oids

    @field_validator("ocsp_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return url or None

    @model_validator(mode="after")
    def _anchored(self) -> ClientCertificateSettings:
        if self.enabled and not self.trust_anchors:
            raise ValueError("client_certificates.enabled needs trust_anchors (PEM files)")
        return self
