"""The benchmark's network-HSM model (tests/bench/latency): the shim adds its round trip to
every call that reaches the HSM without using CPU, and, because it gives SoftHSM OS locking,
threads signing in sessions of their own overlap their round trips — every signature still
verifying under the key's public half. Signet's Hsm with a session pool (hsm.sessions) overlaps
them too, and with one session serialises them; a key destroyed and made again under its label
is never signed with through a stale handle. Counted by the shim's trace, a signature or MAC
through the Hsm is one C_SignInit and one C_Sign (python-pkcs11's own `sign` makes two C_Sign),
and it verifies, or equals python-pkcs11's MAC; a first buffer too small is retried with the
length the module names, and refusals give the errors python-pkcs11's own calls give."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from signet.hsm import oneshot

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


def most_in_flight(trace) -> int:
    """The most round trips the shim had under way at once (its "in_flight" trace lines)."""
    lines = trace.read_text().splitlines() if trace.exists() else []
    return max(
        (int(line.split()[1], 16) for line in lines if line.startswith("in_flight")), default=0
    )


def probe(env, threads, signs, latency=ROUND_TRIP, trace=None):
    done = subprocess.run(
        [sys.executable, "tests/bench/latency/probe.py", "lat", "123456", str(threads), str(signs)],
        cwd=ROOT,
        env={
            **env,
            "SIGNET_LATENCY_US": str(int(latency * 1e6)),
            "SIGNET_LATENCY_TRACE": str(trace or ""),
        },
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


def test_sessions_in_threads_overlap_their_round_trips(token, tmp_path):
    # 8 threads with a session each: their round trips are under way at the same time (the
    # shim counts them; no clock is read, so a busy machine cannot fail this)
    probe(token, 8, 5, trace=tmp_path / "trace")
    assert most_in_flight(tmp_path / "trace") >= 2


def hsm_probe(env, sessions, threads, signs, latency=ROUND_TRIP, trace=None):
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
        env={
            **env,
            "SIGNET_LATENCY_US": str(int(latency * 1e6)),
            "SIGNET_LATENCY_TRACE": str(trace or ""),
            "PYTHONPATH": f"{ROOT}/app",
        },
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


def test_a_session_pool_overlaps_round_trips_and_one_session_does_not(token, tmp_path):
    pool, one = tmp_path / "pool", tmp_path / "one"
    hsm_probe(token, 8, 8, 4, trace=pool)
    assert most_in_flight(pool) >= 2  # the pool's sessions overlap their round trips
    # one session: the library lock lets one call at a time, so 32 signatures take at least
    # their 64 round trips one after the other (sleeps add up: a lower bound, never flaky)
    serial_floor = 8 * 4 * 2 * ROUND_TRIP
    assert hsm_probe(token, 1, 8, 4, trace=one) >= serial_floor
    assert most_in_flight(one) == 1


@pytest.fixture(scope="module", params=[1, 4], ids=["one-session", "pool"])
def calls(request, token, tmp_path_factory):
    """probe_calls.py's report, through the serialised session and through a pool."""
    trace = tmp_path_factory.mktemp("trace") / "calls"
    done = subprocess.run(
        [
            sys.executable,
            "tests/bench/latency/probe_calls.py",
            "lat",
            token["SIGNET_PIN_FILE"],
            str(request.param),
            str(trace),
        ],
        cwd=ROOT,
        env={**token, "PYTHONPATH": f"{ROOT}/app"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def value(outcome):
    assert "value" in outcome, outcome
    return base64.b64decode(outcome["value"])


def verify(report, kind, signature):
    """Raises InvalidSignature unless `signature` is the probe's `kind` signature."""
    label = report["labels"]["ec" if kind == "ecdsa" else "rsa"]
    public = serialization.load_pem_public_key(report["public"][label].encode())
    digest = hashlib.sha256(b"one round trip less").digest()
    prehashed = utils.Prehashed(hashes.SHA256())
    if kind == "ecdsa":
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, digest, ec.ECDSA(prehashed))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        scheme = (
            padding.PKCS1v15()
            if kind == "pkcs1v15"
            else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        )
        public.verify(signature, digest, scheme, prehashed)


ONE_SIGN = ["C_SignInit 0x0", "C_Sign 0x0"]


def test_a_signature_or_mac_is_one_sign_init_and_one_sign(calls):
    for kind in ("pkcs1v15", "pss", "ecdsa"):
        assert calls[kind]["calls"] == ONE_SIGN, kind
        verify(calls, kind, value(calls[kind]))
    assert calls["hmac"]["calls"] == ONE_SIGN
    # the same MAC as python-pkcs11's own, which asks C_Sign for the length first
    assert calls["pkcs11_hmac"]["calls"] == ["C_SignInit 0x0", "C_Sign 0x0", "C_Sign 0x0"]
    assert value(calls["hmac"]) == value(calls["pkcs11_hmac"])
    assert len(value(calls["hmac"])) == 32


def test_a_buffer_too_small_is_signed_into_the_length_the_module_names(calls):
    # CKR_BUFFER_TOO_SMALL (0x150) keeps the operation active: C_Sign again, no new C_SignInit
    assert calls["small_buffer"]["calls"] == ["C_SignInit 0x0", "C_Sign 0x150", "C_Sign 0x0"]
    verify(calls, "pkcs1v15", value(calls["small_buffer"]))


def test_a_key_of_the_wrong_type_fails_as_through_python_pkcs11(calls):
    # SoftHSM answers ECDSA with an RSA key with CKR_GENERAL_ERROR at C_Sign, which the Hsm
    # takes for a broken token: one recovery and retry, then the same HsmError as before
    theirs, ours = calls["pkcs11_wrong_key"], calls["wrong_key"]
    assert theirs["calls"] == ["C_SignInit 0x0", "C_Sign 0x0", "C_Sign 0x5"]  # length, then no
    assert theirs["error"] == "GeneralError"
    signing = [call for call in ours["calls"] if call.startswith("C_Sign")]
    # never signed: the attempt and its one retry (a pooled attempt first, with a pool)
    assert signing == ["C_SignInit 0x0", "C_Sign 0x5"] * (2 if calls["sessions"] == 1 else 3)
    assert ours["error"] == "HsmError"
    assert ours["message"].startswith(f"HSM token 'lat' is not usable ({theirs['error']})")


def test_a_key_destroyed_behind_its_back_is_looked_up_again_and_reported_missing(calls):
    theirs, ours = calls["pkcs11_gone"], calls["gone"]
    assert len(theirs["calls"]) == 1, theirs
    refused = theirs["calls"][0]
    assert refused in ("C_SignInit 0x60", "C_SignInit 0x82"), theirs  # a stale handle
    assert ours["calls"][0] == refused
    assert oneshot.error(int(refused.split()[1], 16)).__class__.__name__ == theirs["error"]
    # then the recovery: a fresh lookup finds no key, and the token is asked whether it answers
    assert "C_FindObjectsInit 0x0" in ours["calls"] and "C_GetTokenInfo 0x0" in ours["calls"]
    assert "C_Sign 0x0" not in ours["calls"]
    assert ours["error"] == "KeyNotFound"
    assert ours["message"] == f"no private key labelled {calls['labels']['ec']!r} in the token"
