"""More consumers of libsignet-vc.so, each signature verified: GnuTLS's p11tool (its own
sign-and-verify test), NSS (modutil, certutil, and tstclnt authenticating TLS with the remote
key against `openssl s_server -Verify`) and OpenSSH (ssh-add -s into ssh-agent, then
ssh-keygen -Y sign through the agent and -Y verify, and a login to a local sshd)."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import port_in
from tests.vc.conftest import MODULE, SECRET, Card

PORTS = iter(range(56990, 57000))


def test_p11tool(card: Card) -> None:
    tokens = card.run("p11tool", "--provider", str(MODULE), "--list-tokens").stdout
    assert "Label: alice" in tokens and "Manufacturer: Signet" in tokens
    certs = card.run("p11tool", "--provider", str(MODULE), "--login", "--set-pin", SECRET,
                     "--list-all-certs", "pkcs11:token=alice").stdout  # fmt: skip
    assert certs.count("Type: X.509 Certificate") == 2
    for label in ("alice rsa-2048", "alice ec-p256"):
        done = card.run(
            "p11tool", "--provider", str(MODULE), "--login", "--set-pin", SECRET,
            "--test-sign", f"pkcs11:token=alice;object={label.replace(' ', '%20')}",
            env_extra=card.askpass_env,
        )  # fmt: skip
        assert "Verifying against public key in the token... ok" in done.stdout + done.stderr


def _s_server(card: Card, port: int) -> subprocess.Popen[str]:
    key, cert = card.tmp / "nss-server.key", card.tmp / "nss-server.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=localhost", "-days", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-Verify", "2", "-verify_return_error", "-CAfile", str(card.root_pem),
         "-www"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.kill()
    raise AssertionError("s_server did not start")


def test_nss(card: Card) -> None:
    db = card.tmp / "nssdb"
    db.mkdir(exist_ok=True)
    env = card.askpass_env
    card.run("certutil", "-N", "-d", f"sql:{db}", "--empty-password")
    card.run("modutil", "-dbdir", f"sql:{db}", "-add", "signet-vc", "-libfile", str(MODULE),
             "-force", env_extra=env)  # fmt: skip
    listed = card.run("modutil", "-dbdir", f"sql:{db}", "-list", "signet-vc", env_extra=env)
    assert "Token Name: alice" in listed.stdout
    pwfile = card.tmp / "nss.pw"
    pwfile.write_text(SECRET + "\n")
    certs = card.run("certutil", "-L", "-d", f"sql:{db}", "-h", "alice", "-f", str(pwfile),
                     env_extra=env).stdout  # fmt: skip
    assert "alice:alice rsa-2048" in certs and "alice:alice ec-p256" in certs
    keys = card.run("certutil", "-K", "-d", f"sql:{db}", "-h", "alice", "-f", str(pwfile),
                    env_extra=env).stdout  # fmt: skip
    assert "alice rsa-2048" in keys
    port = next(PORTS)
    server = _s_server(card, port)
    card.askpass_log.unlink(missing_ok=True)
    client = subprocess.Popen(
        ["tstclnt", "-h", "127.0.0.1", "-p", str(port), "-d", f"sql:{db}", "-o",
         "-n", "alice:alice rsa-2048", "-w", SECRET, "-V", "tls1.2:tls1.3"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**card.env, **env},
    )  # fmt: skip
    try:
        # tstclnt stays after the page until the server goes: the page is what counts
        page, errors = client.communicate("GET / HTTP/1.0\r\n\r\n", timeout=30)
    except subprocess.TimeoutExpired:
        client.kill()
        page, errors = client.communicate()
    finally:
        server.kill()
    out, _ = server.communicate(timeout=30)
    assert "Client certificate" in page, f"{page}\n{errors}\n{out}"
    assert "TLSv1.3" in page
    assert "SIGNET_VC_APPLICATION=tstclnt" in card.askpass_log.read_text()


def test_ssh_agent(card: Card) -> None:
    # ssh-pkcs11-helper cannot log in per signature (not interactive): this account's keys do
    # not say CKA_ALWAYS_AUTHENTICATE and the module asks the PIN through askpass at C_Sign
    env = dict(card.sign_ask_env)
    askpass = card.tmp / "ssh-askpass"
    askpass.write_text(f"#!/bin/sh\necho {SECRET}\n")
    askpass.chmod(0o755)
    socket_path = card.tmp / "agent.sock"
    env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    agent_log = card.tmp / "agent.log"
    agent = subprocess.Popen(
        ["ssh-agent", "-d", "-a", str(socket_path), "-P", f"{MODULE}"],
        env=env, stdout=subprocess.DEVNULL, stderr=agent_log.open("w"),
    )  # fmt: skip
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            time.sleep(0.05)
        env["SSH_AUTH_SOCK"] = str(socket_path)
        card.run("ssh-add", "-s", str(MODULE), env_extra=env, stdin=subprocess.DEVNULL)
        keys = card.run("ssh-add", "-L", env_extra=env).stdout.splitlines()
        assert len(keys) == 2, keys
        rsa = next(k for k in keys if k.startswith("ssh-rsa"))
        pub = card.tmp / "alice-rsa.pub"
        pub.write_text(rsa + "\n")
        message = card.tmp / "ssh-message.txt"
        message.write_text("signed by ssh-agent through the virtual card\n")
        signed = card.run("ssh-keygen", "-Y", "sign", "-f", str(pub), "-n", "file",
                          str(message), env_extra=env, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        assert signed.returncode == 0, agent_log.read_text()[-4000:]
        signers = card.tmp / "allowed_signers"
        signers.write_text(f"alice@example.test {rsa}\n")
        with message.open() as data:
            verified = card.run(
                "ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "alice@example.test",
                "-n", "file", "-s", f"{message}.sig", env_extra=env, stdin=data,
            )  # fmt: skip
        assert "Good" in verified.stdout + verified.stderr
        assert "SIGNET_VC_APPLICATION=ssh-pkcs11-hel" in card.askpass_log.read_text()
        _ssh_login(card, env, rsa)
    finally:
        agent.kill()
        agent.wait()


def _ssh_login(card: Card, env: dict[str, str], authorized: str) -> None:
    """A login to a local sshd with the remote key in ssh-agent: sshd verifies the signature
    over its session, the shell runs a command."""
    sshd_dir = card.tmp / "sshd"
    sshd_dir.mkdir(exist_ok=True)
    host_key = sshd_dir / "host_ed25519"
    if not host_key.exists():
        card.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    (sshd_dir / "authorized_keys").write_text(authorized + "\n")
    port = port_in(range(56980, 56990))
    config = sshd_dir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {sshd_dir / 'sshd.pid'}\nAuthorizedKeysFile {sshd_dir / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation folder
    log = sshd_dir / "sshd.log"
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))  # fmt: skip
    try:
        for _ in range(100):
            if "Server listening" in log.read_text():
                break
            time.sleep(0.05)
        user = getpass.getuser()
        login = card.run(
            "ssh", "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "PubkeyAuthentication=yes", f"{user}@127.0.0.1", "echo", "signed-in-by-signet",
            env_extra=env, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert login.stdout.strip() == "signed-in-by-signet", login.stderr + log.read_text()
        fingerprint = card.run("ssh-keygen", "-l", "-f", str(sshd_dir / "authorized_keys"))
        assert f"Accepted publickey for {user}" in log.read_text()
        assert fingerprint.stdout.split()[1] in log.read_text()  # with the remote key
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


@pytest.fixture(autouse=True)
def _no_tty_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    os.environ.pop("SSH_AUTH_SOCK", None)
