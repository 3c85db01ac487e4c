"""SMS gateway peers for the SMS tests, on loopback: a real SMPP 3.4 SMSC (tests/smsc.js on the
npm `smpp` package) and a real HTTP gateway (http.server in a thread), each recording what it
received; and the ports they may use."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "build" / "npm" / "node_modules"
SMSC_SCRIPT = Path(__file__).resolve().parent / "smsc.js"
# The ports this project's SMS tests may open (SMSC, HTTP gateway, signet serve).
PORTS = range(56600, 56650)
SYSTEM_ID, SMPP_PASSWORD = "signet", "s3cret"


def free_tcp_port() -> int:
    """A free loopback TCP port among PORTS."""
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free TCP port in {PORTS.start}-{PORTS.stop - 1}")


@dataclass
class Smsc:
    """A running tests/smsc.js: its port, what it recorded, and its stdin to steer it."""

    port: int
    records_file: Path
    process: subprocess.Popen[str]

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.records_file.exists():
            return []
        lines = self.records_file.read_text().splitlines()
        entries = [json.loads(line) for line in lines if line]
        return [e for e in entries if event is None or e["event"] == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(found := self.records(event)) < count:
            assert time.monotonic() < deadline, f"the SMSC saw {found} (wanted {count} {event})"
            time.sleep(0.05)
        return found

    def command(self, line: str) -> None:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer.startswith("ok"), answer

    def texts(self) -> list[str]:
        """The texts of the messages it took, concatenated parts joined."""
        parts: dict[str, list[tuple[int, str]]] = {}
        texts = []
        for entry in self.records("submit_sm"):
            if "message_id" not in entry:
                continue
            if entry["udh"]:
                udh = bytes.fromhex(entry["udh"][0])  # IE 00: ref, total, number
                parts.setdefault(f"{udh[2]}", []).append((udh[4], entry["text"]))
                if len(parts[f"{udh[2]}"]) == udh[3]:
                    texts.append("".join(t for _, t in sorted(parts.pop(f"{udh[2]}"))))
            else:
                texts.append(entry["text"])
        return texts


@contextmanager
def smsc(tmp_path: Path, *, tls: tuple[Path, Path] | None = None) -> Iterator[Smsc]:
    """tests/smsc.js on a free port, stopped afterwards."""
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "smpp").is_dir():
        pytest.fail("node or the npm package smpp is missing: run `make deps-test`")
    port = free_tcp_port()
    records = tmp_path / f"smsc-{port}.jsonl"
    command = [node, str(SMSC_SCRIPT), str(port), SYSTEM_ID, SMPP_PASSWORD, str(records)]
    if tls:
        command += [str(tls[1]), str(tls[0])]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if not first.startswith("listening"):
            process.kill()
            raise AssertionError(f"the SMSC did not start: {first}{process.communicate()[1]}")
        yield Smsc(port, records, process)
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def code_in(text: str) -> str:
    """The one-time code an SMS carries (its first word)."""
    match = re.match(r"^(\d{6,8}) ", text)
    assert match, text
    return match.group(1)


@dataclass
class HttpGatewayPeer:
    """A real HTTP server standing in for a commercial gateway: it records every request and
    answers what `answer` says (status, JSON body)."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], tuple[int, Any]] = lambda request: (
        200,
        {"status": "queued", "id": "gw-1"},
    )
    delay: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/sms"


@contextmanager
def http_gateway() -> Iterator[HttpGatewayPeer]:
    peer = HttpGatewayPeer(free_tcp_port())

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
            peer.requests.append(request)
            if peer.delay:
                time.sleep(peer.delay)
            status, document = peer.answer(request)
            data = json.dumps(document).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout tests)

        do_POST = do_PUT = do_GET = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", peer.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
