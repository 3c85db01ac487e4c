"""The agent asks: on its terminal (a pseudo-terminal here) it asks alice's password at the
first login and her PIN at each signature, after showing the application, credential,
mechanism and hash; a cancelled prompt is CKR_FUNCTION_CANCELED; logins end after their idle
time (the service's token revoked) or at `signet-vc logout`; a client certificate logs in
without a password, directly and through the agent."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from signet.client.csc import CscError
from signet.vc import agent as agent_module
from signet.vc.agent import Agent
from tests.helpers import signet_cli
from tests.integration.oauth2_browser import Browser
from tests.integration.test_client_certificates import certificate_settings, tls_server
from tests.vc.conftest import MODULE, ROOT, SECRET, Card
from tests.x509_peers import serve_pki

DATA = b"approved on the agent's terminal\n"


class Terminal:
    """The agent's terminal: read what it shows, type answers."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.seen = ""

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"the agent never showed {text!r}; it showed {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                self.seen += os.read(self.master, 4096).decode(errors="replace")
        shown, self.seen = self.seen, self.seen[self.seen.index(text) + len(text) :]
        return shown

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")


@contextmanager
def agent(card: Card, name: str, *args: str, terminal: bool = False) -> Iterator[dict]:
    """`signet-vc agent` with its own runtime folder; yields the environment a consumer
    needs, the agent's log path and, with ``terminal``, its Terminal."""
    run = card.tmp / f"run-{name}"
    run.mkdir(exist_ok=True)
    log = card.tmp / f"agent-{name}.out"
    env = {**card.env, "XDG_RUNTIME_DIR": str(run), "PYTHONPATH": str(ROOT / "app")}
    master = slave = None
    if terminal:
        master, slave = pty.openpty()
    if "--notify" not in args:
        args = ("--no-notify", *args)
    process = subprocess.Popen(
        [sys.executable, "-m", "signet.vc", "agent", *args],
        env=env,
        stdin=slave if terminal else subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=slave if terminal else subprocess.STDOUT,
    )
    try:
        for _ in range(200):
            if (run / "signet-vc" / "agent.sock").exists():
                break
            time.sleep(0.1)
        yield {
            "env": {"XDG_RUNTIME_DIR": str(run)},
            "log": log,
            "terminal": Terminal(master) if master is not None else None,
        }
    finally:
        process.terminate()
        process.wait(timeout=20)
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)


def _signet_vc(card: Card, running: dict, command: str) -> str:
    """`signet-vc status` or `logout` asked of the running agent; its output."""
    env = {**running["env"], "PYTHONPATH": str(ROOT / "app")}
    return card.run(sys.executable, "-m", "signet.vc", command, env_extra=env).stdout


def _config(card: Card, name: str, extra: str = "") -> dict[str, str]:
    config = card.tmp / f"{name}.toml"
    config.write_text(
        f'[[account]]\nserver = "{card.url}"\nuser = "alice"\nlabel = "alice"\n'
        f"agent = true\n{extra}"
    )
    return {"SIGNET_VC_CONFIG": str(config)}


def _key_id(card: Card, label: str = "alice rsa-2048") -> str:
    """The key's CKA_ID, listed by a login of its own (not the agent's)."""
    listing = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET,
                       "--list-objects").stdout  # fmt: skip
    block = next(b for b in listing.split("Public Key Object")[1:] if f"label:      {label}" in b)
    return block.split("ID:")[1].split()[0]


