"""Sign through the latency shim with python-pkcs11, in a process of its own (python-pkcs11
loads one library a process): `probe.py TOKEN_LABEL PIN THREADS SIGNS`, SOFTHSM2_CONF and
SIGNET_LATENCY_* set by the caller. Prints JSON: the wall time, and each signature with the
public key, for the caller to verify."""

import base64
import json
import os
import sys
import threading
import time

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

SHIM = "build/bench/libsignet-latency.so"


def main() -> None:
    token_label, pin, threads, signs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    key_label = f"probe-{os.getpid()}"
    token = pkcs11.lib(SHIM).get_token(token_label=token_label)
    keeper = token.open(user_pin=pin, rw=True)  # the login the other sessions share
    curve = encode_named_curve_parameters("secp256r1")
    params = keeper.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: curve}, local=True)
    public, _ = params.generate_keypair(store=False, label=key_label)
    digest = bytes(range(32))
    results: list[str] = []

    ready = threading.Barrier(threads + 1)

    def work() -> None:
        with token.open() as session:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
            ready.wait()  # sessions open and keys found: only the signing is timed
            for _ in range(signs):
                signature = key.sign(digest, mechanism=Mechanism.ECDSA)
                results.append(base64.b64encode(signature).decode())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    point = bytes(public[Attribute.EC_POINT])
    print(
        json.dumps(
            {
                "wall": wall,
                "digest": base64.b64encode(digest).decode(),
                "point": base64.b64encode(point).decode(),
                "signatures": results,
            }
        )
    )


if __name__ == "__main__":
    main()
