"""Federated logins: what an identity provider (OpenID Connect or SAML 2.0) asserted once its
message was verified, and the level Signet credits it with. The protocols live beside this
module (one per protocol); what a login does with an assertion lives in `signing`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from signet.config.identity import OidcProviderSettings, SamlProviderSettings

# The assurance method (signet.auth.assurance.METHODS) a federated login counts as, by the
# eIDAS level its provider's authentication context maps to.
IDP_METHOD = {"low": "idp_low", "substantial": "idp_substantial", "high": "idp_high"}


@dataclass(frozen=True)
class Asserted:
    """A verified assertion: signature, issuer, audience, times and one-time value checked by
    the protocol module; nothing here comes from an unverified message."""

    provider: str  # the provider's name in [identity.providers]
    subject: str  # OIDC `sub`, SAML NameID
    # Claims (OIDC) or attributes (SAML), values as the provider sent them.
    claims: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    # OIDC `acr`, SAML AuthnContextClassRef; None if the provider stated none.
    context: str | None = None
    # OIDC `amr` (RFC 8176); empty for SAML.
    methods: tuple[str, ...] = ()
    # When the user authenticated at the provider (OIDC auth_time, SAML AuthnInstant), epoch s.
    authenticated_at: int | None = None
    # The message's own identifier (OIDC nonce, SAML Assertion ID), spent once.
    one_time: str = ""
    # Seconds since the epoch until which the message could be replayed (exp, NotOnOrAfter).
    valid_until: int = 0


def level_of(
    provider: OidcProviderSettings | SamlProviderSettings, context: str | None
) -> str | None:
    """The eIDAS level a login with `context` reaches at `provider`, or None if it is not
    credited at all (unmapped, and no default level)."""
    if context is not None and context in provider.levels:
        return provider.levels[context]
    return provider.default_level


def claim_values(asserted: Asserted, name: str) -> tuple[str, ...]:
    """The values of claim or attribute `name` ("NameID": the subject), as strings."""
    if name == "NameID":
        return (asserted.subject,)
    value = asserted.claims.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)
