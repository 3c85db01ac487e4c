"""The peer `bench_sign.py` measures beside Signet: certomancer-csc-dummy (PyPI), a small CSC
v1 server on aiohttp with no authentication, no database and no HSM, signing in software with
a key of the test PKI (tests/pki/certomancer.yml, `signer-ec`, P-256). Driven like Signet's
"SAD reused, one hash" row (the same client processes and connections, one authorize per
connection outside the measurement), it shows what a request costs a Python CSC server that
does none of Signet's work: the issue 18 §4 comparison, in the same run on the same cores."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL = "signet/signer-ec"  # <architecture>/<certificate label> in the test PKI
SIGN_ALGO = "1.2.840.10045.4.3.2"  # ecdsa-with-SHA256
NUM_SIGNATURES = 1  # no hash pinning: the peer checks no count, only hashes a request

# The server: the package's own app and routes, bound to 127.0.0.1 on the given port.
_SERVE = """
import sys
from aiohttp import web
from certomancer import registry
from csc_dummy.csc_dummy_server import CSCWithCertomancer, DummyServiceParams
config = registry.CertomancerConfig.from_file(sys.argv[1], key_search_dir=sys.argv[2])
csc = CSCWithCertomancer(config, service_params=DummyServiceParams(hash_pinning_required=False))
csc.register_routes()
web.run_app(csc.app, host="127.0.0.1", port=int(sys.argv[3]), print=None, access_log=None)
"""


class Peer:
    """certomancer-csc-dummy in a process of its own, on throw-away keys in `work`."""

    def __init__(self, work: Path, port: int) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.pki.signet_test_pki import CONFIG_PATH, generate_keys

        keys = work / "peer-keys"
        generate_keys(keys)
        self.port = port
        self.log = (work / "peer.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(CONFIG_PATH), str(keys), str(port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"certomancer-csc-dummy exited: see {work / 'peer.log'}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise SystemExit("certomancer-csc-dummy did not listen within 30 s")

    def sad(self) -> str:
        status, answer = _post(
            _connection(self.port),
            "credentials/authorize",
            {"credentialID": CREDENTIAL, "numSignatures": NUM_SIGNATURES},
        )
        if status != 200:
            raise SystemExit(f"certomancer-csc-dummy authorize: {status} {answer}")
        return str(answer["SAD"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def _connection(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def _post(conn: http.client.HTTPConnection, method: str, payload: dict[str, Any]) -> Any:
    conn.request(
        "POST",
        f"/csc/v1/{method}",
        json.dumps(payload).encode(),
        {"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data) if data else None
    except ValueError:
        return response.status, data[:200].decode(errors="replace")


def peer_client(
    port: int, sads: list[str], start_at: float, warm: float, seconds: float
) -> dict[str, Any]:
    """One client process: a thread a connection, each signing one fresh hash a request with
    its SAD until the time is up; the requests answered within the window, and this
    process's CPU."""
    t0 = time.perf_counter() + (start_at - time.time())
    begin, end = t0 + warm, t0 + warm + seconds
    counts = [0] * len(sads)
    done = [0] * len(sads)
    errors: list[str] = []
    samples: list[tuple[str, str]] = []

    def run(index: int, sad: str) -> None:
        conn = _connection(port)
        try:
            while time.perf_counter() < t0:
                time.sleep(0.0005)
            while (started := time.perf_counter()) < end and len(errors) < 20:
                digest = hashlib.sha256(os.urandom(16)).digest()
                payload = {
                    "credentialID": CREDENTIAL,
                    "SAD": sad,
                    "hash": [base64.b64encode(digest).decode()],
                    "signAlgo": SIGN_ALGO,
                }
                try:
                    status, answer = _post(conn, "signatures/signHash", payload)
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(f"{exc.__class__.__name__}: {exc}")
                    conn.close()
                    conn = _connection(port)
                    continue
                done[index] += 1
                if status != 200 or len(answer.get("signatures", ())) != 1:
                    errors.append(f"signHash {status}: {answer}")
                    continue
                if len(samples) < 2:
                    samples.append((payload["hash"][0], answer["signatures"][0]))
                if started >= begin and time.perf_counter() <= end:
                    counts[index] += 1
        finally:
            conn.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=run, args=(i, s), daemon=True) for i, s in enumerate(sads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=warm + seconds + 60)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": sum(counts),
        "done": sum(done),
        "errors": errors[:3],
        "error_count": len(errors),
        "samples": samples,
        "cpu": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }


def certificate(work: Path) -> Any:
    """The peer's signing certificate (the test PKI's `signer-ec`), to verify its answers."""
    from certomancer import registry
    from cryptography import x509

    from tests.pki.signet_test_pki import CONFIG_PATH

    config = registry.CertomancerConfig.from_file(
        str(CONFIG_PATH), key_search_dir=str(work / "peer-keys")
    )
    arch = config.get_pki_arch(registry.ArchLabel("signet"))
    cert = arch.get_cert(registry.CertLabel("signer-ec"))
    return x509.load_der_x509_certificate(cert.dump())
