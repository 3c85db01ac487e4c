"""Pruning: rows of one-time values (codes, SADs, tokens, challenges, spent assertions, Mobile
ID requests) deleted once they expired more than `database.prune_after_hours` ago.

A deleted row never makes anything valid again (docs/security.md, "Pruning"): each of these
values is refused by its own sealed or stored expiry, or by its missing row, and the margin
(at least 25 h) outlasts every lifetime a row still guards — the access token a code's or a
refresh token's row can revoke lives 24 h at most. Audit records, checkpoints, users,
credentials, keys and certificates are never pruned.

Rows go in batches of PRUNE_BATCH, each in its own short transaction (rows a request holds
right now are skipped, not waited for), so a large backlog never holds a long write lock.
`prune_if_due` runs a few batches per table at most every PRUNE_INTERVAL seconds per process
(from the login and token endpoints, like the login throttle's prune); `signet db prune` runs
until nothing is left. Each run that deleted rows (every run of the command) is audited once as
`database.pruned` with its counts."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from signet.auth.tokens import now
from signet.errors import BackendError
from signet.events import append_event
from signet.signing.context import Services
from signet.store import (
    AccessToken,
    MobileRequest,
    OAuth2Code,
    OAuth2DeviceCode,
    OtpChallenge,
    RefreshToken,
    SignatureActivation,
    SpentAssertion,
)

log = logging.getLogger(__name__)

# In the order they are pruned; docs/security.md says why each may go.
PRUNED: tuple[Any, ...] = (
    OAuth2Code,
    OAuth2DeviceCode,
    SpentAssertion,
    AccessToken,
    RefreshToken,
    SignatureActivation,
    OtpChallenge,
    MobileRequest,
)
PRUNE_BATCH = 1000
PRUNE_INTERVAL = 300.0
# Batches per table in one in-process run: a request never waits on more than this.
PERIODIC_BATCHES = 2

_last = {"at": float("-inf")}
_lock = threading.Lock()


def cutoff(services: Services) -> datetime | None:
    """Rows that expired before this moment may go; None when pruning is off."""
    hours = services.settings.database.prune_after_hours
    return None if hours == 0 else now() - timedelta(hours=hours)


def prune_batch(services: Services, model: Any, before: datetime, size: int = PRUNE_BATCH) -> int:
    """Delete, in one transaction, up to `size` rows of `model` that expired before `before`;
    how many went."""
    key = model.__mapper__.primary_key[0]
    with services.database.transaction() as session:
        keys = (
            session.execute(
                select(key)
                .where(model.expires_at < before)
                .limit(size)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        if keys:
            session.execute(delete(model).where(key.in_(keys)))
    return len(keys)


def prune_expired(
    services: Services,
    *,
    actor: str,
    batches: int | None = None,
    always_audit: bool = False,
    size: int = PRUNE_BATCH,
) -> dict[str, int]:
    """Prune every table in PRUNED (at most `batches` batches each; None: until done). The
    rows deleted per table; audited as `database.pruned` if any went or `always_audit`."""
    before = cutoff(services)
    counts = {model.__tablename__: 0 for model in PRUNED}
    if before is None:
        return counts
    for model in PRUNED:
        done = 0
        while batches is None or done < batches:
            went = prune_batch(services, model, before, size)
            counts[model.__tablename__] += went
            done += 1
            if went < size:
                break
    if always_audit or any(counts.values()):
        with services.database.transaction() as session:
            append_event(
                session,
                "database.pruned",
                actor=actor,
                subject="database",
                expired_before=before.isoformat(),
                rows=sum(counts.values()),
                tables=counts,
            )
    return counts


def prune_due() -> bool:
    """Whether this process should prune now (true at most once every PRUNE_INTERVAL s)."""
    with _lock:
        if time.monotonic() - _last["at"] < PRUNE_INTERVAL:
            return False
        _last["at"] = time.monotonic()
        return True


def prune_if_due(services: Services) -> None:
    """The in-process prune: a few batches per table, at most every PRUNE_INTERVAL s. A failure
    is logged, never the request's: the next run tries again."""
    if services.settings.database.prune_after_hours == 0 or not prune_due():
        return
    try:
        prune_expired(services, actor="signet", batches=PERIODIC_BATCHES)
    except (BackendError, SQLAlchemyError) as exc:
        log.warning("pruning expired rows failed: %s", exc)
