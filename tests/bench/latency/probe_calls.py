"""The PKCS#11 calls Signet's Hsm makes for a signature or MAC, as the latency shim's trace
(SIGNET_LATENCY_TRACE) records them, in a process of its own: `probe_calls.py TOKEN PIN_FILE
SESSIONS TRACE`, SOFTHSM2_CONF set by the caller.

With an RSA-2048, a P-256 and an HMAC key, each found once before counting: PKCS#1 v1.5, PSS,
ECDSA and HMAC through the Hsm; the same MAC through python-pkcs11's own `sign`; a signature
whose first buffer is too small; a mechanism the key refuses (ECDSA with the RSA key), through
the Hsm and through python-pkcs11; and the EC key destroyed behind the Hsm's back, then used by
both. Prints JSON:
per operation its calls ("C_Sign 0x0": name and return value) and its output (base64) or error
(class and message), and the public keys (PEM), for the caller to verify."""

import base64
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import serialization
from pkcs11 import Mechanism, ObjectClass

from signet.algorithms import KeySpec
from signet.config import HsmSettings
from signet.hsm import Hsm, oneshot

SHIM = str(Path(__file__).resolve().parents[3] / "build/bench/libsignet-latency.so")
DIGEST = hashlib.sha256(b"one round trip less").digest()
RECORD = b"an audit record to MAC"


def main() -> None:
    token, pin_file, sessions, trace = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    hsm = Hsm(
        HsmSettings(
            module=SHIM,
            token_label=token,
            pin_file=pin_file,
            sessions=sessions,
            thread_safe=sessions > 1,
            library_env={
                "SIGNET_LATENCY_US": "0",
                "SIGNET_LATENCY_TRACE": trace,
                "SOFTHSM2_CONF": os.environ["SOFTHSM2_CONF"],
            },
        )
    )

    def counted(action: Callable[[], bytes]) -> dict[str, Any]:
        mark = len(Path(trace).read_text().splitlines())
        try:
            outcome: dict[str, Any] = {"value": base64.b64encode(action()).decode()}
        except Exception as exc:
            outcome = {"error": type(exc).__name__, "message": str(exc)}
        outcome["calls"] = Path(trace).read_text().splitlines()[mark:]
        return outcome

    rsa, ec, mac = (f"calls-{kind}-{os.getpid()}" for kind in ("rsa", "ec", "mac"))
    hsm.generate_key(rsa, KeySpec.parse("rsa-2048"))
    hsm.generate_key(ec, KeySpec.parse("ec-p256"))
    hsm.ensure_secret_key(mac)
    operations = {
        "pkcs1v15": lambda: hsm.sign_digest(rsa, DIGEST, "sha256", "pkcs1v15"),
        "pss": lambda: hsm.sign_digest(rsa, DIGEST, "sha256", "pss"),
        "ecdsa": lambda: hsm.sign_digest(ec, DIGEST, "sha256", "ecdsa"),
        "hmac": lambda: hsm.hmac_sha256(mac, RECORD),
    }
    for operation in operations.values():  # sessions opened and keys found: not counted
        operation()
    report: dict[str, Any] = {kind: counted(operation) for kind, operation in operations.items()}
    report["public"] = {
        label: hsm.public_key(label)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        for label in (rsa, ec)
    }
    report["labels"], report["sessions"] = {"rsa": rsa, "ec": ec}, sessions

    # python-pkcs11 on its own, in a session of its own (the Hsm's login covers it)
    session = pkcs11.lib(SHIM).get_token(token_label=token).open(rw=True)
    mac_key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=mac)
    assert mac_key.key_type is not None  # python-pkcs11 reads it once a key object: not counted
    report["pkcs11_hmac"] = counted(lambda: mac_key.sign(RECORD, mechanism=Mechanism.SHA256_HMAC))

    size = oneshot.OUTPUT_BYTES
    oneshot.OUTPUT_BYTES = 16  # smaller than an RSA-2048 signature's 256 bytes
    try:
        report["small_buffer"] = counted(operations["pkcs1v15"])
    finally:
        oneshot.OUTPUT_BYTES = size

    ec_key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ec)
    assert ec_key.key_type is not None
    ec_key.destroy()  # the Hsm still holds the handle it found
    report["gone"] = counted(operations["ecdsa"])
    report["pkcs11_gone"] = counted(lambda: ec_key.sign(DIGEST, mechanism=Mechanism.ECDSA))

    # ECDSA with the RSA key (not PSS with the EC key: SoftHSM 2.6.1 crashes on that, through
    # python-pkcs11 as well). Last: the Hsm then gives up on its session, and closing it logs
    # the application out.
    rsa_key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=rsa)
    assert rsa_key.key_type is not None
    report["pkcs11_wrong_key"] = counted(lambda: rsa_key.sign(DIGEST, mechanism=Mechanism.ECDSA))
    report["wrong_key"] = counted(lambda: hsm.sign_digest(rsa, DIGEST, "sha256", "ecdsa"))
    session.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
