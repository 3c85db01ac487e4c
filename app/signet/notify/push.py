"""Telling a Mobile ID device that a request waits for it: the `PushChannel` interface and its
long-poll implementation (the device holds a `pending` call open; this wakes it at once when
the request was made in the same process, and the device's next database look finds it when
another node made it). Web Push (`notify.webpush`, composed with the long poll in
`signing.mobile_push`) adds a push through the device's push service; FCM and APNs would be
adapters of the same kind (docs/mobile-id.md, "Push channels")."""

from __future__ import annotations

import threading
from typing import Protocol


class PushChannel(Protocol):
    """How a request reaches a device. `announce` must not block on the network for long and
    must never carry the request's content (the device fetches it over its signed call)."""

    def announce(self, device_id: str, request_id: str) -> None: ...

    def wait(self, device_id: str, timeout: float) -> bool:
        """Wait at most `timeout` seconds for an announcement to the device; True if one came."""
        ...


class LongPollChannel:
    """Announcements within one process, to the `pending` calls waiting in it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation: dict[str, int] = {}

    def announce(self, device_id: str, request_id: str) -> None:
        with self._condition:
            self._generation[device_id] = self._generation.get(device_id, 0) + 1
            if len(self._generation) > 100_000:  # bounded: forget the oldest devices
                self._generation.pop(next(iter(self._generation)))
            self._condition.notify_all()

    def wait(self, device_id: str, timeout: float) -> bool:
        with self._condition:
            start = self._generation.get(device_id, 0)
            return self._condition.wait_for(
                lambda: self._generation.get(device_id, 0) != start, timeout
            )
