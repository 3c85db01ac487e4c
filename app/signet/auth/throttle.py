"""Login throttling per user name and per client address, counted in the database so that every
node sees the same counts.

Each login first reserves a try on both keys (under their row locks): a key that reached its
limit within the window, or is blocked, refuses the login before any password is checked. A
failed login keeps its reservation (and blocks the key at the limit); a successful one clears
its user's count and gives back its reservation on the address, so it never clears the count
other users' failures left there. Parallel tries cannot slip past the limit: each holds a
reserved place before its password is compared.

Rows that no longer count (their window is over and no block is in force) are deleted by
`prune_stale`, which `signing` runs at most every PRUNE_INTERVAL seconds per process: a spray
of made-up user names leaves no lasting rows."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from signet.auth.tokens import _aware, now
from signet.config import LoginSettings
from signet.events import append_event
from signet.store import LoginThrottle


@dataclass(frozen=True)
class ThrottleKeys:
    user: str
    address: str

    @classmethod
    def of(cls, username: str, source: str) -> ThrottleKeys:
        return cls(f"user:{username}"[:300], f"addr:{source}"[:300])


def _limit(key: str, settings: LoginSettings) -> int:
    return (
        settings.max_failures_per_user
        if key.startswith("user:")
        else settings.max_failures_per_address
    )


def _locked_row(session: Session, key: str, stamp: datetime) -> LoginThrottle:
    """The key's row, locked until commit; created (in a savepoint, so that a node creating
    it at the same moment makes this one wait and read it instead) if missing."""
    query = select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(LoginThrottle(key=key, failures=0, window_start=stamp, blocked_until=None))
    except IntegrityError:
        pass
    return session.execute(query.execution_options(populate_existing=True)).scalar_one()


def _refusal(row: LoginThrottle, settings: LoginSettings, stamp: datetime) -> int | None:
    """Seconds until the key admits a try again, or None if it admits one now. A window that
    has run out, or a block that has ended, starts the count afresh."""
    if row.blocked_until is not None and _aware(row.blocked_until) > stamp:
        return max(1, math.ceil((_aware(row.blocked_until) - stamp).total_seconds()))
    window_end = _aware(row.window_start) + timedelta(seconds=settings.window_seconds)
    if row.blocked_until is not None or window_end <= stamp:
        row.failures, row.window_start, row.blocked_until = 0, stamp, None
        window_end = stamp + timedelta(seconds=settings.window_seconds)
    if row.failures >= _limit(row.key, settings):
        # Tries still in flight fill the limit: wait for them (a failure among them blocks).
        return max(1, math.ceil((window_end - stamp).total_seconds()))
    return None


def reserve_login(session: Session, keys: ThrottleKeys, settings: LoginSettings) -> int | None:
    """Reserve one try on both keys; return None, or the seconds to wait (Retry-After) if
    either refuses (then nothing is reserved). Only the two rows are locked here, address
    first, as everywhere; the refusal is audited by `audit_refusal` in a later transaction,
    so that no transaction waits for the audit trail's head while holding these rows."""
    stamp = now()
    rows = [_locked_row(session, key, stamp) for key in sorted((keys.user, keys.address))]
    waits = [wait for row in rows if (wait := _refusal(row, settings, stamp)) is not None]
    if waits:
        return max(waits)
    for row in rows:
        row.failures += 1
    return None


def audit_refusal(session: Session, *, username: str, source: str, retry_after: int) -> None:
    append_event(
        session,
        "login.throttled",
        actor=username[:128],
        subject=username[:256],
        outcome="failure",
        source=source,
        retry_after=retry_after,
    )


def settle_login(
    session: Session,
    keys: ThrottleKeys,
    settings: LoginSettings,
    *,
    ok: bool,
    username: str,
    source: str,
    clear_user: bool = True,
) -> None:
    """After the password check (in its transaction): a success clears its user's count and
    gives back its try on the address; a failure keeps both tries and blocks a key that
    reached its limit. Rows are locked in the same order as `reserve_login`'s. With
    `clear_user` false a success keeps its try on the first key (a device's user codes: a
    guesser must not wipe his count with a code he asked for himself)."""
    stamp = now()
    address = _locked_row(session, keys.address, stamp)
    if ok:
        address.failures = max(0, address.failures - 1)
        if clear_user:
            session.execute(delete(LoginThrottle).where(LoginThrottle.key == keys.user))
        return
    for row in (address, _locked_row(session, keys.user, stamp)):
        if row.failures >= _limit(row.key, settings) and row.blocked_until is None:
            row.blocked_until = stamp + timedelta(seconds=settings.block_seconds)
            append_event(
                session,
                "login.blocked",
                actor=username[:128],
                subject=row.key,
                outcome="failure",
                source=source,
                failures=row.failures,
                blocked_seconds=settings.block_seconds,
            )


PRUNE_INTERVAL = 300.0
PRUNE_BATCH = 1000
_pruned = {"at": float("-inf")}
_prune_lock = threading.Lock()


def prune_due() -> bool:
    """Whether this process should prune now (true at most once every PRUNE_INTERVAL s)."""
    with _prune_lock:
        if time.monotonic() - _pruned["at"] < PRUNE_INTERVAL:
            return False
        _pruned["at"] = time.monotonic()
        return True


def prune_stale(session: Session, settings: LoginSettings) -> int:
    """Delete up to PRUNE_BATCH rows that no longer count (they would start afresh at their
    next use); rows a login holds right now are skipped, not waited for. How many went."""
    stamp = now()
    stale = (
        session.execute(
            select(LoginThrottle.key)
            .where(
                LoginThrottle.window_start < stamp - timedelta(seconds=settings.window_seconds),
                or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < stamp),
            )
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if stale:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(stale)))
    return len(stale)
