"""HSM faults heal: the SoftHSM token directory moved away and back, in one process using the
Hsm object directly and under gunicorn through the CSC API. Each test has a SoftHSM token and
configuration of its own, so no other test's token is moved."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from asn1crypto import algos
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tests.helpers import (
    activate_over_api,
    activation_code_in_mail,
    free_port,
    signet_cli,
    signet_server,
)

SOFTHSM_MODULES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
]
USER_PIN = "246810"
LABEL = "heal-token"
OUTAGE = 5.0  # seconds the token directory stays away under gunicorn, as the issue tried it


def own_token(base: Path) -> dict[str, str]:
    """A SoftHSM configuration and token nobody else uses: its own directory and label."""
    module = next((m for m in SOFTHSM_MODULES if os.path.exists(m)), None)
    if module is None:
        pytest.fail("SoftHSM2 is not installed: run `make test` (it installs softhsm2)")
    tokens = base / "tokens"
    tokens.mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            LABEL,
            "--so-pin",
            "13579135",
            "--pin",
            USER_PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    pin_file = base / "user.pin"
    pin_file.write_text(USER_PIN)
    return {"module": module, "conf": str(conf), "tokens": str(tokens), "pin_file": str(pin_file)}


@contextmanager
def token_directory_away(tokens: str) -> Iterator[None]:
    """The token directory renamed away (as an operator's mistake or a lost mount would do),
    and put back however the block ends."""
    away = tokens + ".away"
    os.rename(tokens, away)
    try:
        yield
    finally:
        os.rename(away, tokens)


# -- the Hsm object directly ----------------------------------------------------------------

DIGEST = hashlib.sha256(b"signed across an HSM outage").digest()
SIGNING = {
    "pkcs1": ("heal-rsa", "pkcs1v15"),
    "pss": ("heal-rsa", "pss"),
    "ecdsa": ("heal-ec", "ecdsa"),
}


def _attempt(call: Any) -> dict[str, Any]:
    """The call's value, or its error (class name and message), and how long it took."""
    started = time.perf_counter()
    try:
        value = call()
    except Exception as exc:
        return {
            "error": type(exc).__name__,
            "message": str(exc),
            "seconds": time.perf_counter() - started,
        }
    return {"value": value, "seconds": time.perf_counter() - started}


def _outage_in_one_process(token: dict[str, str]) -> dict[str, Any]:
    """Run in a process of its own (its own PKCS#11 library on its own configuration): keys
    made and used, the token directory moved away and back, every kind of key used again.

    A second Hsm on the same library, used before the outage, is used again after it. The
    order of the calls makes PKCS#11 numbers collide: the library numbers sessions and objects
    afresh after its re-initialisation, and here the session `hsm` opens then gets the number
    of `other`'s dead session, and another RSA key the number `other` cached for heal-rsa."""
    from signet.algorithms import KeySpec
    from signet.config import HsmSettings
    from signet.hsm import Hsm

    settings = HsmSettings(
        module=token["module"],
        token_label=LABEL,
        pin_file=token["pin_file"],
        library_env={"SOFTHSM2_CONF": token["conf"]},
    )
    hsm, other = Hsm(settings), Hsm(settings)
    other.check()
    hsm.generate_key("heal-rsa", KeySpec.parse("rsa-2048"))
    hsm.generate_key("heal-ec", KeySpec.parse("ec-p256"))
    hsm.ensure_secret_key("heal-mac")
    hsm.generate_key("heal-rsa-b", KeySpec.parse("rsa-2048"))
    public = {
        label: hsm.public_key(label).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for label in ("heal-rsa", "heal-ec", "heal-rsa-b")
    }

    def use(instance: Hsm) -> dict[str, Any]:
        done = {
            kind: _attempt(
                lambda label=label, scheme=scheme: instance.sign_digest(
                    label, DIGEST, "sha256", scheme
                )
            )
            for kind, (label, scheme) in SIGNING.items()
        }
        done["hmac"] = _attempt(lambda: instance.hmac_sha256("heal-mac", b"heal"))
        done["check"] = _attempt(instance.check)
        return done

    report: dict[str, Any] = {"public": public, "before": use(hsm), "other_before": use(other)}
    with token_directory_away(token["tokens"]):
        report["away"] = use(hsm)
        report["away_again"] = use(hsm)
        time.sleep(1)
    report["back_first"] = _attempt(lambda: hsm.hmac_sha256("heal-mac", b"heal"))
    report["back_public"] = _attempt(
        lambda: [
            hsm.public_key(label).public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            for label in ("heal-ec", "heal-rsa")
        ]
    )
    report["back_b"] = _attempt(lambda: hsm.sign_digest("heal-rsa-b", DIGEST, "sha256", "pkcs1v15"))
    report["back"] = use(hsm)
    report["other_back"] = use(other)

    # A key destroyed and made again under its label (by another Hsm, as another process
    # would): the handle cached for the old key is refused, and the new key is found.
    def replace_key() -> bytes:
        other.destroy_key("heal-ec")
        other.generate_key("heal-ec", KeySpec.parse("ec-p256"))
        return other.public_key("heal-ec").public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    report["new_ec_public"] = _attempt(replace_key)
    report["replaced"] = _attempt(lambda: hsm.sign_digest("heal-ec", DIGEST, "sha256", "ecdsa"))
    return report


def _verify(public_pem: bytes, signature: bytes, kind: str) -> None:
    """Raises InvalidSignature unless `signature` is the `kind` signature of DIGEST."""
    public = serialization.load_pem_public_key(public_pem)
    prehashed = utils.Prehashed(hashes.SHA256())
    if kind == "ecdsa":
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, DIGEST, ec.ECDSA(prehashed))
        return
    assert isinstance(public, rsa.RSAPublicKey)
    scheme = (
        padding.PKCS1v15() if kind == "pkcs1" else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    )
    public.verify(signature, DIGEST, scheme, prehashed)


