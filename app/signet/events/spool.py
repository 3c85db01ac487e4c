"""The forwarder's spool: operational events waiting for a sink, kept on the node's disk as well
as in memory, so that a forwarder that dies (killed, crashed, the machine rebooted) sends them
after its restart. They cannot wait in the database, which may be the thing that is down.

One JSON-lines file per sink under events.spool_dir, rewritten whole (write, fsync, rename)
whenever events leave it and appended to (fsync) when one arrives. A lock file makes the spool
one process's: a second forwarder on the same host works from memory only, and says so."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import IO

from signet.events.messages import Forwarded

log = logging.getLogger(__name__)


class Spool:
    """The spool directory of this process, or of nobody when it is taken or unusable."""

    def __init__(self, directory: str | None) -> None:
        self.directory: Path | None = None
        self._lock: IO[str] | None = None
        if directory is None:
            return
        path = Path(directory)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = (path / "forwarder.lock").open("a")
        except OSError as exc:
            log.warning(
                "events spool %s unusable (%s): operational events are held in memory only",
                path,
                exc.strerror or exc,
            )
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            log.warning(
                "events spool %s is another forwarder's on this host: operational events of "
                "this one are held in memory only",
                path,
            )
            return
        self.directory, self._lock = path, lock

    def _file(self, sink: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{sink}.jsonl"

    def load(self, sink: str) -> list[Forwarded]:
        """What a forwarder before this one left unsent to `sink` (a line that does not read
        back, a torn last write, is skipped)."""
        path = self._file(sink)
        if path is None or not path.exists():
            return []
        found = []
        for line in path.read_text().splitlines():
            try:
                found.append(_read(line))
            except (ValueError, TypeError):
                log.warning("events spool %s: an unreadable line skipped", path)
        return found

    def append(self, sink: str, item: Forwarded) -> None:
        path = self._file(sink)
        if path is None:
            return
        try:
            with path.open("a") as out:
                out.write(_line(item))
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            log.warning("events spool %s: %s", path, exc.strerror or exc)

    def replace(self, sink: str, items: Iterable[Forwarded]) -> None:
        """The spool of `sink` is now `items` (what is still unsent)."""
        path = self._file(sink)
        if path is None:
            return
        lines = "".join(_line(item) for item in items)
        try:
            if not lines:
                path.unlink(missing_ok=True)
                return
            staged = path.with_suffix(".tmp")
            with staged.open("w") as out:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())
            staged.replace(path)
        except OSError as exc:
            log.warning("events spool %s: %s", path, exc.strerror or exc)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None


def _read(line: str) -> Forwarded:
    """One spooled event, checked as far as rendering it needs: a line that would fail every
    round (a wrong type, a time that does not parse) must be skipped here, not block the
    sink's queue forever."""
    item = Forwarded(**json.loads(line))
    texts = (item.kind, item.event, item.at, item.actor, item.outcome)
    if not all(isinstance(value, str) for value in texts) or not isinstance(item.details, dict):
        raise TypeError("a field of the wrong type")
    if item.kind != "operational" or item.integrity != "unchained":
        raise ValueError("only operational events are spooled")
    datetime.fromisoformat(item.at)
    return item


def _line(item: Forwarded) -> str:
    return json.dumps(dataclasses.asdict(item), separators=(",", ":"), default=str) + "\n"
