"""Kept-alive connections through `signet serve`: a request thread that answered one waits
on the connection for the next (web.linger_ms) and reads it itself, and whatever does not
come within that wait goes back to the worker's main loop, whose time limits hold. One worker
with two threads, a 50 ms wait so that a client's next request surely meets it."""

from __future__ import annotations

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import port_in, served_env, signet_cli, signet_server

PORTS = range(57300, 57350)  # this test's own
INFO = b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def served(softhsm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keepalive")
    port = port_in(PORTS)
    env = served_env(
        softhsm,
        tmp,
        port,
        SIGNET_WEB__THREADS="2",
        SIGNET_WEB__LINGER_MS="50",
        SIGNET_WEB__ACCESS_LOG="false",
    )
    assert signet_cli("init", env=env).returncode == 0
    with signet_server(env=env, workers=1, port=port) as url:
        yield url, port


def info(body: bytes = b"{}", *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return INFO + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


class Answers:
    """The answers on one connection, read one at a time by their Content-Length."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, body

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"the server closed the connection; unread: {self.buf!r}"
        self.buf += chunk


def test_requests_on_one_connection_are_answered_in_order(served):
    _, port = served
    unauthorised = (
        b"POST /csc/v2/credentials/list HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    )
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        answers = Answers(sock)
        # Three pipelined in one write: the thread answers them from what it already holds.
        sock.sendall(info() + unauthorised + health)
        first, second, third = answers.next(), answers.next(), answers.next()
        assert first[0] == 200 and "specs" in json.loads(first[2]), first
        assert second[0] == 401 and json.loads(second[2])["error"], second
        assert third[0] == 200 and b"specs" not in third[2], third
        # Straight after an answer: within the wait, read by the thread.
        sock.sendall(info())
        assert answers.next()[0] == 200
        # A body, then a head, coming in parts after the wait: the main loop reads the rest.
        body = b'{"lang": "en-US"}'
        whole = info(body)
        for cut in (len(whole) - 5, 20):
            sock.sendall(whole[:cut])
            time.sleep(0.2)
            sock.sendall(whole[cut:])
            status, _, answer = answers.next()
            assert status == 200 and "specs" in json.loads(answer)
        # A 401 given before its body was read, with the next request behind that body.
        sock.sendall(unauthorised[:-2])
        time.sleep(0.01)
        sock.sendall(unauthorised[-2:] + info(close=True))
        assert answers.next()[0] == 401
        status, headers, _ = answers.next()
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(1) == b""  # and the server closed it


def keep_asking(port: int, times: int) -> list[int]:
    """`times` info requests on one kept-alive connection: their statuses."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses = []
    try:
        for _ in range(times):
            conn.request(
                "POST", "/csc/v2/info", body=b"{}", headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            assert not response.will_close
    finally:
        conn.close()
    return statuses


def test_many_connections_and_a_stalled_one_against_two_threads(served):
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
        answers = Answers(stalled)
        stalled.sendall(info())
        assert answers.next()[0] == 200
        stalled.sendall(INFO)  # a head that never ends, on a kept-alive connection
        # Sixteen connections, each asking again as soon as answered, against two threads
        # that would each rather keep their own: all of them are served.
        with ThreadPoolExecutor(16) as pool:
            done = list(pool.map(keep_asking, [port] * 16, [20] * 16))
        assert done == [[200] * 20] * 16
        # The stalled head gets the main loop's 408 in CSC shape once its time is up.
        status, headers, body = answers.next()
    assert status == 408 and headers["content-type"] == "application/json", body
    assert "not received in time" in json.loads(body)["error_description"]


def test_the_wait_can_be_turned_off():
    from signet.config import WebSettings
    from signet.web import worker

    assert WebSettings().linger_ms == worker.LINGER * 1000
    assert WebSettings(linger_ms=0).linger_ms == 0
    with pytest.raises(ValueError, match="linger_ms"):
        WebSettings(linger_ms=-1)


def test_slow_requests_behind_kept_alive_ones_do_not_hold_threads(served):
    """Two connections that each begin a request and stall, on both threads' connections:
    a third client is still answered at once (no thread waits on them beyond the linger)."""
    _, port = served
    socks = []
    try:
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=15)
            socks.append(sock)
            sock.sendall(info())
            assert Answers(sock).next()[0] == 200
            sock.sendall(INFO + b"Content-Length: 100\r\n\r\n{")  # a body that stalls
        assert keep_asking(port, 3) == [200] * 3
    finally:
        for sock in socks:
            sock.close()
