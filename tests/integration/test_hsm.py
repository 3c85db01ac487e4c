"""Keys in a real SoftHSM token: generated inside, non-extractable, signing hashes correctly."""

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute

from signet.algorithms import KeySpec
from signet.config import HsmSettings
from signet.hsm import Hsm, HsmError

HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


@pytest.fixture(scope="module")
def hsm(softhsm):
    return Hsm(
        HsmSettings(
            module=softhsm["module"],
            token_label=softhsm["token_label"],
            pin_file=softhsm["pin_file"],
        )
    )


@pytest.fixture(scope="module", params=["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"])
def key(request, hsm):
    label = f"test-{request.param}-{uuid.uuid4().hex[:8]}"
    hsm.generate_key(label, KeySpec.parse(request.param))
    return label, KeySpec.parse(request.param)


def test_private_key_is_sensitive_and_never_leaves_the_token(hsm, key):
    label, spec = key
    assert hsm.read_private_attribute(label, Attribute.SENSITIVE) is True
    assert hsm.read_private_attribute(label, Attribute.EXTRACTABLE) is False
    assert hsm.read_private_attribute(label, Attribute.NEVER_EXTRACTABLE) is True
    assert hsm.read_private_attribute(label, Attribute.ALWAYS_SENSITIVE) is True
    secret = Attribute.PRIVATE_EXPONENT if spec.key_type == "rsa" else Attribute.VALUE
    with pytest.raises(HsmError, match="AttributeSensitive"):
        hsm.read_private_attribute(label, secret)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_signatures_verify_with_cryptography(hsm, key, hash_name):
    label, spec = key
    message = f"to be signed {hash_name}".encode()
    digest = hashlib.new(hash_name, message).digest()
    public = hsm.public_key(label)
    algorithm = HASHES[hash_name]
    if spec.key_type == "rsa":
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == spec.size
        public.verify(
            hsm.sign_digest(label, digest, hash_name, "pkcs1v15"),
            message,
            padding.PKCS1v15(),
            algorithm,
        )
        public.verify(
            hsm.sign_digest(label, digest, hash_name, "pss"),
            message,
            padding.PSS(padding.MGF1(algorithm), len(digest)),
            algorithm,
        )
        max_salt = (spec.size + 7) // 8 - len(digest) - 2
        public.verify(
            hsm.sign_digest(label, digest, hash_name, "pss", salt_length=max_salt),
            message,
            padding.PSS(padding.MGF1(algorithm), max_salt),
            algorithm,
        )
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.key_size == spec.size
        signature = hsm.sign_digest(label, digest, hash_name, "ecdsa")
        assert signature[0] == 0x30  # DER, not raw r||s
        public.verify(signature, message, ec.ECDSA(algorithm))


def test_a_wrong_signature_does_not_verify(hsm, key):
    label, spec = key
    digest = hashlib.sha256(b"one").digest()
    public = hsm.public_key(label)
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        if spec.key_type == "rsa":
            public.verify(
                hsm.sign_digest(label, digest, "sha256", "pkcs1v15"),
                b"two",
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        else:
            public.verify(
                hsm.sign_digest(label, digest, "sha256", "ecdsa"), b"two", ec.ECDSA(hashes.SHA256())
            )


def test_bad_inputs_are_refused_clearly(hsm, key):
    label, _ = key
    with pytest.raises(HsmError, match="32 bytes"):
        hsm.sign_digest(label, b"short", "sha256", "pkcs1v15")
    with pytest.raises(HsmError, match="unsupported hash"):
        hsm.sign_digest(label, b"x" * 20, "sha1", "pkcs1v15")
    with pytest.raises(HsmError, match="no private key"):
        hsm.sign_digest("absent-" + label, b"x" * 32, "sha256", "ecdsa")


def test_session_loss_leads_to_reconnect(hsm, key):
    label, spec = key
    digest = hashlib.sha256(b"after reconnect").digest()
    hsm._current_session().close()  # as if the HSM dropped the session
    scheme = "pkcs1v15" if spec.key_type == "rsa" else "ecdsa"
    assert hsm.sign_digest(label, digest, "sha256", scheme)


def test_missing_token_is_named(softhsm):
    missing = Hsm(
        HsmSettings(
            module=softhsm["module"], token_label="no-such-token", pin_file=softhsm["pin_file"]
        )
    )
    with pytest.raises(HsmError, match="no-such-token"):
        missing.check()


def _log_in_and_out(module: str, label: str, pin: str, started: Any, stop: Any) -> int:
    """In another process: log in and out of the token until told to stop."""
    import pkcs11

    token = pkcs11.lib(module).get_token(token_label=label)
    count = 0
    while not stop.is_set():
        try:
            with token.open(user_pin=pin):
                count += 1
        except pkcs11.exceptions.GeneralError:  # the same race, seen from this side
            pass
        started.set()
    return count


def test_the_token_opens_while_another_process_logs_in(softhsm):
    """SoftHSM rewrites its token file on every login; opening the token meanwhile in another
    process failed with GeneralError until Signet retried."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pin = Path(softhsm["pin_file"]).read_text().strip()
    with context.Manager() as manager, context.Pool(1) as pool:
        started, stop = manager.Event(), manager.Event()
        other = pool.apply_async(
            _log_in_and_out, (softhsm["module"], softhsm["token_label"], pin, started, stop)
        )
        assert started.wait(timeout=60)
        try:
            for _ in range(300):
                fresh = Hsm(
                    HsmSettings(
                        module=softhsm["module"],
                        token_label=softhsm["token_label"],
                        pin_file=softhsm["pin_file"],
                    )
                )
                fresh.check()
                fresh._reset()
        finally:
            stop.set()
        assert other.get(timeout=60) >= 10  # it really was logging in meanwhile


def test_key_spec_parsing():
    assert str(KeySpec.parse("RSA-3072")) == "rsa-3072"
    assert KeySpec.parse("ec-p384").curve == "P-384"
    for bad in ("rsa-1024", "ec-p521", "dsa-2048", "rsa"):
        with pytest.raises(ValueError, match="unknown key type"):
            KeySpec.parse(bad)


def test_hmac_key_is_made_once_keyed_and_never_leaves_the_token(hsm):
    label = f"test-hmac-{uuid.uuid4().hex[:8]}"
    assert hsm.ensure_secret_key(label) is True
    assert hsm.ensure_secret_key(label) is False  # idempotent: one key per label
    first = hsm.hmac_sha256(label, b"signet-pin\x00cred\x0012345")
    assert len(first) == 32 and first == hsm.hmac_sha256(label, b"signet-pin\x00cred\x0012345")
    assert first != hsm.hmac_sha256(label, b"signet-pin\x00cred\x0012346")
    # Keyed: no plain hash of the input gives it.
    assert first != hashlib.sha256(b"signet-pin\x00cred\x0012345").digest()
    other = f"test-hmac-{uuid.uuid4().hex[:8]}"
    hsm.ensure_secret_key(other)
    assert hsm.hmac_sha256(other, b"signet-pin\x00cred\x0012345") != first
    # The secret value cannot be read out of the token.
    session = hsm._current_session()
    from pkcs11 import ObjectClass

    key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
    assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
    from pkcs11.exceptions import AttributeSensitive

    with pytest.raises(AttributeSensitive):
        key[Attribute.VALUE]
    with pytest.raises(HsmError, match="no secret key"):
        hsm.hmac_sha256("no-such-hmac-key", b"x")
