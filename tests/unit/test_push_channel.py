"""The long-poll push channel wakes the waiting call of the device announced to, at once, and
no other; a wait with no announcement ends at its timeout."""

import threading
import time

from signet.notify.push import LongPollChannel


def test_an_announcement_wakes_only_its_device():
    channel = LongPollChannel()
    woken: dict[str, tuple[bool, float]] = {}

    def wait(device: str) -> None:
        start = time.monotonic()
        woken[device] = (channel.wait(device, 5), time.monotonic() - start)

    waiters = [threading.Thread(target=wait, args=(d,)) for d in ("phone-a", "phone-b")]
    for w in waiters:
        w.start()
    time.sleep(0.3)
    channel.announce("phone-a", "request-1")
    waiters[0].join(5)
    assert woken["phone-a"][0] is True and woken["phone-a"][1] < 2
    assert waiters[1].is_alive()  # phone-b still waits
    waiters[1].join(6)
    assert woken["phone-b"][0] is False and woken["phone-b"][1] >= 4.9


def test_a_wait_without_announcement_times_out():
    start = time.monotonic()
    assert LongPollChannel().wait("phone", 0.2) is False
    assert time.monotonic() - start >= 0.2