@pytest.fixture(scope="module")
def outage_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    token = own_token(tmp_path_factory.mktemp("heal-inprocess"))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_outage_in_one_process, token).result(timeout=120)


def _value(outcome: dict[str, Any]) -> Any:
    assert "value" in outcome, outcome
    return outcome["value"]


def test_every_key_works_before_the_outage(outage_report):
    for name in ("before", "other_before"):
        for kind in SIGNING:
            _verify(
                outage_report["public"][SIGNING[kind][0]], _value(outage_report[name][kind]), kind
            )
        assert _value(outage_report[name]["check"])["token"] == LABEL


def test_a_missing_token_is_a_clear_quick_hsm_error(outage_report):
    for name in ("away", "away_again"):
        for kind in (*SIGNING, "hmac", "check"):
            outcome = outage_report[name][kind]
            assert outcome.get("error") == "HsmError", (name, kind, outcome)
            assert LABEL in outcome["message"] and "tokendir" in outcome["message"]
            assert outcome["seconds"] < 1.0, (name, kind, outcome)


def test_every_key_signs_again_once_the_token_is_back(outage_report):
    assert _value(outage_report["back_first"]) == _value(outage_report["before"]["hmac"])
    assert _value(outage_report["back_public"]) == [
        outage_report["public"][label] for label in ("heal-ec", "heal-rsa")
    ]
    _verify(outage_report["public"]["heal-rsa-b"], _value(outage_report["back_b"]), "pkcs1")
    for name in ("back", "other_back"):
        for kind in SIGNING:
            _verify(
                outage_report["public"][SIGNING[kind][0]], _value(outage_report[name][kind]), kind
            )
        # The same HMAC key as before: the same data gives the same MAC.
        assert _value(outage_report[name]["hmac"]) == _value(outage_report["before"]["hmac"])
        assert _value(outage_report[name]["check"])["token"] == LABEL


def test_a_handle_to_a_replaced_key_is_looked_up_again(outage_report):
    signature = _value(outage_report["replaced"])
    _verify(_value(outage_report["new_ec_public"]), signature, "ecdsa")
    with pytest.raises(InvalidSignature):
        _verify(outage_report["public"]["heal-ec"], signature, "ecdsa")


# -- under gunicorn, through the CSC API ----------------------------------------------------

PASSWORD = "heal password"
CREDENTIAL_PIN = "246801"
SHA256 = "2.16.840.1.101.3.4.2.1"
PSS_PARAMS = base64.b64encode(
    algos.RSASSAPSSParams(
        {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            "salt_length": 32,
        }
    ).dump()
).decode()
# kind: (key, signAlgo, signAlgoParams)
ALGORITHMS = {
    "pkcs1": ("rsa-2048", "1.2.840.113549.1.1.11", None),
    "pss": ("rsa-2048", "1.2.840.113549.1.1.10", PSS_PARAMS),
    "ecdsa": ("ec-p256", "1.2.840.10045.4.3.2", None),
}


