"""The remote signing key as formats sees it: certificates plus a sign-a-digest callable."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding

from signet.algorithms import HASH_NAMES
from signet.formats.errors import FormatError

SignDigest = Callable[[bytes, str, str], bytes]
"""``sign_digest(digest, hash_name, scheme) -> signature``.

* ``digest``: the to-be-signed hash, already computed by formats (never the document).
* ``hash_name``: ``"sha256"``, ``"sha384"`` or ``"sha512"``.
* ``scheme``: ``"pkcs1v15"`` (RSASSA-PKCS1-v1_5; the callee adds the DigestInfo prefix),
  ``"pss"`` (RSASSA-PSS, MGF1 with the same hash, salt length = digest length, trailer 0xBC),
  or ``"ecdsa"``.
* returns: RSA signatures as the raw big-endian octet string, ECDSA as a DER
  ``ECDSA-Sig-Value`` (SEQUENCE of r, s) -- formats converts to r||s where a format wants it.
"""


# A fixed PSS salt length (= digest length) is what XMLDSig (RFC 9231) and JWA (PS256...)
# mandate, and what PKCS#11 CKM_RSA_PKCS_PSS needs to be told explicitly; CMS/PAdES accept it.
PSS_SALT_LENGTH = "digest length"

_PYCA_HASHES: dict[str, hashes.HashAlgorithm] = {
    name: getattr(hashes, name.upper())() for name in HASH_NAMES
}


def pyca_hash(hash_name: str) -> hashes.HashAlgorithm:
    try:
        return _PYCA_HASHES[hash_name]
    except KeyError:
        raise FormatError(
            f"unsupported hash {hash_name!r}; use one of {', '.join(HASH_NAMES)}"
        ) from None


def digest_bytes(data: bytes, hash_name: str) -> bytes:
    pyca_hash(hash_name)  # validates the name with a clear message
    return hashlib.new(hash_name, data).digest()


def as_certificate(cert: Any) -> asn1_x509.Certificate:
    """An asn1crypto certificate from asn1crypto, cryptography, DER or PEM input."""
    if isinstance(cert, asn1_x509.Certificate):
        return cert
    if isinstance(cert, pyca_x509.Certificate):
        from cryptography.hazmat.primitives.serialization import Encoding

        return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    if isinstance(cert, bytes | bytearray):
        data = bytes(cert)
        if data.lstrip().startswith(b"-----BEGIN"):
            from asn1crypto import pem

            _, _, data = pem.unarmor(data)
        return asn1_x509.Certificate.load(data)
    raise FormatError(f"cannot use {type(cert).__name__} as a certificate")


def to_pyca(cert: asn1_x509.Certificate) -> pyca_x509.Certificate:
    return pyca_x509.load_der_x509_certificate(cert.dump())


@dataclass(frozen=True)
class RemoteKey:
    """A signing key that lives elsewhere (the HSM behind the SAM), plus its certificates.

    Certificates are ``asn1crypto.x509.Certificate`` objects (pyHanko's native type); the
    constructor also accepts ``cryptography`` certificates or DER/PEM bytes and converts them.
    ``chain`` holds the issuers of ``certificate`` (leaf excluded), the root may be included;
    a self-signed root in the chain is used as trust anchor when collecting B-LT data.
    ``key_type`` (``"rsa"``/``"ec"``), ``key_size`` (modulus bits / curve bits) and ``curve``
    are read from the certificate; pass them only to assert what the HSM says it holds.
    """

    certificate: asn1_x509.Certificate
    sign_digest: SignDigest
    chain: tuple[asn1_x509.Certificate, ...] = ()
    key_type: str = ""
    key_size: int = 0
    curve: str | None = None
    _public_key: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cert = as_certificate(self.certificate)
        chain = tuple(as_certificate(c) for c in self.chain)
        object.__setattr__(self, "certificate", cert)
        object.__setattr__(self, "chain", chain)
        public_key = to_pyca(cert).public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            actual_type, actual_size, actual_curve = "rsa", public_key.key_size, None
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            actual_type = "ec"
            actual_size, actual_curve = public_key.curve.key_size, public_key.curve.name
        else:
            raise FormatError(
                f"certificate {cert.subject.human_friendly!r} holds a "
                f"{type(public_key).__name__}; signet.formats signs with RSA or EC keys only"
            )
        for name, claimed, actual in (
            ("key_type", self.key_type, actual_type),
            ("key_size", self.key_size, actual_size),
            ("curve", self.curve, actual_curve),
        ):
            if claimed and claimed != actual:
                raise FormatError(
                    f"RemoteKey {name}={claimed!r} but the certificate's key has {actual!r}; "
                    "the credential's certificate does not match its key"
                )
        object.__setattr__(self, "key_type", actual_type)
        object.__setattr__(self, "key_size", actual_size)
        object.__setattr__(self, "curve", actual_curve)
        object.__setattr__(self, "_public_key", public_key)

    @property
    def public_key(self) -> Any:
        return self._public_key

    @property
    def all_certificates(self) -> tuple[asn1_x509.Certificate, ...]:
        return (self.certificate, *self.chain)

    def self_signed_roots(self) -> list[asn1_x509.Certificate]:
        return [c for c in self.chain if c.self_signed == "maybe" or c.self_signed == "yes"]

    def resolve_scheme(self, scheme: str | None) -> str:
        """Default and check the signature scheme for this key."""
        if self.key_type == "ec":
            if scheme not in (None, "ecdsa"):
                raise FormatError(f"scheme {scheme!r} is not possible with an EC key; use 'ecdsa'")
            return "ecdsa"
        if scheme is None:
            return "pkcs1v15"
        if scheme not in ("pkcs1v15", "pss"):
            raise FormatError(f"scheme {scheme!r} is not possible with an RSA key")
        return scheme

    def signature_size(self) -> int:
        """Largest signature this key can return (RSA: modulus bytes; ECDSA: DER maximum)."""
        if self.key_type == "rsa":
            return (self.key_size + 7) // 8
        int_len = (self.key_size + 7) // 8 + 3  # tag, length, leading zero octet
        content = 2 * int_len
        return content + (2 if content < 128 else 3)

    @classmethod
    def from_certificates(
        cls,
        certificate: Any,
        chain: Iterable[Any],
        sign_digest: SignDigest,
    ) -> RemoteKey:
        """Build from certificates in any supported form (DER/PEM bytes, asn1crypto, pyca)."""
        return cls(
            certificate=as_certificate(certificate),
            chain=tuple(as_certificate(c) for c in chain),
            sign_digest=sign_digest,
        )


def sign_prehashed(key: RemoteKey, digest: bytes, hash_name: str, scheme: str) -> bytes:
    """Send one to-be-signed hash to the key and check the answer before embedding it.

    The check catches an HSM key that does not belong to the certificate (or a wrong
    scheme) here, with a clear message, instead of in a relying party's validator.
    """
    hash_algorithm = pyca_hash(hash_name)
    if len(digest) != hash_algorithm.digest_size:
        raise FormatError(
            f"a {hash_name} digest is {hash_algorithm.digest_size} bytes, not {len(digest)}"
        )
    scheme = key.resolve_scheme(scheme)
    signature = key.sign_digest(digest, hash_name, scheme)
    if not isinstance(signature, bytes | bytearray):
        raise FormatError(f"sign_digest returned {type(signature).__name__}, expected bytes")
    signature = bytes(signature)
    prehashed = utils.Prehashed(hash_algorithm)
    try:
        if scheme == "ecdsa":
            key.public_key.verify(signature, digest, ec.ECDSA(prehashed))
        elif scheme == "pss":
            pss = asym_padding.PSS(
                mgf=asym_padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size
            )
            key.public_key.verify(signature, digest, pss, prehashed)
        else:
            key.public_key.verify(signature, digest, asym_padding.PKCS1v15(), prehashed)
    except (InvalidSignature, ValueError) as exc:
        raise FormatError(
            f"the signing service returned a {scheme} signature that does not verify with the "
            f"public key of {key.certificate.subject.human_friendly!r}; check that the "
            "credential's key and certificate belong together and that ECDSA results are DER"
        ) from exc
    return signature


def sign_message(key: RemoteKey, message: bytes, hash_name: str, scheme: str) -> bytes:
    """Hash a (small) to-be-signed message locally and sign only its digest."""
    return sign_prehashed(key, digest_bytes(message, hash_name), hash_name, scheme)


class _AdapterBase:
    """Quacks like a ``cryptography`` private key for libraries that call ``key.sign()``.

    signxml and jwcrypto hash the to-be-signed bytes inside ``sign()``; the adapter hashes
    them here and sends only the digest to ``sign_digest``.
    """

    def __init__(self, key: RemoteKey) -> None:
        self._key = key
        self.calls = 0

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def public_key(self) -> Any:
        return self._key.public_key


class RsaKeyAdapter(_AdapterBase):
    def sign(self, data: bytes, padding: Any, algorithm: Any) -> bytes:
        hash_name = algorithm.name
        if isinstance(padding, asym_padding.PSS):
            salt = getattr(padding, "_salt_length", None)
            if isinstance(salt, int) and salt != algorithm.digest_size:
                raise FormatError(
                    f"PSS salt length {salt} requested; signet signs PSS with salt = digest length"
                )
            scheme = "pss"
        elif isinstance(padding, asym_padding.PKCS1v15):
            scheme = "pkcs1v15"
        else:
            raise FormatError(f"unsupported RSA padding {type(padding).__name__}")
        self.calls += 1
        return sign_message(self._key, data, hash_name, scheme)


class EcKeyAdapter(_AdapterBase):
    @property
    def curve(self) -> Any:
        return self._key.public_key.curve

    def sign(self, data: bytes, signature_algorithm: Any) -> bytes:
        self.calls += 1
        return sign_message(self._key, data, signature_algorithm.algorithm.name, "ecdsa")


def key_adapter(key: RemoteKey) -> RsaKeyAdapter | EcKeyAdapter:
    return EcKeyAdapter(key) if key.key_type == "ec" else RsaKeyAdapter(key)


def unique_by_der(items: Iterable[Any]) -> list[Any]:
    """ASN.1 objects (certificates, OCSP responses, CRLs) without repeats, in first-seen order."""
    seen: set[bytes] = set()
    result = []
    for item in items:
        der = item.dump()
        if der not in seen:
            seen.add(der)
            result.append(item)
    return result


def unique_certificates(certs: Sequence[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    return unique_by_der(certs)
