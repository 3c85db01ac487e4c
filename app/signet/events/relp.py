"""A RELP client (the Reliable Event Logging Protocol of rsyslog's librelp): syslog messages that
the collector acknowledges one by one, so that the forwarder moves its cursor only past
messages a collector took — over plain TCP a batch written to a socket that the collector then
drops is lost without either side knowing.

Frames are `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; the session opens with an `open` whose
offers name the protocol version and the `syslog` command, each message is a `syslog`
command, and the collector answers each command with an `rsp` carrying the same transaction
number and a status (200: taken). Messages are sent in windows of at most WINDOW unanswered
commands."""

from __future__ import annotations

import socket
from collections.abc import Sequence

# librelp's own clients offer version 0; servers answer with the version they accept.
OFFERS = b"\nrelp_version=0\nrelp_software=signet\ncommands=syslog"
WINDOW = 128
MAX_FRAME = 128 * 1024 + 64  # librelp's default maximum data length, with the header


class RelpError(Exception):
    """The collector refused a command, broke the framing, or closed the session."""


class RelpSession:
    """One open RELP session over a connected socket (plain, or already wrapped in TLS)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._txnr = 0
        self._buffer = b""
        self._command(b"open", OFFERS)
        status, offers = self._answer(self._txnr)
        if b"relp_version=" not in offers:
            raise RelpError(f"the collector refused the session: {status}")
        if b"commands=" in offers and b"syslog" not in offers.split(b"commands=", 1)[1]:
            raise RelpError("the collector does not accept the syslog command")

    def _next(self) -> int:
        # TXNR runs from 1 to 999,999,999, then wraps to 1 (0 is reserved for hints)
        self._txnr = self._txnr % 999_999_999 + 1
        return self._txnr

    def _frame(self, command: bytes, data: bytes) -> bytes:
        head = b"%d %s %d" % (self._next(), command, len(data))
        return head + (b" " + data if data else b"") + b"\n"

    def _command(self, command: bytes, data: bytes = b"") -> None:
        self._sock.sendall(self._frame(command, data))

    def send(self, messages: Sequence[bytes]) -> None:
        """Send `messages` in order; return once the collector acknowledged every one."""
        for start in range(0, len(messages), WINDOW):
            window = messages[start : start + WINDOW]
            frames = [self._frame(b"syslog", message) for message in window]
            first = self._txnr - len(window) + 1
            self._sock.sendall(b"".join(frames))
            for offset in range(len(window)):
                txnr = (first + offset - 1) % 999_999_999 + 1
                status, _ = self._answer(txnr)
                if not status.startswith("200"):
                    raise RelpError(f"the collector refused a message: {status}")

    def close(self) -> None:
        try:
            self._command(b"close")
            self._answer(self._txnr)
        except (OSError, RelpError):
            pass  # closing anyway

    # -- reading answers ----------------------------------------------------------------------

    def _read_until(self, count: int) -> None:
        while len(self._buffer) < count:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise RelpError("the collector closed the session")
            self._buffer += chunk

    def _field(self) -> bytes:
        while b" " not in self._buffer[:32]:
            if len(self._buffer) >= 32:
                raise RelpError("framing error in the collector's answer")
            self._read_until(len(self._buffer) + 1)
        field, _, self._buffer = self._buffer.partition(b" ")
        return field

    def _frame_in(self) -> tuple[int, bytes, bytes]:
        txnr, command = self._field(), self._field()
        # DATALEN is followed by a space and the data, or directly by the trailer when 0
        self._read_until(1)
        digits = b""
        while self._buffer[:1].isdigit():
            digits += self._buffer[:1]
            self._buffer = self._buffer[1:]
            if len(digits) > 9:
                raise RelpError("framing error in the collector's answer")
            self._read_until(1)
        if not digits or not txnr.isdigit():
            raise RelpError("framing error in the collector's answer")
        length = int(digits)
        if length > MAX_FRAME:
            raise RelpError("the collector's answer is too long")
        if length:
            self._read_until(length + 2)
            if self._buffer[:1] != b" ":
                raise RelpError("framing error in the collector's answer")
            data, self._buffer = self._buffer[1 : length + 1], self._buffer[length + 1 :]
        else:
            data = b""
        self._read_until(1)
        if self._buffer[:1] != b"\n":
            raise RelpError("framing error in the collector's answer (no trailer)")
        self._buffer = self._buffer[1:]
        return int(txnr), command, data

    def _answer(self, txnr: int) -> tuple[str, bytes]:
        """The collector's rsp to command `txnr`: (status line, what follows it)."""
        while True:
            number, command, data = self._frame_in()
            if number == 0:  # a hint (serverclose): the session is over
                raise RelpError(
                    f"the collector ended the session ({command.decode(errors='replace')})"
                )
            if command != b"rsp" or number != txnr:
                raise RelpError(
                    f"unexpected {command.decode(errors='replace')} {number} from the collector"
                )
            status, _, rest = data.partition(b"\n")
            return status.decode(errors="replace"), rest
