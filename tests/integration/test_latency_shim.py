"""The benchmark's network-HSM model (tests/bench/latency): the shim adds its round trip to
every call that reaches the HSM without using CPU, and, because it gives SoftHSM OS locking,
threads signing in sessions of their own overlap their round trips — every signature still
verifying under the key's public half. Signet's Hsm with a session pool (hsm.sessions) overlaps
them too, and with one session serialises them; a key destroyed and made again under its label
is never signed with through a stale handle."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

ROOT = Path(__file__).resolve().parents[2]
SHIM = ROOT / "build/bench/libsignet-latency.so"
ROUND_TRIP = 0.025


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    if not SHIM.exists():
        pytest.fail(f"{SHIM} is missing: `make test` builds it (make {SHIM.relative_to(ROOT)})")
    base = tmp_path_factory.mktemp("latency")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    (base / "pin").write_text("123456")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "SIGNET_PIN_FILE": str(base / "pin")}
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "lat",
            "--so-pin",
            "12345678",
            "--pin",
            "123456",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return env


def probe(env, threads, signs, latency=ROUND_TRIP):
    done = subprocess.run(
        [sys.executable, "tests/bench/latency/probe.py", "lat", "123456", str(threads), str(signs)],
        cwd=ROOT,
        env={**env, "SIGNET_LATENCY_US": str(int(latency * 1e6))},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    point = OctetString.load(base64.b64decode(result["point"])).native
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    digest = base64.b64decode(result["digest"])
    for signature in map(base64.b64decode, result["signatures"]):
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    assert len(result["signatures"]) == threads * signs
    return result["wall"]


def test_each_call_pays_the_round_trip(token):
    # a signature is at least C_SignInit and C_Sign: two round trips each
    assert probe(token, 1, 4) >= 4 * 2 * ROUND_TRIP


def test_sessions_in_threads_overlap_their_round_trips(token):
    serial_floor = 8 * 5 * 2 * ROUND_TRIP  # 40 signatures one after the other: >= 2 s
    assert probe(token, 8, 5) < serial_floor / 2


def hsm_probe(env, sessions, threads, signs, latency=ROUND_TRIP):
    done = subprocess.run(
        [
            sys.executable,
            "tests/bench/latency/probe_hsm.py",
            "lat",
            env["SIGNET_PIN_FILE"],
            str(sessions),
            str(threads),
            str(signs),
        ],
        cwd=ROOT,
        env={**env, "SIGNET_LATENCY_US": str(int(latency * 1e6)), "PYTHONPATH": f"{ROOT}/app"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    digest = base64.b64decode(result["digest"])
    first = serialization.load_pem_public_key(result["first"].encode())
    for signature in result["signatures"]:
        first.verify(
            base64.b64decode(signature), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
        )
    assert len(result["signatures"]) == threads * signs
    second = serialization.load_pem_public_key(result["second"].encode())
    assert result["second"] != result["first"]
    second.verify(
        base64.b64decode(result["after"]), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    )
    return result["wall"]


def test_a_session_pool_overlaps_round_trips_and_one_session_does_not(token):
    serial_floor = 8 * 4 * 2 * ROUND_TRIP  # 32 signatures one after the other: >= 1.6 s
    assert hsm_probe(token, 8, 8, 4) < serial_floor / 2
    assert hsm_probe(token, 1, 8, 4) >= serial_floor
