"""Two nodes, one cluster (issue 18 §5): two `signet serve` nodes behind nginx (the
`signet_balancer` role's template) on one PostgreSQL database and one token. Clients authorize
and sign from several threads while node A is killed outright (SIGKILL to its master and
workers); every signHash ends in a signature that verifies or a clear error whose outcome the
audit trail tells, no SAD signs twice, the survivor serves everything after, and the trail
verifies with `signet audit verify`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import select

from signet.store import AuditRecord
from tests.cluster import Node, balancer
from tests.helpers import enrol, port_in, signet_cli

PIN = "975310"
PASSWORD = "cluster password 1"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
CLIENTS = 6
# This test's own ports: the balancer, node A, node B.
PORTS = (range(57100, 57116), range(57116, 57133), range(57133, 57150))


CUT_OFF = 0  # an Attempt's status when its answer was cut off by its node's death


@dataclass
class Attempt:
    digest: str
    sad: str
    status: int
    body: dict
    node: str
    started: float  # time.monotonic() before its authorize


def _authorize(http: requests.Session, url: str, cred: str, digest: str) -> requests.Response:
    return http.post(
        f"{url}/csc/v2/credentials/authorize",
        json={
            "credentialID": cred,
            "numSignatures": 1,
            "hashes": [digest],
            "hashAlgorithmOID": SHA256,
            "authData": [{"id": "PIN", "value": PIN}],
        },
        timeout=60,
    )


def _sign(http: requests.Session, url: str, cred: str, sad: str, digest: str) -> requests.Response:
    return http.post(
        f"{url}/csc/v2/signatures/signHash",
        json={
            "credentialID": cred,
            "SAD": sad,
            "hashes": [digest],
            "hashAlgorithmOID": SHA256,
            "signAlgo": ECDSA_SHA256,
        },
        timeout=60,
    )


def _json(reply: requests.Response) -> dict:
    try:
        return reply.json()
    except ValueError:
        return {"text": reply.text[:200]}


def _client(url, token, cred, stop: threading.Event, out: list[Attempt], errors: list[str]):
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    while not stop.is_set():
        digest = base64.b64encode(hashlib.sha256(os.urandom(16)).digest()).decode()
        started = time.monotonic()
        try:
            granted = _authorize(http, url, cred, digest)
        except requests.RequestException as exc:
            if not _cut_off(exc):  # the balancer never goes away
                errors.append(f"authorize: {exc.__class__.__name__}: {exc}")
            continue  # a node lost while it answered: that SAD never reached us
        if granted.status_code != 200:
            # A node lost with the authorize in flight: that SAD never reached us.
            if granted.status_code != 502:
                errors.append(f"authorize {granted.status_code}: {granted.text[:200]}")
            continue
        sad = granted.json()["SAD"]
        try:
            signed = _sign(http, url, cred, sad, digest)
        except requests.RequestException as exc:
            if not _cut_off(exc):
                errors.append(f"signHash: {exc.__class__.__name__}: {exc}")
            else:  # nginx had passed on the head of A's answer when A died: outcome unknown
                out.append(Attempt(digest, sad, CUT_OFF, {}, "", started))
            continue
        node = signed.headers.get("X-Signet-Node", "")
        out.append(Attempt(digest, sad, signed.status_code, _json(signed), node, started))


def _cut_off(exc: requests.RequestException) -> bool:
    """An answer whose head nginx had passed on when its node died: the body ends short, or
    the connection closes on it. What the balancer itself would never do to a whole answer."""
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return True
    return isinstance(exc, requests.ConnectionError) and "Connection aborted" in str(exc)


def _signed_in_trail(services) -> Counter[str]:
    """How often each hash appears in a committed `signature.created` record."""
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.details).where(AuditRecord.event == "signature.created")
        ).scalars()
        return Counter(h for details in rows for h in json.loads(details)["hashes"])


def _count(services, event: str) -> int:
    with services.database.transaction(read_only=True) as session:
        return len(session.execute(select(AuditRecord.seq).where(AuditRecord.event == event)).all())


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _verifies(cert: x509.Certificate, digest: str, signature: str) -> bool:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(
        base64.b64decode(signature),
        base64.b64decode(digest),
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )
    return True


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_nodes_lose_one_and_no_signature_outcome(services, settings_env, tmp_path) -> None:
    from signet.signing.users import add_user

    add_user(services, "carol", password=PASSWORD, display_name=None, email="c@x.test", actor="t")
    cred = enrol(services, "carol", key="ec-p256", activation="pin", pin=PIN).credential_id
    base_env = {k: v for k, v in os.environ.items() if k != "SIGNET_CONFIG"}
    nodes: dict[str, Node] = {}
    stop = threading.Event()
    for name, ports in zip("AB", PORTS[1:], strict=True):
        env = {
            **base_env,
            "SIGNET_AUDIT__CHECKPOINT_FILE": str(tmp_path / f"checkpoints-{name}.jsonl"),
        }
        nodes[name] = Node(name, port_in(ports), 2, env, tmp_path / f"node-{name}.log")
    a, b = nodes["A"], nodes["B"]
    try:
        for node in nodes.values():
            node.wait_healthy()
        front = port_in(PORTS[0])
        with balancer(front, [a.port, b.port], tmp_path / "nginx"):
            url = f"http://127.0.0.1:{front}"
            login = requests.post(f"{url}/csc/v2/auth/login", auth=("carol", PASSWORD), timeout=30)
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            info = requests.post(
                f"{url}/csc/v2/credentials/info",
                json={"credentialID": cred},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            cert = x509.load_der_x509_certificate(
                base64.b64decode(info.json()["cert"]["certificates"][0])
            )

            attempts: list[Attempt] = []
            errors: list[str] = []
            threads = [
                threading.Thread(
                    target=_client, args=(url, token, cred, stop, attempts, errors), daemon=True
                )
                for _ in range(CLIENTS)
            ]
            for thread in threads:
                thread.start()
            # Kill A once it has signed some, with requests in flight on both nodes.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if sum(x.status == 200 and x.node.endswith(f":{a.port}") for x in attempts) >= 10:
                    break
                time.sleep(0.05)
            victims = a.processes()
            assert len(victims) >= 3, victims  # master and two workers
            a.kill()
            killed = time.monotonic()
            while any(_alive(pid) for pid in victims) and time.monotonic() < killed + 10:
                time.sleep(0.02)  # SIGKILL is not instant for a process in a system call
            assert not any(_alive(pid) for pid in victims)
            time.sleep(3)
            stop.set()
            for thread in threads:
                thread.join(timeout=90)
                assert not thread.is_alive(), "a client hangs"
            assert not errors, errors[:5]

            # Node B directly: what a spent SAD gets there, and what a 502 left behind.
            b_url = f"http://127.0.0.1:{b.port}"
            direct = requests.Session()
            direct.headers["Authorization"] = f"Bearer {token}"
            trail = _signed_in_trail(services)
            outcomes: Counter[str] = Counter()
            for attempt in attempts:
                if attempt.status == 200:
                    assert _verifies(cert, attempt.digest, attempt.body["signatures"][0])
                    assert trail[attempt.digest] == 1, attempt
                    outcomes["signed"] += 1
                    continue
                # Only the requests that node A held when it died fail, with nginx's 502 (or,
                # when A died while nginx passed its answer on, an answer cut short): nginx
                # passed none of them on to B (it never resends a POST).
                assert attempt.status in (502, CUT_OFF), attempt
                assert attempt.status == CUT_OFF or attempt.node.endswith(f":{a.port}"), attempt
                again = _sign(direct, b_url, cred, attempt.sad, attempt.digest)
                if trail[attempt.digest]:  # A committed the signature, the answer was lost
                    assert again.status_code == 400, again.text
                    assert again.json()["error"] == "invalid_request", again.text
                    outcomes["signed, answer lost"] += 1
                elif again.status_code == 200:  # A died before its spend's commit: SAD whole
                    assert _verifies(cert, attempt.digest, again.json()["signatures"][0])
                    outcomes["rolled back, signed on B"] += 1
                else:  # A died between the spend's commit and the records' (sign_hash: the
                    # count is lost, never added): spent, and no signature left A
                    assert again.status_code == 400, again.text
                    assert "numSignatures exceeded" in again.json()["error_description"]
                    assert attempt.digest not in _signed_in_trail(services)
                    outcomes["spent, not signed"] += 1
            # A SAD A spent is spent for B too: the CSC error, and B records the refusal.
            spent_on_a = next(
                x for x in attempts if x.status == 200 and x.node.endswith(f":{a.port}")
            )
            rejected = _count(services, "sad.rejected")
            reuse = _sign(direct, b_url, cred, spent_on_a.sad, spent_on_a.digest)
            assert reuse.status_code == 400, reuse.text
            assert reuse.json()["error"] == "invalid_request"
            assert "numSignatures exceeded" in reuse.json()["error_description"]
            assert _count(services, "sad.rejected") == rejected + 1
            # Every hash signed exactly once over the whole run, but those A spent and died
            # before signing (their SAD refused by B above).
            trail = _signed_in_trail(services)
            lost = {x.digest for x in attempts if x.status in (502, CUT_OFF)} - set(trail)
            assert set(trail) == {x.digest for x in attempts} - lost
            assert set(trail.values()) == {1}
            assert len(lost) == outcomes["spent, not signed"]
            # Begun once A was gone (and nginx had seen its idle connections close): all
            # signed, by B (nginx may have tried A's port first: refused, so passed on).
            after_kill = [x for x in attempts if x.started > killed + 0.5]
            assert after_kill
            assert all(x.status == 200 and x.node.endswith(f":{b.port}") for x in after_kill)

            # The survivor serves everything through the balancer.
            survivor = requests.Session()
            survivor.headers["Authorization"] = f"Bearer {token}"
            for _ in range(4):
                digest = base64.b64encode(hashlib.sha256(os.urandom(8)).digest()).decode()
                granted = _authorize(survivor, url, cred, digest)
                assert granted.status_code == 200, granted.text
                signed = _sign(survivor, url, cred, granted.json()["SAD"], digest)
                assert signed.status_code == 200, signed.text
                assert signed.headers["X-Signet-Node"] == f"127.0.0.1:{b.port}"
                assert _verifies(cert, digest, signed.json()["signatures"][0])
        print(f"cluster: {len(attempts)} signHash, {dict(outcomes)}")
    finally:
        stop.set()
        for node in nodes.values():
            node.stop()
    # The trail verifies against both nodes' checkpoints (A's ends when it was killed).
    both = tmp_path / "checkpoints.jsonl"
    both.write_text(
        "".join(
            (tmp_path / f"checkpoints-{n}.jsonl").read_text()
            for n in "AB"
            if (tmp_path / f"checkpoints-{n}.jsonl").exists()
        )
    )
    verified = signet_cli("audit", "verify", "--checkpoints", str(both), env=base_env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit trail intact" in verified.stdout
    assert verified.stdout.count("checkpoint") >= 1
