"""Throw-away signing keys for the formats tests: RemoteKeys whose sign_digest is a
counting callable over a certomancer test key (test-only; real keys stay in the HSM)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from signet_test_pki import TestPKI

from signet.formats import RemoteKey

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


@dataclass
class CountingSigner:
    """A sign_digest callable over a throw-away key, recording every call it receives."""

    private_key: object
    calls: list[tuple[bytes, str, str]] = field(default_factory=list)

    def __call__(self, digest: bytes, hash_name: str, scheme: str) -> bytes:
        self.calls.append((digest, hash_name, scheme))
        algorithm = utils.Prehashed(_HASHES[hash_name])
        key = self.private_key
        if scheme == "ecdsa":
            return key.sign(digest, ec.ECDSA(algorithm))  # type: ignore[attr-defined]
        if scheme == "pss":
            pss = padding.PSS(padding.MGF1(_HASHES[hash_name]), _HASHES[hash_name].digest_size)
            return key.sign(digest, pss, algorithm)  # type: ignore[attr-defined]
        return key.sign(digest, padding.PKCS1v15(), algorithm)  # type: ignore[attr-defined]


@dataclass
class KeyVariant:
    name: str
    label: str
    scheme: str
    key: RemoteKey
    signer: CountingSigner


KEY_VARIANTS = {
    "rsa-pkcs1": ("signer-rsa", "pkcs1v15"),
    "rsa-pss": ("signer-rsa", "pss"),
    "ec-p256": ("signer-ec", "ecdsa"),
}


def make_key_variant(pki: TestPKI, name: str) -> KeyVariant:
    label, scheme = KEY_VARIANTS[name]
    private_key = serialization.load_pem_private_key(pki.private_key_pem(label), None)
    signer = CountingSigner(private_key)
    key = RemoteKey(certificate=pki.cert(label), chain=(pki.interm, pki.root), sign_digest=signer)
    return KeyVariant(name=name, label=label, scheme=scheme, key=key, signer=signer)
