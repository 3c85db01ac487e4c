"""Sessions for concurrent HSM calls: a bounded set of logged-in sessions a process lends to
one thread at a time, each with its own key handles, dropped after a fork, a re-initialised
library or a destroyed key (`hsm.sessions` > 1 on a module declared thread-safe)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Lease:
    """One session and the key handles looked up through it."""

    session: Any
    generation: int
    pid: int
    epoch: int
    keys: dict[str, Any] = field(default_factory=dict)


class SessionPool:
    """At most `size` sessions; a thread waits for one to come back when all are lent."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[Lease] = []
        self._opened = 0
        self._pid = os.getpid()
        self._generation = -1
        self._epoch = 0  # moved on by a destroyed key: every cached handle is suspect
        self._ready = threading.Condition()

    def borrow(self, generation: int, open_session: Callable[[], Any]) -> Lease:
        """A lease of a live session of this process and library initialisation; opened with
        `open_session` (outside the pool's lock) when none is idle and the pool has room."""
        with self._ready:
            if self._pid != os.getpid() or self._generation != generation:
                # after a fork or a re-initialisation every session is dead: forget, not close
                self._idle.clear()
                self._opened = 0
                self._pid, self._generation = os.getpid(), generation
            while not self._idle and self._opened >= self.size:
                self._ready.wait()
            if self._idle:
                lease = self._idle.pop()
                if lease.epoch != self._epoch:
                    lease.keys.clear()
                    lease.epoch = self._epoch
                return lease
            self._opened += 1
            epoch = self._epoch
        try:
            session = open_session()
        except BaseException:
            with self._ready:
                self._opened -= 1
                self._ready.notify()
            raise
        return Lease(session, generation, os.getpid(), epoch)

    def give_back(self, lease: Lease) -> None:
        with self._ready:
            if lease.pid == self._pid and lease.generation == self._generation:
                self._idle.append(lease)
            elif lease.pid == self._pid:
                self._opened = max(0, self._opened - 1)
            self._ready.notify()

    def discard(self, lease: Lease) -> None:
        """Close a session that failed; the pool opens another when one is needed."""
        with contextlib.suppress(Exception):  # a broken session fails to close
            lease.session.close()
        with self._ready:
            if lease.pid == self._pid and lease.generation == self._generation:
                self._opened = max(0, self._opened - 1)
            self._ready.notify()

    def forget_keys(self) -> None:
        """A key was destroyed: no lease may sign with a handle it looked up before."""
        with self._ready:
            self._epoch += 1
            for lease in self._idle:
                lease.keys.clear()
                lease.epoch = self._epoch
