"""The gunicorn worker of `signet serve`: a request is read before a thread takes it, within
time limits, and every answer gunicorn itself gives is CSC error JSON.

gunicorn's gthread worker hands a connection to a thread as soon as its first byte arrives; the
thread then blocks on the socket until the whole request is in. A client that sends one byte a
second holds that thread for as long as it likes, and as many such clients as there are threads
stop the worker. Here the worker's main loop, which waits on all sockets at once, reads each
request's head and the first ``BUFFERED`` bytes of its body itself, and only a request read
that far reaches a thread. Time limits bound both phases: ``HEAD_TIMEOUT`` for the request line
and headers, and ``BODY_TIMEOUT`` plus one second for every ``MIN_RATE`` bytes for the body (in
the main loop and, beyond ``BUFFERED``, in the thread). A client that misses them gets 408.

Handing each request from the main loop to a thread and the connection back costs two thread
wake-ups and the poller's bookkeeping, about 0.1 ms of CPU a request (docs/scale.md). So a
thread that answered a kept-alive HTTP/1 request without TLS waits up to ``web.linger_ms``
(``LINGER``) on that connection and reads the next request itself, by the same rule as the main
loop. What has not wholly come by then goes back to the main loop with the bytes read, where
the time limits above apply; and a thread waits on no connection while other requests wait for
a thread (the main loop wakes it through a pipe when one is queued).

gunicorn answers protocol errors it finds itself (a Content-Length that is not a number, a
header line over its limit, a bad chunk size) with an HTML page written by
``gunicorn.util.write_error``; it offers no hook for that page, so this worker replaces that
one function, in its own process, with one that writes the CSC error JSON.

An answer given before the request's body was read (a 401 on a bad token, say) leaves the rest
of the body on the connection. The worker reads and drops it, up to ``BUFFERED`` bytes (what
its main loop already holds), before the answer goes out; a body longer than that, or one that
cannot be read, closes the connection, and the answer says ``Connection: close``. (gunicorn
itself drains only 64 KiB after the answer was sent with ``keep-alive``, then closes: the
client's next request on that connection was lost.)
"""

from __future__ import annotations

import json
import os
import select
import selectors
import socket
import threading
import time
from collections import deque
from contextlib import suppress
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

from signet.web.errors import RequestTimeout, csc_error_code

HEAD_TIMEOUT = 10.0  # seconds for the request line and the headers
BODY_TIMEOUT = 20.0  # seconds for a body, plus one for every MIN_RATE bytes of it
MIN_RATE = 16 * 1024  # bytes a second: a slow mobile uplink still makes it
BUFFERED = 256 * 1024  # body bytes the main loop reads before a thread takes over
HEAD_LIMIT = 128 * 1024  # beyond this without a blank line, gunicorn's parser refuses it
LINGER = 0.005  # seconds a thread waits on its connection for the next request (web.linger_ms)
_READ = 64 * 1024


