"""The RELP client against collectors that misbehave: each is a clear RelpError, never a hang
or a message counted as taken (rsyslog itself is the peer of tests/integration/test_siem.py)."""

from __future__ import annotations

import socket
import threading

import pytest

from signet.events.relp import RelpError, RelpSession


def rsp(txnr: int, data: bytes) -> bytes:
    return b"%d rsp %d %s\n" % (txnr, len(data), data)


OPEN_OK = rsp(1, b"200 OK\nrelp_version=0\ncommands=syslog")


def _collector(*answers: bytes) -> socket.socket:
    """A socket whose peer reads what the client sends and answers `answers`, one per
    frame received, then closes."""
    client, server = socket.socketpair()
    client.settimeout(5)

    def serve() -> None:
        with server:
            for answer in answers:
                if not server.recv(65536):
                    return
                server.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return client


def test_a_session_and_an_acknowledged_message() -> None:
    session = RelpSession(_collector(OPEN_OK, rsp(2, b"200 OK")))
    session.send([b"<13>1 - - - - - - hello"])


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        ((rsp(1, b"200 OK"),), "refused the session"),
        ((rsp(1, b"200 OK\nrelp_version=0\ncommands="),), "does not accept the syslog"),
        ((OPEN_OK, rsp(2, b"500 not accepted")), "refused a message: 500"),
        ((OPEN_OK, rsp(3, b"200 OK")), "unexpected rsp 3"),
        ((OPEN_OK, b"0 serverclose 0\n"), "ended the session"),
        ((OPEN_OK, b"2 rsp 6 200 OKX"), "no trailer"),
        ((OPEN_OK, b"2 rsp 9999999999 "), "framing error"),
        ((OPEN_OK, b"x" * 40), "framing error"),
        ((OPEN_OK,), "closed the session|Broken pipe|reset"),  # the sink: down, all three
    ],
)
def test_a_misbehaving_collector_is_an_error(answers: tuple[bytes, ...], error: str) -> None:
    with pytest.raises((RelpError, OSError), match=error):
        RelpSession(_collector(*answers)).send([b"<13>1 - - - - - - hello"])
