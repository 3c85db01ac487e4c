"""The per-user agent: one process that holds the Signet logins for every application using
the virtual card. The module sends it JSON lines over a Unix socket that only the same user
may use (SO_PEERCRED), and the agent shows each signature (application, credential, mechanism,
hash) as it forwards it to the service."""

from __future__ import annotations

import contextlib
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signet.client.csc import CscClient, CscError
from signet.vc.prompt import Cancelled, Prompter

METHODS = ("list_credentials", "send_otp", "authorize", "sign_hash", "revoke")
LIFETIME = 8 * 3600.0  # a login lasts a working day at most,
IDLE = 3600.0  # and ends after an hour without a signature or a listing
DEVICE_WAIT = 900.0  # a login may wait this long for the user (a device code lives 600 s)


def socket_path() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/signet-vc-{os.getuid()}"  # noqa: S108
    return Path(base) / "signet-vc" / "agent.sock"


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end (SO_PEERCRED: pid, uid, gid)."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", raw)[1])


@dataclass
class Login:
    client: CscClient
    method: str  # password or certificate
    verifier: bytes  # PBKDF2 of the password (a later login giving one must match)
    since: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)


def _refusal(error: str, description: str, status: int = 0) -> dict[str, Any]:
    return {"error": error, "status": status, "description": description}