def csc_error_bytes(status: int, reason: str, description: str) -> bytes:
    """A whole HTTP/1.1 answer carrying the CSC error JSON; the connection closes after it."""
    body = json.dumps(
        {"error": csc_error_code(status), "error_description": description or reason}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_csc_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Stands in for gunicorn.util.write_error (same signature)."""
    util.write_nonblock(sock, csc_error_bytes(status_int, reason, mesg))


class _TimedUnreader(SocketUnreader):  # type: ignore[misc]
    """gunicorn's socket reader, with the body's deadline: each read waits at most until it,
    and each byte read moves it on by 1/MIN_RATE s."""

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self.deadline = time.monotonic() + BODY_TIMEOUT

    def chunk(self, size_hint: int | None = None) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(_too_slow())
        before = self.sock.gettimeout()  # gunicorn's own drain sets a shorter one
        self.sock.settimeout(remaining if before is None else min(before, remaining))
        try:
            data: bytes = super().chunk(size_hint)
        except TimeoutError:
            raise RequestTimeout(_too_slow()) from None
        finally:
            self.sock.settimeout(before)
        self.deadline += len(data) / MIN_RATE
        return data


def _too_slow() -> str:
    return (
        f"The request was not received in time: the headers within {HEAD_TIMEOUT:g} s, "
        f"the body within {BODY_TIMEOUT:g} s plus 1 s for every {MIN_RATE // 1024} KiB"
    )


class _Reading:
    """A request the main loop is reading: what has come, and by when the rest must."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.deadline = time.monotonic() + HEAD_TIMEOUT
        self.body_start: int | None = None
        self.wanted: int | None = None  # body bytes to read here; None: hand over at once
        self.chunked = False


def _body_to_buffer(head: bytes) -> tuple[int | None, bool]:
    """How many body bytes to read before a thread takes the request, and whether it is
    chunked; None where gunicorn should judge the headers at once (it will refuse them or
    answer Expect: 100-continue)."""
    length: int | None = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"expect":
            return None, False
        if name == b"transfer-encoding":
            if not value.lower().endswith(b"chunked"):
                return None, False  # gunicorn refuses other codings (501)
            chunked = True
        elif name == b"content-length":
            if length is not None or not value.isdigit():
                return None, False
            length = int(value)
    if chunked:
        return (None, False) if length is not None else (BUFFERED, True)
    return min(length or 0, BUFFERED), False


def drained(body: Any, limit: int = BUFFERED) -> bool:
    """Read and drop what the application left of a request body, at most `limit` bytes;
    whether the body is now wholly read (else the connection must close)."""
    try:
        while limit > 0:
            data = body.read(min(_READ, limit))
            if not data:
                return True
            limit -= len(data)
        return not body.read(1)
    except Exception:  # a body that cannot be read: where it ends is unknown
        return False


def answer_then_drain(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
    """The application, then the rest of its request's body drained (or the connection
    closed) before the answer is written."""
    answer = app(environ, start_response)
    if not drained(environ["wsgi.input"]):
        # gunicorn drops a Connection header the application sets; its response object,
        # whose method start_response is, closes the connection and says so in the head.
        response = getattr(start_response, "__self__", None)
        if response is not None and hasattr(response, "force_close"):
            response.force_close()
    return answer


class SignetWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, with requests read in the main loop up to BUFFERED body bytes, and a thread
    that answered a kept-alive request waiting LINGER for the next one on its connection."""

    def init_process(self) -> None:
        util.write_error = write_csc_error  # gunicorn's only writer of its own error pages
        self.reading: dict[Any, _Reading] = {}
        settings = getattr(self.app, "settings", None)
        self.linger = settings.web.linger_ms / 1000 if settings is not None else LINGER
        self.queued: deque[None] = deque()  # one item a request submitted, not yet started
        self.lingering: set[int] = set()  # the threads waiting on their connection
        self.nudge_r, self.nudge_w = os.pipe()  # wakes them when requests queue
        os.set_blocking(self.nudge_r, False)
        os.set_blocking(self.nudge_w, False)
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = getattr(self, "wsgi")  # noqa: B009 - set by gunicorn's untyped load_wsgi
        self.wsgi = partial(answer_then_drain, app)

    def _reads_itself(self, conn: Any) -> bool:
        return not (
            self.cfg.is_ssl
            or conn.is_http2
            or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
        )

    def enqueue_req(self, conn: Any) -> None:
        if not self._reads_itself(conn):
            self._submit(conn)
            return
        pipelined = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        reading = _Reading(pipelined)
        conn.sock.setblocking(False)
        if self._ready(reading):
            self._hand_over(conn, reading)
            return
        self.reading[conn] = reading
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))

    def _readable(self, conn: Any, _sock: Any) -> None:
        reading = self.reading[conn]
        ended = False
        try:
            while not self._ready(reading):
                data = conn.sock.recv(_READ)
                if not data:
                    ended = True
                    break
                reading.data += data
                if reading.body_start is not None:
                    reading.deadline += len(data) / MIN_RATE
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn)
            return
        if ended and not reading.data:
            self._drop(conn)  # the client went away between requests
            return
        # Whole, or cut short by the client: gunicorn and the app say what is missing.
        self._stop_reading(conn)
        self._hand_over(conn, reading)

    def _ready(self, reading: _Reading) -> bool:
        data = reading.data
        if reading.body_start is None:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return len(data) > HEAD_LIMIT or data.find(b"\n\n") >= 0
            reading.body_start = end + 4
            reading.wanted, reading.chunked = _body_to_buffer(bytes(data[:end]))
            reading.deadline = time.monotonic() + BODY_TIMEOUT
        if reading.wanted is None:
            return True
        body = len(data) - reading.body_start
        if reading.chunked and data.endswith(b"\r\n0\r\n\r\n"):
            return True
        return body >= reading.wanted

    def _hand_over(self, conn: Any, reading: _Reading) -> None:
        self._take(conn, reading)
        self._submit(conn)

    def _take(self, conn: Any, reading: _Reading) -> None:
        """Give a request read this far to gunicorn's parser, with the body's deadline."""
        conn.init()
        if not isinstance(conn.parser.unreader, _TimedUnreader):
            conn.parser.unreader = _TimedUnreader(conn.sock)
        conn.parser.unreader.deadline = max(reading.deadline, time.monotonic() + 1)
        conn.parser.unreader.unread(bytes(reading.data))
        conn.data_ready = True

    def _submit(self, conn: Any) -> None:
        self.queued.append(None)
        super().enqueue_req(conn)
        if self.lingering:
            with suppress(OSError):  # a full pipe has woken them already
                os.write(self.nudge_w, b"\0")

    def _stop_reading(self, conn: Any) -> None:
        del self.reading[conn]
        self.poller.unregister(conn.sock)

    def _drop(self, conn: Any) -> None:
        if conn in self.reading:
            self._stop_reading(conn)
        self.nr_conns -= 1
        conn.close()

    def handle(self, conn: Any) -> Any:
        """gunicorn's, then, while the connection stays alive, the next request on it if one
        comes within the linger and no other request waits for a thread."""
        with suppress(IndexError):
            self.queued.popleft()
        kept = super().handle(conn)
        while kept is True and self.linger > 0 and self._reads_itself(conn):
            if self.queued or not self.alive:
                return True  # the main loop takes it back, with any pipelined bytes
            try:
                reading = self._linger(conn)
            except OSError:
                return False
            if reading is None:
                return False  # the client closed the connection, or it failed
            if reading.body_start is None or not self._ready(reading):
                # Nothing, or not all of it, came in time: the main loop waits for the rest.
                conn.parser.unreader.unread(bytes(reading.data))
                return True
            self._take(conn, reading)
            kept = super().handle(conn)
        return kept

    def _linger(self, conn: Any) -> _Reading | None:
        """Read the connection's next request in this thread for up to the linger: what came
        (the whole request when _ready says so), or None where the connection ended."""
        reading = _Reading(conn.parser.unreader.take_buffered())
        if reading.data and self._ready(reading):
            return reading
        until = time.monotonic() + self.linger
        poll = select.poll()
        poll.register(conn.sock, select.POLLIN)
        poll.register(self.nudge_r, select.POLLIN)
        me = threading.get_ident()
        self.lingering.add(me)
        try:
            while self.alive and not self.queued:
                left = until - time.monotonic()
                if left <= 0:
                    break
                events = dict(poll.poll(left * 1000))
                if self.nudge_r in events:
                    # One waiting request frees one thread; with none, the nudges are stale.
                    with suppress(OSError):
                        os.read(self.nudge_r, 1 if self.queued else 4096)
                if not events.get(conn.sock.fileno(), 0):
                    continue
                try:
                    data = conn.sock.recv(_READ, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    return None
                if not data:
                    return reading if reading.data else None
                reading.data += data
                if self._ready(reading):
                    break
        finally:
            self.lingering.discard(me)
        return reading

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, r in self.reading.items() if r.deadline <= now]:
            # If its buffer is full or it is gone, closing is the answer.
            with suppress(OSError):
                conn.sock.send(csc_error_bytes(408, "Request Timeout", _too_slow()))
            self.log.warning("Request from %s not received in time", conn.client)
            self._drop(conn)
