"""The per-user agent: one process that holds the Signet logins for every application using
the virtual card. The module sends it JSON lines over a Unix socket that only the same user
may use (SO_PEERCRED), and the agent shows each signature (application, credential, mechanism,
hash) as it forwards it to the service."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import socketserver
import struct
import sys
import threading
from pathlib import Path
from typing import Any

from signet.client.csc import CscClient, CscError

METHODS = ("list_credentials", "send_otp", "authorize", "sign_hash", "revoke")


def socket_path() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/signet-vc-{os.getuid()}"  # noqa: S108
    return Path(base) / "signet-vc" / "agent.sock"


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end (SO_PEERCRED: pid, uid, gid)."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", raw)[1])


class Agent:
    """The logins, one CSC client per (server, user), shared by every application."""

    def __init__(self, out: Any = None, uid: int | None = None) -> None:
        self.uid = os.getuid() if uid is None else uid
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.salt = secrets.token_bytes(16)
        self.clients: dict[tuple[str, str], tuple[CscClient, bytes]] = {}

    def _verifier(self, password: str) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, 10_000)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        account = (str(request.get("server")), str(request.get("user")))
        op = request.get("op")
        if op == "login":
            return self._login(account, request)
        with self.lock:
            held = self.clients.get(account)
        if held is None:
            return {"error": "not_logged_in", "status": 401, "description": "log in first"}
        client = held[0]
        if op not in METHODS:
            return {"error": "invalid_request", "status": 400, "description": f"op {op!r}"}
        args = request.get("args") or []
        if op in ("authorize", "sign_hash"):
            args = [_unhex(a) for a in args]
        if op == "authorize":
            self._show(request, args)
        try:
            answer = getattr(client, op)(*args, **(request.get("kwargs") or {}))
        except CscError as exc:
            return {"error": exc.error, "status": exc.status, "description": exc.description}
        if op == "revoke":
            with self.lock:
                self.clients.pop(account, None)
        if op == "sign_hash":
            answer = [s.hex() for s in answer]
        return {"result": answer}

    def _login(self, account: tuple[str, str], request: dict[str, Any]) -> dict[str, Any]:
        password = str(request.get("password") or "")
        with self.lock:
            held = self.clients.get(account)
        who = f"{account[1]} at {account[0]} for {request.get('application', '?')}"
        if held and hmac.compare_digest(held[1], self._verifier(password)):
            print(f"signet-vc agent: login of {who}: shared", file=self.out, flush=True)
            return {"result": "shared"}  # the login every application shares
        client = CscClient(account[0], verify=request.get("ca_file") or True)
        try:
            client.login(account[1], password)
        except CscError as exc:
            return {"error": exc.error, "status": exc.status, "description": exc.description}
        with self.lock:
            self.clients[account] = (client, self._verifier(password))
        print(f"signet-vc agent: login of {who}: new", file=self.out, flush=True)
        return {"result": "new"}

    def _show(self, request: dict[str, Any], args: list[Any]) -> None:
        hashes = args[1] if len(args) > 1 else []
        shown = ", ".join(bytes(h).hex() for h in hashes)
        print(
            f"signet-vc agent: {request.get('application', '?')} signs with credential "
            f"{args[0] if args else '?'} ({request.get('mechanism', '?')}): {shown}",
            file=self.out,
            flush=True,
        )


def _unhex(value: Any) -> Any:
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    if isinstance(value, list):
        return [_unhex(v) for v in value]
    return value


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        agent = self.server.agent
        if peer_uid(self.request) != agent.uid:
            return  # another user's process: not a word
        for line in self.rfile:
            try:
                answer = agent.handle(json.loads(line))
            except (ValueError, TypeError) as exc:
                answer = {"error": "invalid_request", "status": 400, "description": str(exc)}
            self.wfile.write(json.dumps(answer).encode() + b"\n")
            self.wfile.flush()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    agent: Agent


def serve(path: Path | None = None, agent: Agent | None = None) -> _Server:
    """Bind the agent's socket (its folder 0700) and return the server; serve_forever runs it."""
    path = path or socket_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    path.unlink(missing_ok=True)
    server = _Server(str(path), _Handler)
    path.chmod(0o600)
    server.agent = agent or Agent()
    return server


class AgentClient:
    """What signet.vc.token needs of a CSC client, asked of the agent instead of the service."""

    def __init__(self, path: Path, server: str, user: str, ca_file: str | None) -> None:
        self.path, self.server, self.user, self.ca_file = path, server, user, ca_file
        self.context: dict[str, str] = {}  # application and mechanism, shown by the agent
        self._file: Any = None

    def _ask(self, request: dict[str, Any]) -> Any:
        request.update(server=self.server, user=self.user, **self.context)
        try:
            if self._file is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(300)
                conn.connect(str(self.path))
                self._file = conn.makefile("rwb")
            self._file.write(json.dumps(request).encode() + b"\n")
            self._file.flush()
            line = self._file.readline()
        except OSError as exc:
            self._file = None
            raise CscError(0, "unreachable", f"the signet-vc agent at {self.path}: {exc}") from exc
        if not line:
            self._file = None
            raise CscError(0, "unreachable", f"the signet-vc agent at {self.path} hung up")
        answer = json.loads(line)
        if "error" in answer:
            raise CscError(int(answer.get("status", 0)), answer["error"], answer["description"])
        return answer["result"]

    def login(self, username: str, password: str) -> str:
        return str(self._ask({"op": "login", "password": password, "ca_file": self.ca_file}))

    def list_credentials(self, *, with_info: bool = False) -> Any:
        return self._ask({"op": "list_credentials", "kwargs": {"with_info": with_info}})

    def send_otp(self, credential_id: str) -> None:
        self._ask({"op": "send_otp", "args": [credential_id]})

    def authorize(self, credential_id: str, hashes: list[bytes], hash_name: str, **kw: Any) -> str:
        args = [credential_id, [{"hex": h.hex()} for h in hashes], hash_name]
        return str(self._ask({"op": "authorize", "args": args, "kwargs": kw}))

    def sign_hash(self, credential_id: str, sad: str, hashes: list[bytes], *rest: Any) -> list:
        params = [{"hex": r.hex()} if isinstance(r, bytes) else r for r in rest]
        args = [credential_id, sad, [{"hex": h.hex()} for h in hashes], *params]
        return [bytes.fromhex(s) for s in self._ask({"op": "sign_hash", "args": args})]

    def revoke(self) -> None:
        self._ask({"op": "revoke"})
