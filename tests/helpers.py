"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACTIVATION_CODE = r"^\s+([0-9A-Z]{5}-[0-9A-Z]{5})\s*$"


def signet_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `signet` command as an operator would."""
    exe = shutil.which("signet") or str(Path(sys.executable).parent / "signet")
    return subprocess.run(
        [exe, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def activation_code_in_mail(maildir: str | Path, credential_id: str) -> str:
    """The newest activation code mailed for the credential, read from a Maildir."""
    import mailbox
    import re

    found = []
    for message in mailbox.Maildir(str(maildir), create=False):
        body = message.get_payload(decode=True).decode()
        match = re.search(ACTIVATION_CODE, body, re.M)
        if match and credential_id in body:
            found.append((message.get_date(), match.group(1)))
    assert found, f"no activation mail for {credential_id} in {maildir}"
    return max(found)[1]


def enrol(services, username, *, key, activation="otp", pin=None, actor="test", **extra):
    """Enrol a credential the way Signet does (pending, code mailed) and activate it as its
    owner would: the code read from the Maildir, the PIN (PIN credentials) set by her through
    the use case the endpoint calls. Returns the CredentialView as enrolled."""
    from sqlalchemy import select

    from signet.auth.tokens import Principal
    from signet.signing import activation as activation_usecase
    from signet.signing import admin
    from signet.store import User

    if activation == "pin":
        # After a password login a PIN adds no second kind of factor: one-factor policy.
        extra.setdefault("policy", "basic")
    view = admin.create_credential(
        services, username, key=key, actor=actor, activation=activation, **extra
    )
    code = activation_code_in_mail(services.settings.notify.maildir, view.credential_id)
    with services.database.transaction() as session:
        user_id = session.execute(select(User.id).where(User.username == username)).scalar_one()
    owner = Principal(user_id=user_id, username=username, auth_methods="pwd", loa="low")
    activation_usecase.activate(services, owner, view.credential_id, code, pin)
    return view


def activate_over_api(
    url: str, username: str, password: str, credential_id: str, code: str, pin: str | None = None
) -> None:
    """The owner activates her credential through the Signet extension endpoint."""
    session = requests.Session()
    login = session.post(f"{url}/csc/v2/auth/login", auth=(username, password), timeout=30)
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    body = {"credentialID": credential_id, "activationCode": code}
    if pin is not None:
        body["PIN"] = pin
    done = session.post(
        f"{url}/csc/v2/credentials/activate",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert done.status_code == 200, done.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in(ports: range) -> int:
    """The first port of a test's own range nothing listens on, probed with SO_REUSEADDR as
    servers bind (a port whose last connections linger in TIME_WAIT is free to listen on)."""
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {ports}")


def served_env(softhsm: dict[str, str], tmp: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a `signet serve` of its own for one test module: this process's
    environment without its SIGNET_ settings, then SQLite in `tmp`, the test token, a CA key
    label of its own, mail to a maildir and `settings` (SIGNET_ variables, e.g. web threads)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env.update(
        {
            "SIGNET_WEB__BASE_URL": f"http://127.0.0.1:{port}",
            "SIGNET_DATABASE__URL": f"sqlite:///{tmp / 'signet.db'}",
            "SIGNET_HSM__MODULE": softhsm["module"],
            "SIGNET_HSM__TOKEN_LABEL": softhsm["token_label"],
            "SIGNET_HSM__PIN_FILE": softhsm["pin_file"],
            "SIGNET_HSM__PIN_ENV": "",
            "SIGNET_CA__OPTIONS": '{"key_label": "served-ca-' + uuid.uuid4().hex[:8] + '"}',
            "SIGNET_NOTIFY__EMAIL_BACKEND": "maildir",
            "SIGNET_NOTIFY__MAILDIR": str(tmp / "mail"),
            "SIGNET_AUDIT__CHECKPOINT_FILE": str(tmp / "audit-checkpoints.jsonl"),
            "SOFTHSM2_CONF": softhsm["conf"],
            **settings,
        }
    )
    return env


@contextmanager
def signet_server(
    *,
    env: dict[str, str] | None = None,
    workers: int | None = None,
    port: int | Callable[[], int] | None = None,
    timeout: float = 60,
) -> Iterator[str]:
    """`signet serve` (gunicorn) on a free loopback port, as an operator starts it; yields its
    URL once /health answers 200 and stops it afterwards. `port` is a port, or a function that
    picks a free one (default: any free port); a picked port that something else took before
    gunicorn bound it is replaced by another pick, twice at most. Its log goes to a file (a pipe
    nobody reads would stall the server once full) that a failed start prints."""
    pick = port if callable(port) else None
    for attempt in range(3):
        chosen = port if isinstance(port, int) else (pick or free_port)()
        with tempfile.TemporaryFile("w+") as log:
            server = _start_server(chosen, env, workers, log)
            try:
                url = f"http://127.0.0.1:{chosen}"
                failure = _wait_until_healthy(server, url, log, timeout)
                if failure is None:
                    yield url
                    return
                if "Address already in use" not in failure or isinstance(port, int) or attempt == 2:
                    raise AssertionError(f"signet serve did not come up:\n{failure}")
            finally:
                _stop(server)


def _start_server(
    port: int, env: dict[str, str] | None, workers: int | None, log: IO[str]
) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "signet"),
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _wait_until_healthy(
    server: subprocess.Popen[bytes], url: str, log: IO[str], timeout: float
) -> str | None:
    """None once /health answers 200; the server's log if it exited or the time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url + "/health", timeout=5).status_code == 200:
                return None
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or a worker still booting on a busy machine
        if server.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            return log.read()
        time.sleep(0.1)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def self_signed_certificate(
    common_name: str, *, days: float = 1, serial: int | None = None, dns: str | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A throw-away self-signed CA certificate (EC P-256) valid from five minutes ago for
    `days`, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
    return builder.sign(key, hashes.SHA256()), key


def self_signed_tls(tmp: Path) -> tuple[Path, Path]:
    """A throw-away TLS certificate and key for test servers on localhost."""
    cert, key = self_signed_certificate("localhost", dns="localhost")
    cert_path, key_path = tmp / "smtp.pem", tmp / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def hsm_outage_round(forwarder, services, softhsm) -> None:
    """One forwarder round with the token's directory taken away (a lost mount), so that the
    forwarder's real HSM probe (the health check's C_GetTokenInfo) fails, and one with it back."""
    from signet.signing.forwarding import _probes

    tokens = os.path.join(softhsm["dir"], "tokens")
    forwarder.probes = {"hsm": _probes(services)["hsm"]}
    os.rename(tokens, tokens + ".away")
    try:
        forwarder.run_once()
    finally:
        os.rename(tokens + ".away", tokens)
    forwarder.run_once()


def throwaway_chain(
    name: str, signer_public_key: object
) -> tuple[x509.Certificate, x509.Certificate]:
    """A root (EC P-256, its key in memory and then dropped) and a signing certificate for
    ``signer_public_key`` under it, both valid for a day: ``(root, signer)``."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP256R1())

    def name_of(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def certificate(subject: str, public_key: object) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder().subject_name(name_of(subject))
            .issuer_name(name_of(f"{name} Root")).public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        )  # fmt: skip

    root = (
        certificate(f"{name} Root", root_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                       True)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    signer = (
        certificate(f"{name} Signer", signer_public_key)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                       True)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    return root, signer


@contextmanager
def app_in_thread(app, ports: range = range(56200, 56300)) -> Iterator[str]:
    """The Flask app served over real HTTP by werkzeug in a thread of this process (one request
    at a time: SoftHSM wants its calls serialised), on the first free loopback port of `ports`;
    yields its URL."""
    import threading

    from werkzeug.serving import make_server

    server = None
    for port in ports:
        try:
            server = make_server("127.0.0.1", port, app, threaded=False)
            break
        except (OSError, SystemExit):  # werkzeug exits when the port is taken
            continue
    assert server is not None, f"no free port in {ports}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