def _verify(card: Card, credential: str, signature: Path, data: Path) -> None:
    pub = card.tmp / f"{signature.name}.pub"
    card.run("openssl", "x509", "-in", str(card.certificate(credential)), "-pubkey", "-noout",
             "-out", str(pub))  # fmt: skip
    verified = card.run("openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                        str(signature), str(data))  # fmt: skip
    assert "Verified OK" in verified.stdout


def _sign(card: Card, env: dict[str, str], key_id: str, name: str, **kw) -> subprocess.Popen:
    """pkcs11-tool signing with no PIN of its own: the token says it has a protected path."""
    (card.tmp / f"{name}.in").write_bytes(DATA)
    return subprocess.Popen(
        ["pkcs11-tool", "--module", str(MODULE), "--login", "--sign", "--id", key_id,
         "-m", "SHA256-RSA-PKCS", "-i", str(card.tmp / f"{name}.in"),
         "-o", str(card.tmp / f"{name}.sig")],
        env={**card.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **kw,
    )  # fmt: skip


def test_the_agent_asks_on_its_terminal(card: Card) -> None:
    with agent(card, "tty", terminal=True) as running:
        env = {**running["env"], **_config(card, "tty")}
        key_id = _key_id(card)
        signer = _sign(card, env, key_id, "tty")
        tty = running["terminal"]
        asked = tty.wait_for("password for alice")
        tty.type(SECRET)
        asked = tty.wait_for("PIN:")
        assert "pkcs11-tool (pid" in asked and "alice rsa-2048" in asked, asked
        assert "pkcs1v15 sha256" in asked and hashlib.sha256(DATA).hexdigest()[:16] in asked
        assert SECRET not in asked  # typed with echo off
        tty.type(SECRET)
        out, err = signer.communicate(timeout=120)
        assert signer.returncode == 0, out + err
        _verify(card, card.rsa, card.tmp / "tty.sig", card.tmp / "tty.in")
        # a second application: the login is shared, the PIN is asked again for its hash
        # (a wrong PIN is not tried here: pkcs11-tool asks again, and alice's credential would
        # lock for the tests after this one)
        second = _sign(card, env, key_id, "tty2")
        asked = tty.wait_for("PIN:")
        assert "password" not in asked
        tty.type(SECRET)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, out + err
        _verify(card, card.rsa, card.tmp / "tty2.sig", card.tmp / "tty2.in")
        status = _signet_vc(card, running, "status")
        assert "alice at " in status and "by password" in status, status
        assert "1 login(s) ended" in _signet_vc(card, running, "logout")
    shown = running["log"].read_text()
    assert "login of alice" in shown and "ended: signet-vc logout" in shown, shown


def test_a_cancelled_prompt_is_an_error_not_a_hang(card: Card) -> None:
    refuse = card.tmp / "refuse-askpass"
    refuse.write_text(
        f'#!/bin/sh\nif [ "$SIGNET_VC_PROMPT" = password ]; then echo {SECRET}; exit 0; fi\nexit 1\n'
    )
    refuse.chmod(0o755)
    notified = card.tmp / "notified"
    notify = card.tmp / "notify"
    notify.write_text(f'#!/bin/sh\nprintf "%s|%s\\n" "$1" "$2" >> {notified}\n')
    notify.chmod(0o755)
    with agent(card, "cancel", "--askpass", str(refuse), "--notify", str(notify)) as running:
        env = {**running["env"], **_config(card, "cancel")}
        signer = _sign(card, env, _key_id(card), "cancel")
        out, err = signer.communicate(timeout=120)
        assert signer.returncode != 0 and "CKR_FUNCTION_CANCELED" in err, out + err
        assert "cancelled" in running["log"].read_text()
        for _ in range(100):  # sent in the background
            if notified.exists():
                break
            time.sleep(0.1)
        shown = notified.read_text().splitlines()[0]  # pkcs11-tool may try again
        assert shown.startswith("Signet|pkcs11-tool (pid") and "alice rsa-2048" in shown
        assert hashlib.sha256(DATA).hexdigest()[:16] in shown
    # no terminal and no askpass: the agent cannot ask, and says so
    with agent(card, "mute") as running:
        env = {**running["env"], **_config(card, "mute")}
        done = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--list-objects",
                        env_extra=env, check=False)  # fmt: skip
        assert done.returncode != 0 and "CKR_FUNCTION_CANCELED" in done.stderr, done.stderr


def test_logins_end_when_idle_and_the_token_is_revoked(card: Card, tmp_path: Path) -> None:
    agent_ = Agent(out=(tmp_path / "log").open("w"), idle=1.0, lifetime=60.0)
    account = {"server": card.url, "user": "alice"}
    assert agent_.handle({"op": "login", "password": SECRET, **account}) == {"result": "new"}
    token = agent_.logins[(card.url, "alice")].client.access_token
    assert agent_.handle({"op": "list_credentials", **account})["result"]["credentialIDs"]
    time.sleep(1.2)
    assert agent_.expire() == 1 and agent_.status() == []
    listed = requests.post(f"{card.url}/csc/v2/credentials/list", json={},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
    assert listed.status_code == 401, listed.text  # revoked at the service, not only forgotten
    again = agent_.handle({"op": "list_credentials", **account})
    assert again["status"] == 401 and again["error"] == "not_logged_in"
    # a password login asked of an agent that cannot ask
    assert agent_.handle({"op": "login", "password": None, **account})["error"] == "cancelled"
    # nothing running: the CLI says so
    with pytest.raises(CscError, match="agent"):
        agent_module.command("status", tmp_path / "none.sock")


def test_client_certificate_login(card: Card, tmp_path: Path) -> None:
    with serve_pki(tmp_path, range(56990, 57000)) as pki:
        cert, key, _ = pki.issue("alice-vc", "alice")
        settings = {**card.server_env, **certificate_settings(pki)}
        with tls_server(pki, settings) as url:
            extra = f'client_cert = "{cert}"\nclient_key = "{key}"\nca_file = "{pki.anchor_file}"\n'
            direct = tmp_path / "direct.toml"
            direct.write_text(
                f'[[account]]\nserver = "{url}"\nuser = "alice"\nlabel = "alice"\n{extra}'
            )
            # no PIN at all: the certificate is the login
            listing = card.run("pkcs11-tool", "--module", str(MODULE), "--login",
                               "--list-objects",
                               env_extra={"SIGNET_VC_CONFIG": str(direct)}).stdout  # fmt: skip
            assert listing.count("Private Key Object") >= 2, listing
            askpass = tmp_path / "pin-askpass"
            askpass.write_text(f"#!/bin/sh\necho {SECRET}\n")
            askpass.chmod(0o755)
            with agent(card, "cert", "--askpass", str(askpass)) as running:
                config = tmp_path / "agent.toml"
                config.write_text(direct.read_text() + "agent = true\n")
                env = {**running["env"], "SIGNET_VC_CONFIG": str(config)}
                signer = _sign(card, env, _key_id(card), "cert")
                out, err = signer.communicate(timeout=120)
                assert signer.returncode == 0, out + err
                assert "by certificate: new" in running["log"].read_text()
            _verify(card, card.rsa, card.tmp / "cert.sig", card.tmp / "cert.in")
            # a key file that is not there: an error naming it, not a crash
            broken = tmp_path / "broken.toml"
            broken.write_text(direct.read_text().replace(str(key), str(tmp_path / "gone.key")))
            done = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--list-objects",
                            env_extra={"SIGNET_VC_CONFIG": str(broken)}, check=False)  # fmt: skip
            assert done.returncode != 0 and "CKR_DEVICE_ERROR" in done.stderr, done.stderr


def test_socket_activation_and_readiness(card: Card, tmp_path: Path) -> None:
    """As the user unit runs it: systemd (systemd-socket-activate here) holds the socket and
    starts the agent at the first connection; the agent says READY=1 on NOTIFY_SOCKET."""
    run = tmp_path / "run"
    (run / "signet-vc").mkdir(parents=True, mode=0o700)
    sock = run / "signet-vc" / "agent.sock"
    ready = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(ready))
        notify.settimeout(60)
        log = tmp_path / "agent.out"
        env = {**card.env, "XDG_RUNTIME_DIR": str(run), "NOTIFY_SOCKET": str(ready),
               "PYTHONPATH": str(ROOT / "app")}  # fmt: skip
        activator = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(sock), "-E", "NOTIFY_SOCKET",
             "-E", "XDG_RUNTIME_DIR", "-E", "PYTHONPATH", "-E", "HOME",
             sys.executable, "-m", "signet.vc", "agent", "--no-notify"],
            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            for _ in range(100):
                if sock.exists():
                    break
                time.sleep(0.1)
            consumer = {"XDG_RUNTIME_DIR": str(run), **_config(card, "activated")}
            listing = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin",
                               SECRET, "--list-objects", env_extra=consumer).stdout  # fmt: skip
            assert "Private Key Object" in listing
            assert notify.recv(100) == b"READY=1"
        finally:
            activator.terminate()  # SIGTERM: the agent ends its logins before it leaves
            activator.wait(timeout=20)
    shown = log.read_text()
    assert f"listening on {sock}" in shown and "by password: new" in shown, shown
    assert "ended: the agent stopped" in shown, shown
    assert sock.exists()  # the socket is systemd's: the agent leaves it where it was