class Agent:
    """The logins, one CSC client per (server, user), shared by every application; each ends
    after ``lifetime`` seconds, or ``idle`` seconds unused, or at ``signet-vc logout``."""

    def __init__(
        self,
        out: Any = None,
        uid: int | None = None,
        *,
        prompter: Prompter | None = None,
        lifetime: float = LIFETIME,
        idle: float = IDLE,
        confirm: bool = False,
    ) -> None:
        self.uid = os.getuid() if uid is None else uid
        self.out = out or sys.stdout
        self.prompter = prompter or Prompter(terminal=None)
        self.lifetime, self.idle, self.confirm = lifetime, idle, confirm
        self.lock = threading.Lock()
        self.salt = secrets.token_bytes(16)
        self.logins: dict[tuple[str, str], Login] = {}
        self.login_locks: dict[tuple[str, str], threading.Lock] = {}

    def _verifier(self, password: str) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, 10_000)

    def say(self, text: str) -> None:
        print(f"signet-vc agent: {text}", file=self.out, flush=True)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        self.expire()
        op = request.get("op")
        if op == "status":
            return {"result": self.status()}
        if op == "logout":
            return {"result": self.logout_all("signet-vc logout")}
        account = (str(request.get("server")), str(request.get("user")))
        if op == "login":
            return self._login(account, request)
        if op not in METHODS:
            return _refusal("invalid_request", f"op {op!r}", 400)
        with self.lock:
            held = self.logins.get(account)
            if held is not None:
                held.used = time.monotonic()
        if held is None:
            return _refusal("not_logged_in", "log in first (the agent's login ended)", 401)
        args = request.get("args") or []
        kwargs = dict(request.get("kwargs") or {})
        if op in ("authorize", "sign_hash"):
            args = [_unhex(a) for a in args]
        if op == "authorize":
            refused = self._consent(request, args, kwargs)
            if refused:
                return refused
        try:
            answer = getattr(held.client, op)(*args, **kwargs)
        except CscError as exc:
            if exc.status == 401:  # the service ended the login: so does the agent
                self._drop(account, "the service ended it")
            return _refusal(exc.error, exc.description, exc.status)
        if op == "revoke":
            self._drop(account, "revoked")
        if op == "sign_hash":
            answer = [s.hex() for s in answer]
        return {"result": answer}

    def _login(self, account: tuple[str, str], request: dict[str, Any]) -> dict[str, Any]:
        """One login an account at a time: a second application asking meanwhile waits, then
        shares it (one password prompt, one device code)."""
        with self.lock:
            lock = self.login_locks.setdefault(account, threading.Lock())
        with lock:
            return self._login_now(account, request)

    def _login_now(self, account: tuple[str, str], request: dict[str, Any]) -> dict[str, Any]:
        password = request.get("password")  # None: the protected path, the agent asks
        device_client = request.get("device_client")
        if device_client is not None and not isinstance(device_client, str):
            return _refusal("invalid_request", "device_client is a client_id", 400)
        method = "certificate" if request.get("cert") else "device" if device_client else "password"
        who = f"{account[1]} at {account[0]} for {request.get('application', '?')}"
        with self.lock:
            held = self.logins.get(account)
        if (
            held
            and held.method == method
            and (password is None or hmac.compare_digest(held.verifier, self._verifier(password)))
        ):
            self.say(f"login of {who}: shared")
            return {"result": "shared"}  # the login every application shares
        if method == "password" and password is None:
            try:
                password = self.prompter.secret(
                    "password", user=account[1], application=str(request.get("application"))
                )
            except Cancelled as exc:
                self.say(f"login of {who} cancelled: {exc}")
                return _refusal("cancelled", f"no password given: {exc}")
        cert = request.get("cert")
        try:
            client = CscClient(
                account[0],
                verify=request.get("ca_file") or True,
                cert=(str(cert[0]), str(cert[1]))
                if isinstance(cert, list) and len(cert) == 2
                else None,
            )
            if method == "certificate":
                client.login_with_certificate()
            elif method == "device":
                client.device_login(str(device_client), show=self._device_code(account))
            else:
                client.login(account[1], str(password))
        except CscError as exc:
            self.say(f"login of {who} by {method} failed: {exc.description}")
            return _refusal(exc.error, exc.description, exc.status)
        with self.lock:
            old = self.logins.get(account)
            self.logins[account] = Login(client, method, self._verifier(str(password or "")))
        if old is not None:
            _revoke(old)
        self.say(f"login of {who} by {method}: new")
        return {"result": "new"}

    def _device_code(self, account: tuple[str, str]) -> Any:
        """What shows a device login's code: the agent's output (the journal under systemd),
        its terminal, and a desktop notification."""

        def show(uri: str, code: str, complete: str | None) -> None:
            text = f"to log in {account[1]} at {account[0]}, open {uri} and enter {code}"
            self.say(text + (f" (or open {complete})" if complete else ""))
            self.prompter.tell(text)
            self.prompter.notify(text)

        return show

    def _consent(
        self, request: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Show the signature; ask its factor (or, with ``confirm``, a yes) when the module
        left that to the agent. A refusal answer, or None to go on."""
        hashes = args[1] if len(args) > 1 else []
        details = {
            "application": str(request.get("application", "?")),
            "credential": str(request.get("credential") or (args[0] if args else "?")),
            "mechanism": str(request.get("mechanism", "?")),
            "hash": ", ".join(bytes(h).hex() for h in hashes),
        }
        self.say(
            f"{details['application']} signs with credential {args[0] if args else '?'} "
            f"({details['mechanism']}): {details['hash']}"
        )
        self.prompter.notify(
            f"{details['application']} signs with {details['credential']}: "
            f"{details['hash'][:16]}..."
        )
        ask = request.get("ask")
        if ask not in (None, "PIN", "OTP"):
            return _refusal("invalid_request", f"ask {ask!r}: PIN or OTP", 400)
        if ask:
            try:
                kwargs["value"] = self.prompter.secret(str(ask), **details)
            except Cancelled as exc:
                self.say(f"signature by {details['application']} cancelled: {exc}")
                return _refusal("cancelled", f"the user gave no {ask}: {exc}")
        elif self.confirm and not self.prompter.confirm(**details):
            self.say(f"signature by {details['application']} refused by the user")
            return _refusal("cancelled", "the user refused the signature")
        return None

    # -- lifetime ---------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self.lock:
            return [
                {
                    "server": server,
                    "user": user,
                    "method": login.method,
                    "age": round(now - login.since),
                    "idle": round(now - login.used),
                    "ends_in": round(
                        min(login.since + self.lifetime, login.used + self.idle) - now
                    ),
                }
                for (server, user), login in self.logins.items()
            ]

    def expire(self) -> int:
        now = time.monotonic()
        with self.lock:
            ended = [
                account
                for account, login in self.logins.items()
                if now - login.since >= self.lifetime or now - login.used >= self.idle
            ]
        for account in ended:
            self._drop(account, "its lifetime is over")
        return len(ended)

    def logout_all(self, why: str) -> int:
        with self.lock:
            accounts = list(self.logins)
        for account in accounts:
            self._drop(account, why)
        return len(accounts)

    def _drop(self, account: tuple[str, str], why: str) -> None:
        with self.lock:
            login = self.logins.pop(account, None)
        if login is not None:
            _revoke(login)
            self.say(f"login of {account[1]} at {account[0]} ended: {why}")


def _revoke(login: Login) -> None:
    with contextlib.suppress(CscError):
        login.client.revoke()


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
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                answer = {"error": "invalid_request", "status": 400, "description": str(exc)}
            except Exception as exc:  # never a dropped connection and a traceback instead
                answer = {"error": "agent_error", "status": 0, "description": repr(exc)}
            self.wfile.write(json.dumps(answer).encode() + b"\n")
            self.wfile.flush()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    agent: Agent


def serve(path: Path | None = None, agent: Agent | None = None) -> _Server:
    """Bind the agent's socket (its folder 0700, the socket 0600) and return the server;
    serve_forever runs it. A socket handed over by systemd (socket activation: LISTEN_FDS and
    LISTEN_PID naming this process) is used as it is."""
    handed = _activated_socket()
    if handed is not None:
        server = _Server(handed.getsockname(), _Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = handed
    else:
        path = path or socket_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.chmod(0o700)
        path.unlink(missing_ok=True)
        server = _Server(str(path), _Handler)
        path.chmod(0o600)
    server.agent = agent or Agent()
    return server


def _activated_socket() -> socket.socket | None:
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for the agent's children (askpass, notify-send)
    return socket.socket(fileno=3)  # SD_LISTEN_FDS_START


def notify_ready() -> None:
    """Tell systemd the agent answers (Type=notify); nothing without NOTIFY_SOCKET."""
    address = os.environ.pop("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", address)


class AgentClient:
    """What signet.vc.token needs of a CSC client, asked of the agent instead of the service."""

    def __init__(
        self,
        path: Path,
        server: str,
        user: str,
        ca_file: str | None,
        cert: tuple[str, str] | None = None,
        *,
        device_client: str | None = None,
    ) -> None:
        self.path, self.server, self.user, self.ca_file = path, server, user, ca_file
        self.cert = cert  # log in by this TLS client certificate and key
        self.device_client = device_client  # or by the device flow, as this OAuth client
        # shown by the agent: application, mechanism, credential; ``ask``: the factor the
        # agent asks the user for before the next authorize (PIN or OTP)
        self.context: dict[str, str] = {}
        self._file: Any = None
        self._conn: socket.socket | None = None

    def _ask(self, request: dict[str, Any], timeout: float = 300) -> Any:
        """One request and its answer; ``timeout``: how long the user may take (a prompt, or
        a device login's approval in the browser)."""
        request.update(server=self.server, user=self.user, **self.context)
        try:
            if self._file is None:
                self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._conn.connect(str(self.path))
                self._file = self._conn.makefile("rwb")
            if self._conn is not None:
                self._conn.settimeout(timeout)
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

    def login(self, username: str, password: str | None) -> str:
        """The agent's login for this account: shared when it holds one (and the password,
        if given, matches); else made, the agent asking the password when none is given."""
        request: dict[str, Any] = {"op": "login", "password": password, "ca_file": self.ca_file}
        if self.cert:
            request["cert"] = list(self.cert)
        if self.device_client:
            request["device_client"] = self.device_client
        return str(self._ask(request, timeout=DEVICE_WAIT))

    def login_with_certificate(self) -> str:
        return self.login("", None)

    def list_credentials(self, *, with_info: bool = False) -> Any:
        return self._ask({"op": "list_credentials", "kwargs": {"with_info": with_info}})

    def send_otp(self, credential_id: str) -> None:
        self._ask({"op": "send_otp", "args": [credential_id]})

    def authorize(self, credential_id: str, hashes: list[bytes], hash_name: str, **kw: Any) -> str:
        args = [credential_id, [{"hex": h.hex()} for h in hashes], hash_name]
        try:
            return str(self._ask({"op": "authorize", "args": args, "kwargs": kw}))
        finally:
            self.context.pop("ask", None)

    def sign_hash(self, credential_id: str, sad: str, hashes: list[bytes], *rest: Any) -> list:
        params = [{"hex": r.hex()} if isinstance(r, bytes) else r for r in rest]
        args = [credential_id, sad, [{"hex": h.hex()} for h in hashes], *params]
        return [bytes.fromhex(s) for s in self._ask({"op": "sign_hash", "args": args})]

    def revoke(self) -> None:
        self._ask({"op": "revoke"})


def command(op: str, path: Path | None = None) -> Any:
    """``signet-vc status`` and ``logout``: one request to the running agent (CscError when
    none answers)."""
    client = AgentClient(path or socket_path(), "", "", None)
    return client._ask({"op": op})
