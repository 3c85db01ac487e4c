"""Signet's Hsm through the latency shim, in a process of its own (SoftHSM loaded straight by
the test process and again behind the shim would be initialised twice): `probe_hsm.py TOKEN
PIN_FILE SESSIONS THREADS SIGNS`. Signs with a P-256 key from THREADS threads, then destroys
the key, makes another under the same label and signs once more. Prints JSON: the wall time
of the threaded part, the signatures and the public keys (PEM), for the caller to verify."""

import base64
import json
import os
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from signet.algorithms import KeySpec
from signet.config import HsmSettings
from signet.hsm import Hsm

SHIM = str(Path(__file__).resolve().parents[3] / "build/bench/libsignet-latency.so")


def pem(hsm: Hsm, label: str) -> str:
    return (
        hsm.public_key(label)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def main() -> None:
    token, pin_file = sys.argv[1], sys.argv[2]
    sessions, threads, signs = (int(a) for a in sys.argv[3:6])
    hsm = Hsm(
        HsmSettings(
            module=SHIM,
            token_label=token,
            pin_file=pin_file,
            sessions=sessions,
            thread_safe=sessions > 1,
            library_env={k: os.environ[k] for k in ("SIGNET_LATENCY_US", "SOFTHSM2_CONF")},
        )
    )
    spec, digest = KeySpec.parse("ec-p256"), bytes(range(32))
    label = f"probe-{os.getpid()}"
    hsm.generate_key(label, spec)
    first = pem(hsm, label)
    signatures: list[str] = []

    def work() -> None:
        for _ in range(signs):
            signature = hsm.sign_digest(label, digest, "sha256", "ecdsa")
            signatures.append(base64.b64encode(signature).decode())

    warm = [
        threading.Thread(target=hsm.sign_digest, args=(label, digest, "sha256", "ecdsa"))
        for _ in range(threads)
    ]
    for worker in warm:  # the pool opens its sessions and finds the key: not timed
        worker.start()
    for worker in warm:
        worker.join()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    hsm.destroy_key(label)
    hsm.generate_key(label, spec)
    after = base64.b64encode(hsm.sign_digest(label, digest, "sha256", "ecdsa")).decode()
    print(
        json.dumps(
            {
                "wall": wall,
                "digest": base64.b64encode(digest).decode(),
                "first": first,
                "signatures": signatures,
                "second": pem(hsm, label),
                "after": after,
            }
        )
    )


if __name__ == "__main__":
    main()
