"""The per-user agent: applications log in and sign through it (one login at the service,
shared), it shows each signature's application, mechanism and hash, refuses other users'
processes, and an agent that is not running is a PKCS#11 error in the host, not a crash."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

from signet.vc.agent import Agent, serve
from tests.vc.conftest import MODULE, ROOT, SECRET, Card

DATA = b"signed through the signet-vc agent\n"


def test_sign_through_the_agent(card: Card) -> None:
    run = card.tmp / "run"
    run.mkdir(exist_ok=True)
    log = card.tmp / "agent.out"
    env = {**card.env, "XDG_RUNTIME_DIR": str(run), "PYTHONPATH": str(ROOT / "app")}
    agent = subprocess.Popen(
        [sys.executable, "-m", "signet.vc", "agent"], env=env, stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    config = card.tmp / "agent.toml"
    config.write_text(
        f'[[account]]\nserver = "{card.url}"\nuser = "alice"\nlabel = "alice"\nagent = true\n'
    )
    consumer = {**card.env, "XDG_RUNTIME_DIR": str(run), "SIGNET_VC_CONFIG": str(config)}
    try:
        for _ in range(100):
            if (run / "signet-vc" / "agent.sock").exists():
                break
            time.sleep(0.1)
        assert oct((run / "signet-vc").stat().st_mode & 0o777) == "0o700"
        listing = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET,
                           "--list-objects", env_extra=consumer).stdout  # fmt: skip
        key_id = listing.split("Private Key Object")[1].split("ID:")[1].split()[0]
        (card.tmp / "agent.in").write_bytes(DATA)
        for _ in range(2):  # the second application shares the first one's login
            card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET,
                     "--sign", "--id", key_id, "-m", "SHA256-RSA-PKCS",
                     "-i", str(card.tmp / "agent.in"), "-o", str(card.tmp / "agent.sig"),
                     env_extra=consumer)  # fmt: skip
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    shown = log.read_text()
    assert shown.count(hashlib.sha256(DATA).hexdigest()) == 2, shown
    assert "pkcs11-tool (pid" in shown and "pkcs1v15 sha256" in shown
    assert shown.count(": new") == 1 and shown.count(": shared") == 2, shown
    cert = card.certificate(card.rsa)
    pub = card.tmp / "agent-pub.pem"
    card.run("openssl", "x509", "-in", str(cert), "-pubkey", "-noout", "-out", str(pub))
    verified = card.run("openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                        str(card.tmp / "agent.sig"), str(card.tmp / "agent.in"))  # fmt: skip
    assert "Verified OK" in verified.stdout
    # the agent gone: the host gets an error, and goes on
    done = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET,
                    "--list-objects", env_extra=consumer, check=False)  # fmt: skip
    assert done.returncode == 1 and "CKR_DEVICE_ERROR" in done.stderr


def test_other_users_get_no_answer(tmp_path) -> None:
    path = tmp_path / "signet-vc" / "agent.sock"
    server = serve(path, Agent(uid=os.getuid() + 1))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(path))
            conn.sendall(json.dumps({"op": "login", "server": "x", "user": "y"}).encode() + b"\n")
            try:
                answer = conn.recv(100)
            except ConnectionResetError:  # closed with the request unread
                answer = b""
            assert answer == b""  # no word to another user's process
    finally:
        server.shutdown()
        server.server_close()


def test_malformed_requests_get_an_error_answer(tmp_path) -> None:
    """Whatever a process of the same user sends, the agent answers with an error and keeps
    serving: no dropped connection, no traceback."""
    path = tmp_path / "signet-vc" / "agent.sock"
    server = serve(path, Agent(out=(tmp_path / "log").open("w")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(30)
            conn.connect(str(path))
            replies = conn.makefile("rwb")
            for request in (
                b"not json",
                b'["a list"]',
                b'{"op": "login", "server": "not a url", "user": "u", "password": "p"}',
                b'{"op": "login", "server": "http://127.0.0.1:9", "user": "u", "password": "p"}',
                b'{"op": "login", "server": "x", "user": "u", "device_client": 5}',
                b'{"op": "sign_hash", "server": "x", "user": "u"}',
                b'{"op": "nonsense"}',
            ):
                replies.write(request + b"\n")
                replies.flush()
                answer = json.loads(replies.readline())
                assert answer["error"] and answer["description"], (request, answer)
            replies.write(b'{"op": "status"}\n')
            replies.flush()
            assert json.loads(replies.readline()) == {"result": []}  # still serving
    finally:
        server.shutdown()
        server.server_close()