class Node:
    """A Signet under gunicorn (two workers) on a token of its own, and a user with a
    PIN-activated credential per key type (authorising with the PIN uses the SAM's HMAC key)."""

    def __init__(self, url: str, token: dict[str, str], credentials: dict[str, str]) -> None:
        self.url, self.token, self.credentials = url, token, credentials
        login = requests.post(f"{url}/csc/v2/auth/login", auth=("carol", PASSWORD), timeout=30)
        assert login.status_code == 200, login.text
        # A new connection per request, so that requests reach both workers.
        self.headers = {
            "Authorization": f"Bearer {login.json()['access_token']}",
            "Connection": "close",
        }
        self.public = {}
        for key, credential in credentials.items():
            info = requests.post(
                f"{url}/csc/v2/credentials/info",
                headers=self.headers,
                json={"credentialID": credential},
                timeout=30,
            )
            assert info.status_code == 200, info.text
            der = base64.b64decode(info.json()["cert"]["certificates"][0])
            self.public[key] = (
                x509.load_der_x509_certificate(der)
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )

    def health(self) -> tuple[requests.Response, float]:
        started = time.perf_counter()
        response = requests.get(f"{self.url}/health", timeout=30)
        return response, time.perf_counter() - started

    def authorize(self, kind: str) -> requests.Response:
        return requests.post(
            f"{self.url}/csc/v2/credentials/authorize",
            headers=self.headers,
            json={
                "credentialID": self.credentials[ALGORITHMS[kind][0]],
                "numSignatures": 1,
                "hashAlgorithmOID": SHA256,
                "hashes": [base64.b64encode(DIGEST).decode()],
                "authData": [{"id": "PIN", "value": CREDENTIAL_PIN}],
            },
            timeout=30,
        )

    def sign_hash(self, kind: str, sad: str) -> requests.Response:
        key, algorithm, params = ALGORITHMS[kind]
        body = {
            "credentialID": self.credentials[key],
            "SAD": sad,
            "hashAlgorithmOID": SHA256,
            "hashes": [base64.b64encode(DIGEST).decode()],
            "signAlgo": algorithm,
        }
        if params:
            body["signAlgoParams"] = params
        return requests.post(
            f"{self.url}/csc/v2/signatures/signHash", headers=self.headers, json=body, timeout=30
        )

    def sign(self, kind: str) -> bytes:
        """Authorise with the PIN and sign DIGEST; the signature, checked against the
        credential's certificate."""
        authorized = self.authorize(kind)
        assert authorized.status_code == 200, authorized.text
        signed = self.sign_hash(kind, authorized.json()["SAD"])
        assert signed.status_code == 200, signed.text
        signature = base64.b64decode(signed.json()["signatures"][0])
        _verify(self.public[ALGORITHMS[kind][0]], signature, kind)
        return signature


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    base = tmp_path_factory.mktemp("heal-gunicorn")
    token = own_token(base)
    port = int(os.environ.get("SIGNET_TEST_HEAL_PORT", "0")) or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env.update(
        {
            "SIGNET_WEB__BASE_URL": f"http://127.0.0.1:{port}",
            "SIGNET_DATABASE__URL": f"sqlite:///{base / 'signet.db'}",
            "SIGNET_HSM__MODULE": token["module"],
            "SIGNET_HSM__TOKEN_LABEL": LABEL,
            "SIGNET_HSM__PIN_FILE": token["pin_file"],
            "SIGNET_HSM__PIN_ENV": "",
            "SIGNET_NOTIFY__EMAIL_BACKEND": "maildir",
            "SIGNET_NOTIFY__MAILDIR": str(base / "mail"),
            "SIGNET_AUDIT__CHECKPOINT_FILE": str(base / "audit-checkpoints.jsonl"),
            "SOFTHSM2_CONF": token["conf"],
        }
    )
    assert signet_cli("init", env=env).returncode == 0
    added = signet_cli(
        "users",
        "add",
        "carol",
        "--email",
        "carol@example.test",
        "--password-stdin",
        env=env,
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    credentials = {}
    for key in ("rsa-2048", "ec-p256"):
        made = signet_cli(
            "credentials",
            "create",
            "carol",
            "--key",
            key,
            "--activation",
            "pin",
            "--policy",
            "basic",
            env=env,
        )
        assert made.returncode == 0, made.stderr
        credentials[key] = made.stdout.split()[1]
    with signet_server(env=env, workers=2, port=port) as url:
        for credential_id in credentials.values():  # carol sets her PIN herself
            activate_over_api(
                url,
                "carol",
                PASSWORD,
                credential_id,
                activation_code_in_mail(base / "mail", credential_id),
                CREDENTIAL_PIN,
            )
        yield Node(url, token, credentials)


def _on_both_workers(call: Any, kinds: list[str], rounds: int = 4) -> list[Any]:
    """Each kind `rounds` times, four at once: with two sync workers, both serve some."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(call, kinds * rounds))


def test_gunicorn_reports_the_hsm_down_refuses_with_503_and_heals(node):
    kinds = list(ALGORITHMS)
    health, _ = node.health()
    assert health.status_code == 200 and health.json()["checks"]["hsm"]["token"] == LABEL
    _on_both_workers(node.sign, kinds)
    # A SAD issued before the outage, spent during it: the signing key itself is unreachable.
    sads = {kind: node.authorize(kind).json()["SAD"] for kind in kinds}

    with token_directory_away(node.token["tokens"]):
        away_since = time.monotonic()
        for response, seconds in _on_both_workers(lambda _: node.health(), ["probe"]):
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["status"] == "down" and body["down"] == ["hsm"]
            hsm = body["checks"]["hsm"]
            assert hsm["status"] == "down" and hsm["token"] == LABEL
            assert LABEL in hsm["reason"] and "tokendir" in hsm["reason"]
            assert seconds < 2.0, seconds
        refusals = _on_both_workers(node.authorize, kinds, rounds=2)
        refusals += [node.sign_hash(kind, sads[kind]) for kind in kinds]
        for response in refusals:
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"
            assert LABEL in response.json()["error_description"]
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - away_since)))

    for response, seconds in _on_both_workers(lambda _: node.health(), ["probe"]):
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["hsm"]["status"] == "ok"
        assert seconds < 2.0, seconds
    signatures = _on_both_workers(node.sign, kinds)
    assert len(signatures) == 12
