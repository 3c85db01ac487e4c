"""The forwarder: reads the audit trail from the database behind a per-sink cursor and lease,
and delivers it with the node's operational events to every configured sink.

Audit records: at least once, in order, each once per cluster. Per sink, one row of
event_cursors holds the newest record the sink took and a lease; the node holding the lease
reads the records after the cursor, sends them, and only then moves the cursor (conditionally:
a node that lost its lease moves nothing). A sink that is down keeps its cursor, so after an
outage or a restart every record it missed is sent. Records are checked on the way: each
message says whether its hash and link to the one before hold ("integrity").

Operational events (a dependency down and back, a certificate near expiry, a burst of failed
logins, records dropped): held per sink in a bounded queue in memory and in the node's spool
(events.spool), since the database may be the thing that is down; a restarted forwarder sends
what its predecessor left. Events about the node (HSM, database) come from every node; events
derived from the trail or the database (expiry, bursts) from the lease holder only."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from signet.config import EventsSettings
from signet.events.audit import GENESIS
from signet.events.expiry import certificates_near_expiry
from signet.events.messages import Forwarded, from_record, operational
from signet.events.sinks import Sink, SinkDown
from signet.events.spool import Spool
from signet.store import AuditRecord, Database, EventCursor, StoreError

log = logging.getLogger(__name__)

# A probe says whether one of the node's dependencies works: None, or why not.
Probe = Callable[[], str | None]
RETRY_CAP_SECONDS = 5.0
# How often the lease holder looks for certificates near expiry.
EXPIRY_CHECK_SECONDS = 3600
_CURSORS: Table = EventCursor.__table__  # type: ignore[assignment]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


@dataclass
class _SinkState:
    sink: Sink
    pending: deque[Forwarded]
    dropped: int = 0
    holding: bool = False
    # Derived events already reported: certificate → day; address → window start.
    expiry_reported: dict[str, str] = field(default_factory=dict)
    burst_reported: dict[str, float] = field(default_factory=dict)
    failures: dict[str, deque[float]] = field(default_factory=dict)
    expiry_checked: float = float("-inf")
    # A sink that failed is tried again after a growing pause (poll_seconds doubled per
    # failure, at most RETRY_CAP_SECONDS), and its failure logged once, not every round.
    failures_in_row: int = 0
    retry_at: float = float("-inf")


class Forwarder:
    """Forwards for one node. `run_once` does one round for every sink; `run` repeats it
    until `stop` is set. Nothing here is on the signing path: it runs in its own process
    (`signet events forward`), and a sink that hangs costs at most its timeout per round."""

    def __init__(
        self,
        database: Database,
        settings: EventsSettings,
        sinks: Mapping[str, Sink],
        *,
        node: str,
        probes: Mapping[str, Probe] | None = None,
        trust_roots: Sequence[str] = (),
        spool: Spool | None = None,
    ) -> None:
        self.database = database
        self.trust_roots = tuple(trust_roots)
        self.settings = settings
        self.node = node
        self.probes = dict(probes or {})
        self.spool = spool or Spool(None)
        self._down: dict[str, str] = {}
        self._sinks = {
            name: _SinkState(sink, deque(maxlen=settings.memory_queue))
            for name, sink in sinks.items()
        }
        for name, state in self._sinks.items():
            left = self.spool.load(name)
            state.dropped = max(0, len(left) - settings.memory_queue)
            state.pending.extend(left)

    # -- operational events ------------------------------------------------------------------

    def emit(self, item: Forwarded) -> None:
        """Queue an operational event for every sink. A full queue drops its oldest event and
        counts it; the count is reported as `events.dropped` once the sink takes events again."""
        for state in self._sinks.values():
            self._queue(state, item)

    def _queue(self, state: _SinkState, item: Forwarded) -> None:
        if len(state.pending) == state.pending.maxlen:
            state.dropped += 1
            state.pending.append(item)
            self.spool.replace(state.sink.name, state.pending)
        else:
            state.pending.append(item)
            self.spool.append(state.sink.name, item)

    def _event(
        self, event: str, outcome: str, subject: str | None = None, **details: object
    ) -> Forwarded:
        return operational(
            event,
            at=_iso(_now()),
            actor=f"node:{self.node}",
            outcome=outcome,
            subject=subject,
            **details,
        )

    def check_node(self) -> None:
        """Run the probes; report each dependency that went down or came back."""
        for name, probe in self.probes.items():
            try:
                reason = probe()
            except Exception as exc:  # a probe that fails says the dependency is down
                reason = f"{exc.__class__.__name__}: {exc}"
            self._transition(name, reason)

    def _transition(self, name: str, reason: str | None) -> None:
        was = self._down.get(name)
        if reason is not None and was is None:
            self._down[name] = reason
            self.emit(self._event(f"{name}.unreachable", "failure", self.node, reason=reason))
        elif reason is None and was is not None:
            del self._down[name]
            self.emit(self._event(f"{name}.reachable", "success", self.node, was=was))

    # -- one round ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """One round: probes, then for each sink its queued operational events and the audit
        records after its cursor (one batch). Return how many audit records were sent."""
        self.check_node()
        sent = 0
        database_up = True
        for name, state in self._sinks.items():
            if time.monotonic() < state.retry_at:
                continue
            try:
                self._flush_pending(state)
                if database_up:
                    sent += self._forward_records(name, state)
                if state.failures_in_row:
                    log.warning("sink %s takes events again", name)
                state.failures_in_row = 0
            except SinkDown as exc:
                if not state.failures_in_row:
                    log.warning("%s; retrying until it takes events", exc)
                state.failures_in_row += 1
                pause = self.settings.poll_seconds * 2 ** min(state.failures_in_row, 16)
                state.retry_at = time.monotonic() + min(RETRY_CAP_SECONDS, pause)
            except StoreError as exc:
                database_up = False
                self._transition("database", str(exc))
                self._flush_pending(state, quiet=True)
        if database_up and "database" not in self.probes:
            self._transition("database", None)
        return sent

    def run(self, stop: threading.Event) -> None:
        self.emit(self._event("forwarder.started", "success", self.node))
        while not stop.is_set():
            started = time.monotonic()
            try:
                sent = self.run_once()
            except Exception:  # never let one bad round end the forwarder
                log.exception("events forwarder round failed")
                sent = 0
            if sent < self.settings.batch_size:  # caught up: wait for more
                stop.wait(max(0.0, self.settings.poll_seconds - (time.monotonic() - started)))
        self.emit(self._event("forwarder.stopped", "success", self.node))
        for state in self._sinks.values():
            self._flush_pending(state, quiet=True)
        self.release()

    def close(self) -> None:
        for state in self._sinks.values():
            state.sink.close()
        self.spool.close()

    # -- operational queue -------------------------------------------------------------------

    def _flush_pending(self, state: _SinkState, *, quiet: bool = False) -> None:
        try:
            if state.dropped:
                dropped = self._event("events.dropped", "failure", count=state.dropped)
                state.sink.send([dropped])
                state.dropped = 0
            while state.pending:
                batch = list(state.pending)[: self.settings.batch_size]
                state.sink.send(batch)
                for _ in batch:
                    state.pending.popleft()
                self.spool.replace(state.sink.name, state.pending)
        except SinkDown:
            if not quiet:
                raise

    # -- the audit trail ---------------------------------------------------------------------

    def _claim(self, name: str) -> tuple[int, str] | None:
        """Take or renew the sink's lease; return its cursor, or None while another node
        holds it."""
        now = _now()
        until = now + timedelta(seconds=self.settings.lease_seconds)
        with self.database.transaction() as session:
            conn = session.connection()
            claimed = conn.execute(
                update(_CURSORS)
                .where(
                    and_(
                        _CURSORS.c.sink == name,
                        or_(
                            _CURSORS.c.holder.is_(None),
                            _CURSORS.c.holder == self.node,
                            _CURSORS.c.lease_until < now,
                        ),
                    )
                )
                .values(holder=self.node, lease_until=until)
                .returning(_CURSORS.c.last_seq, _CURSORS.c.last_hash)
            ).first()
            if claimed is not None:
                return claimed.last_seq, claimed.last_hash
            exists = conn.execute(select(_CURSORS.c.sink).where(_CURSORS.c.sink == name)).first()
        if exists is not None:
            return None
        # A new sink starts at the beginning of the trail: it receives the whole history.
        try:
            with self.database.transaction() as session:
                session.connection().execute(
                    insert(_CURSORS).values(
                        sink=name,
                        last_seq=0,
                        last_hash=GENESIS,
                        holder=self.node,
                        lease_until=until,
                    )
                )
        except IntegrityError:  # another node made it first
            return None
        return 0, GENESIS

    def _forward_records(self, name: str, state: _SinkState) -> int:
        cursor = self._claim(name)
        state.holding = cursor is not None
        if cursor is None:
            return 0
        last_seq, last_hash = cursor
        with self.database.transaction(read_only=True) as session:
            rows = (
                session.execute(
                    select(AuditRecord)
                    .where(AuditRecord.seq > last_seq)
                    .order_by(AuditRecord.seq)
                    .limit(self.settings.batch_size)
                )
                .scalars()
                .all()
            )
            items = []
            expected = last_hash
            for row in rows:
                items.append(from_record(row, expected))
                expected = row.record_hash
            self._derive(state, items, session)
        if not items:
            return 0
        derived = list(state.pending)
        state.sink.send(items)
        newest = items[-1]
        with self.database.transaction() as session:
            moved = (
                session.connection()
                .execute(
                    update(_CURSORS)
                    .where(
                        and_(
                            _CURSORS.c.sink == name,
                            _CURSORS.c.holder == self.node,
                            _CURSORS.c.last_seq == last_seq,
                        )
                    )
                    .values(last_seq=newest.seq, last_hash=newest.record_hash)
                )
                .rowcount
            )
        if not moved:
            log.warning("sink %s: lease lost while sending; the new holder resends", name)
        if derived:
            self._flush_pending(state)
        return len(items)

    def release(self) -> None:
        """Give up this node's leases (a clean stop): another node takes over at once."""
        try:
            with self.database.transaction() as session:
                session.connection().execute(
                    update(_CURSORS)
                    .where(_CURSORS.c.holder == self.node)
                    .values(holder=None, lease_until=None)
                )
        except StoreError as exc:
            log.warning("could not release the event sinks' leases: %s", exc)

    # -- events derived from the trail and the database (lease holder only) -------------------

    def _derive(self, state: _SinkState, items: list[Forwarded], session: Session) -> None:
        window = self.settings.failed_login_window_seconds
        for item in items:
            if item.event != "login.failed":
                continue
            address = str(item.details.get("source") or item.details.get("address") or "")
            if not address:
                continue
            moment = datetime.fromisoformat(item.at).timestamp()
            seen = state.failures.setdefault(address, deque())
            seen.append(moment)
            while seen and seen[0] < moment - window:
                seen.popleft()
            reported = state.burst_reported.get(address)
            if len(seen) >= self.settings.failed_login_burst and (
                reported is None or reported < moment - window
            ):
                state.burst_reported[address] = moment
                self._queue(
                    state,
                    self._event(
                        "login.burst",
                        "failure",
                        address,
                        failures=len(seen),
                        window_seconds=window,
                        last_seq=item.seq,
                    ),
                )
        for address in [a for a, seen in state.failures.items() if not seen]:
            del state.failures[address]
        self._expiring(state, session)

    def _expiring(self, state: _SinkState, session: Session) -> None:
        if time.monotonic() - state.expiry_checked < EXPIRY_CHECK_SECONDS:
            return
        state.expiry_checked = time.monotonic()
        now = _now()
        today = now.date().isoformat()
        for cert in certificates_near_expiry(
            session, self.trust_roots, self.settings.expiry_warning_days
        ):
            key = f"{cert.role}|{cert.serial}|{cert.subject}|{cert.not_after.isoformat()}"
            if state.expiry_reported.get(key) == today:
                continue
            state.expiry_reported[key] = today
            self._queue(
                state,
                self._event(
                    "certificate.expiring",
                    "failure",
                    cert.subject,
                    role=cert.role,
                    serial=cert.serial,
                    credential=cert.credential_id,
                    not_after=cert.not_after.isoformat(),
                    days_left=cert.days_left(now),
                ),
            )