def test_device_login_approved_in_the_browser(card: Card, tmp_path: Path) -> None:
    """An account with `device_client`: the agent shows a code, alice approves it on Signet's
    page (as a federated or passkey user would, after her own login there), the application's
    C_Login returns and it signs; a denial is CKR_FUNCTION_CANCELED."""
    added = signet_cli("oauth2-clients", "add", "Signet Card", "--public", "--redirect-uri",
                       "http://127.0.0.1:56849/callback", env=card.server_env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    client_id = re.search(r"client_id\W+(\S+)", added.stdout).group(1)
    askpass = tmp_path / "pin-askpass"
    askpass.write_text(f"#!/bin/sh\necho {SECRET}\n")
    askpass.chmod(0o755)
    with agent(card, "device", "--askpass", str(askpass)) as running:
        env = {**running["env"], **_config(card, "device", f'device_client = "{client_id}"\n')}
        for decision in ("approve", "deny"):
            key_id, before = _key_id(card), len(running["log"].read_text())
            signer = _sign(card, env, key_id, f"device-{decision}")
            shown = _wait_for(running["log"], r"open (\S+) and enter ([A-Z]{4}-[A-Z]{4})", before)
            browser = Browser(card.url)
            page = browser.open(f"{shown.group(1)}?user_code={shown.group(2)}")
            assert page.status_code == 200, page.text
            assert "Log in to Signet" in browser.submit().text
            consent = browser.submit(username="alice", password=SECRET)
            assert "Signet Card" in consent.text, consent.text
            browser.submit(decision=decision)
            out, err = signer.communicate(timeout=120)
            if decision == "approve":
                assert signer.returncode == 0, out + err
                _verify(card, card.rsa, card.tmp / "device-approve.sig",
                        card.tmp / "device-approve.in")  # fmt: skip
                assert "by device: new" in running["log"].read_text()
                assert "1 login(s) ended" in _signet_vc(card, running, "logout")
            else:
                assert signer.returncode != 0 and "CKR_FUNCTION_CANCELED" in err, out + err
                assert "denied" in running["log"].read_text()


def _wait_for(log: Path, pattern: str, seen: int, timeout: float = 60) -> re.Match[str]:
    """The pattern in what the log says after its first ``seen`` characters."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text()
        found = re.search(pattern, text[seen:])
        if found:
            return found
        assert time.monotonic() < deadline, f"no {pattern!r} in the agent's log:\n{text}"
        time.sleep(0.2)
