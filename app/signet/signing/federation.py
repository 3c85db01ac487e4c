"""A federated login once its protocol verified the provider's message: the message's one-time
value spent, the level its authentication context earns, the enrolled user it names (or one
provisioned when the operator allows it), audited as `federation.login`; the principal."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from signet.signing.oauth2 import Page

from signet.auth import assurance
from signet.auth.federation import IDP_METHOD, Asserted, claim_values, level_of
from signet.auth.tokens import Principal
from signet.config.identity import OidcProviderSettings, SamlProviderSettings
from signet.errors import SignetError
from signet.events import append_event
from signet.signing import policy
from signet.signing.context import Services
from signet.signing.users import USERNAME
from signet.store import SpentAssertion, User

# A message without an expiry is still remembered this long (and at least this long past it).
_REMEMBER = timedelta(hours=1)


class FederationRefused(SignetError):
    """A federated login refused, audited as `federation.login` with outcome failure."""

    error, status = "access_denied", 403


def provider(services: Services, name: str) -> OidcProviderSettings | SamlProviderSettings:
    """The enabled provider `name`, or a clear 404."""
    found = services.settings.identity.enabled().get(name)
    if found is None:
        raise SignetError(f"Unknown identity provider {name!r}", status=404)
    return found


def _spend(session: Session, asserted: Asserted) -> bool:
    """Record the message's one-time value; False if it was recorded before (a replay)."""
    if not asserted.one_time:
        return False
    digest = hashlib.sha256(f"{asserted.provider}\0{asserted.one_time}".encode()).hexdigest()
    now = datetime.now(UTC)
    until = max(datetime.fromtimestamp(asserted.valid_until, UTC), now) + _REMEMBER
    session.execute(delete(SpentAssertion).where(SpentAssertion.expires_at < now))
    try:
        with session.begin_nested():
            session.add(SpentAssertion(digest=digest, provider=asserted.provider, expires_at=until))
    except IntegrityError:
        return False
    return True


def _match(
    session: Session, settings: OidcProviderSettings | SamlProviderSettings, asserted: Asserted
) -> tuple[User | None, str | None]:
    """The enrolled user the assertion names, and the value that named her (None if the
    assertion carries no usable value)."""
    values = claim_values(asserted, settings.match_claim)
    if len(values) != 1 or not values[0] or len(values[0]) > 320:
        return None, None
    value = values[0]
    if settings.match_to == "username":
        found = session.scalars(select(User).where(User.username == value)).all()
    else:
        found = session.scalars(select(User).where(func.lower(User.email) == value.lower())).all()
    if len(found) > 1:
        raise FederationRefused(
            f"{settings.match_claim} {value!r} names more than one enrolled user"
        )
    return (found[0] if found else None), value


def _provision(
    session: Session,
    settings: OidcProviderSettings | SamlProviderSettings,
    asserted: Asserted,
    value: str,
) -> User:
    """Enrol the user the provider names: no password, no credential (an administrator issues
    those); her name is the matched value when it makes a valid user name."""
    username = value.lower() if settings.match_to == "username" else value.split("@")[0].lower()
    if not USERNAME.match(username):
        raise FederationRefused(f"{value!r} cannot be a user name; enrol the user first")
    if session.scalars(select(User.id).where(User.username == username)).first() is not None:
        raise FederationRefused(f"user name {username!r} is taken; enrol the user first")
    emails = claim_values(asserted, "email")
    names = claim_values(asserted, "name")
    stamp = datetime.now(UTC)
    user = User(
        username=username,
        display_name=(names[0] if names else username)[:256],
        email=value if settings.match_to == "email" else (emails[0] if emails else None),
        status="active",
        created_at=stamp,
        updated_at=stamp,
    )
    session.add(user)
    session.flush()
    append_event(
        session,
        "user.provisioned",
        actor=f"idp:{asserted.provider}",
        subject=username,
        provider=asserted.provider,
        email=user.email,
    )
    return user


def login(services: Services, asserted: Asserted, source: str) -> Principal:
    """The user a verified assertion logs in, at the level its provider's context earns; a
    replay, an uncredited context, an unknown or disabled user is refused and audited."""
    settings = provider(services, asserted.provider)
    level = level_of(settings, asserted.context)
    refused: FederationRefused | None = None
    principal = None
    with services.database.transaction() as session:
        try:
            if not _spend(session, asserted):
                raise FederationRefused("This login was used before (a replayed assertion)")
            if level is None:
                raise FederationRefused(
                    f"The identity provider's authentication ({asserted.context or 'none'}) "
                    "is not enough for Signet; log in there with a stronger method"
                )
            user, value = _match(session, settings, asserted)
            if user is None and value is not None and settings.provision:
                user = _provision(session, settings, asserted, value)
            if user is None:
                raise FederationRefused("The identity provider's user is not enrolled in Signet")
            if user.status != "active":
                raise FederationRefused("The user is disabled")
            method = IDP_METHOD[level]
            principal = Principal(user.id, user.username, method, level)
        except FederationRefused as exc:
            refused = exc
        append_event(
            session,
            "federation.login",
            actor=principal.username if principal else f"idp:{asserted.provider}",
            subject=principal.username if principal else asserted.subject[:128],
            outcome="success" if principal else "failure",
            provider=asserted.provider,
            context=asserted.context,
            amr=list(asserted.methods) or None,
            loa=level,
            auth_methods=[IDP_METHOD[level]] if level else None,
            reason=refused.description if refused else None,
            source=source,
        )
    if refused is not None or principal is None:
        raise refused or FederationRefused("refused")
    return principal


_RANK = {"low": 0, "substantial": 1, "high": 2}


def stronger(
    settings: OidcProviderSettings | SamlProviderSettings, principal: Principal
) -> list[str]:
    """The contexts (OIDC acr, SAML AuthnContextClassRef) the provider's `levels` map above
    this login's level, strongest first: what a step-up asks for."""
    have = _RANK.get(principal.loa, -1)
    found = [(_RANK[level], ref) for ref, level in settings.levels.items() if _RANK[level] > have]
    return [ref for _, ref in sorted(found, key=lambda pair: -pair[0])]


def short_of_policy(services: Services, page: Page, principal: Principal) -> str | None:
    """Why this login cannot authorize the credential the application asks for (its policy),
    naming what would do, audited as credentials/authorize records it; None when it can."""
    request = page.request
    if request is None or request.scope != "credential" or page.credential is None:
        return None
    credential = page.credential
    terms = credential.policy_terms
    if terms is None:
        return None
    level = policy.level_of(principal, credential)
    missing = assurance.shortfall(terms, level)
    if not missing:
        return None
    with services.database.transaction() as session:
        policy.record_shortfall(
            session, principal, credential.credential_id, credential.policy, level, "oauth2 login"
        )
    return (
        f"This login ({principal.loa} at the identity provider) is not enough for credential "
        f"{credential.credential_id}: its policy {credential.policy!r} needs "
        f"{', '.join(missing)} with its {credential.activation}. Step up: log in at the "
        "identity provider with a stronger method (one it states as a higher acr)"
    )


def step_up_asked(
    services: Services,
    principal: Principal,
    name: str,
    protocol: str,
    asked: list[str],
    source: str,
) -> None:
    """The provider asked again for `asked`, audited."""
    with services.database.transaction() as session:
        append_event(
            session,
            "federation.step_up",
            actor=principal.username,
            subject=f"idp:{name}",
            provider=name,
            protocol=protocol,
            loa=principal.loa,
            contexts=asked,
            source=source,
        )
