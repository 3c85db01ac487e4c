"""Assurance policies at credentials/authorize: the level an authorization would reach (the
login's methods and the credential's own factor) against the policy sealed in the credential,
and the refusal, audited, that names what would do."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from signet.auth import assurance
from signet.auth.tokens import Principal
from signet.config.assurance import PolicySettings
from signet.events import append_event
from signet.signing.context import Services


def policy_of(services: Services, credential: Any) -> PolicySettings | None:
    """The credential's policy as the settings define it; None if they define it no more."""
    return services.settings.assurance.policy(credential.policy)


def level_of(principal: Principal, credential: Any) -> assurance.Level:
    """What an authorization of `credential` after this login reaches once its factor passes."""
    factor = assurance.ACTIVATION_METHOD.get(credential.activation)
    methods = assurance.token_methods(principal.auth_methods)
    return assurance.reached((*methods, factor) if factor else methods)


def refusal(
    services: Services, session: Session, principal: Principal, credential: Any
) -> str | None:
    """None when the authorization can meet the credential's policy; else why not and what
    would, recorded in the audit trail (in `session`, which the caller commits)."""
    policy = policy_of(services, credential)
    level = level_of(principal, credential)
    if policy is None:
        why = (
            f"credential {credential.id} has policy {credential.policy!r}, which "
            "[assurance.policies] no longer defines; it cannot be authorized until an "
            "administrator defines it again"
        )
    else:
        missing = assurance.shortfall(policy, level)
        if not missing:
            return None
        login = assurance.token_methods(principal.auth_methods)
        fits = assurance.step_ups(policy, login)
        why = (
            f"credential {credential.id} has policy {credential.policy!r}, which needs "
            f"{', '.join(missing)}; this authorization would reach {level.describe()}. Step up: "
            + (
                "a credential activated by " + " or ".join(fits) + " would do"
                if fits
                else "no factor Signet offers after this login would do"
            )
        )
    record_shortfall(session, principal, credential.id, credential.policy, level)
    return why


def record_shortfall(
    session: Session,
    principal: Principal,
    credential_id: str,
    policy: str,
    level: assurance.Level,
    stage: str | None = None,
) -> None:
    """An authorization refused because `level` falls short of the credential's policy,
    audited (`stage`: where, when not at credentials/authorize itself)."""
    append_event(
        session,
        "credential.authorize_refused",
        actor=principal.username,
        subject=credential_id,
        outcome="failure",
        reason="assurance",
        **({"stage": stage} if stage else {}),
        policy=policy,
        auth_methods=list(level.methods),
        eidas=level.eidas,
        aal=level.aal,
    )


def recorded(level: assurance.Level) -> dict[str, Any]:
    """How an authorization's level is written in its audit record."""
    return {
        "auth_methods": list(level.methods),
        "eidas": level.eidas,
        "aal": level.aal,
        "iso29115": level.iso,
    }
