"""The algorithm registry: hashes, signature algorithms, key types and curves by name, OID,
length and PKCS#11 mechanism — the one table every layer (hsm and client included) reads.

Plain data with no imports of its own, so the HSM, the formats and the desktop client can all
depend on it. PKCS#11 mechanisms are named as python-pkcs11 spells them (`Mechanism.SHA256`),
so this module needs no PKCS#11 library; `signet.hsm` turns the names into mechanisms."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HashAlgorithm:
    name: str  # as hashlib, asn1crypto and cryptography name it
    oid: str
    length: int  # bytes of a digest
    mechanism: str  # python-pkcs11 Mechanism member of the hash (PSS parameters)
    mgf: str  # python-pkcs11 MGF member: MGF1 with this hash

    @property
    def jws(self) -> str:
        """The digest size in bits, as JWS names end (RS256, ES384, sigD hashM "S512")."""
        return str(self.length * 8)


HASHES: dict[str, HashAlgorithm] = {
    h.name: h
    for h in (
        HashAlgorithm("sha256", "2.16.840.1.101.3.4.2.1", 32, "SHA256", "SHA256"),
        HashAlgorithm("sha384", "2.16.840.1.101.3.4.2.2", 48, "SHA384", "SHA384"),
        HashAlgorithm("sha512", "2.16.840.1.101.3.4.2.3", 64, "SHA512", "SHA512"),
    )
}
HASH_NAMES = tuple(HASHES)
HASH_BY_OID: dict[str, HashAlgorithm] = {h.oid: h for h in HASHES.values()}

# Signature schemes over a digest, and the PKCS#11 mechanism that makes each from a digest
# (CKM_RSA_PKCS wants the DigestInfo prepended; CKM_ECDSA returns raw r||s).
SCHEME_MECHANISMS = {"pkcs1v15": "RSA_PKCS", "pss": "RSA_PKCS_PSS", "ecdsa": "ECDSA"}
SCHEMES = tuple(SCHEME_MECHANISMS)
KEY_TYPES = ("rsa", "ec")

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSA_PSS = "1.2.840.113549.1.1.10"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"


@dataclass(frozen=True)
class SignatureAlgorithm:
    """A CSC signAlgo: the key type it fits, the scheme, and the hash it implies (None: the
    client names the hash, with hashAlgorithmOID or, for RSASSA-PSS, in signAlgoParams)."""

    oid: str
    name: str
    key_type: str
    scheme: str
    hash: str | None


SIGNATURE_ALGORITHMS: dict[str, SignatureAlgorithm] = {
    a.oid: a
    for a in (
        SignatureAlgorithm(
            "1.2.840.113549.1.1.11", "sha256WithRSAEncryption", "rsa", "pkcs1v15", "sha256"
        ),
        SignatureAlgorithm(
            "1.2.840.113549.1.1.12", "sha384WithRSAEncryption", "rsa", "pkcs1v15", "sha384"
        ),
        SignatureAlgorithm(
            "1.2.840.113549.1.1.13", "sha512WithRSAEncryption", "rsa", "pkcs1v15", "sha512"
        ),
        SignatureAlgorithm(RSA_ENCRYPTION, "rsaEncryption", "rsa", "pkcs1v15", None),
        SignatureAlgorithm(RSA_PSS, "RSASSA-PSS", "rsa", "pss", None),
        SignatureAlgorithm("1.2.840.10045.4.3.2", "ecdsa-with-SHA256", "ec", "ecdsa", "sha256"),
        SignatureAlgorithm("1.2.840.10045.4.3.3", "ecdsa-with-SHA384", "ec", "ecdsa", "sha384"),
        SignatureAlgorithm("1.2.840.10045.4.3.4", "ecdsa-with-SHA512", "ec", "ecdsa", "sha512"),
        SignatureAlgorithm(EC_PUBLIC_KEY, "ecPublicKey", "ec", "ecdsa", None),
    )
}


def signature_algorithm_oid(scheme: str, hash_name: str) -> str:
    """The full signature-algorithm OID (hash implied) of a PKCS#1 v1.5 or ECDSA scheme."""
    for algorithm in SIGNATURE_ALGORITHMS.values():
        if algorithm.scheme == scheme and algorithm.hash == hash_name:
            return algorithm.oid
    raise KeyError(f"no signature algorithm OID for {scheme} with {hash_name}")


def bare_algorithm_oid(scheme: str) -> str:
    """The signAlgo that takes its hash from hashAlgorithmOID (or PSS parameters)."""
    return {"pkcs1v15": RSA_ENCRYPTION, "pss": RSA_PSS, "ecdsa": EC_PUBLIC_KEY}[scheme]


def key_algorithms(key_type: str) -> list[str]:
    """Every signAlgo a key of this type signs with: the full OIDs first, then the ones that
    take their hash from the request."""
    fitting = [a for a in SIGNATURE_ALGORITHMS.values() if a.key_type == key_type]
    return [a.oid for a in fitting if a.hash] + [a.oid for a in fitting if not a.hash]


def algorithm_name(oid: str) -> str:
    """A readable name for a signature-algorithm OID (the OID itself if unknown)."""
    known = SIGNATURE_ALGORITHMS.get(oid)
    return known.name if known else oid


@dataclass(frozen=True)
class Curve:
    name: str  # as CSC and NIST name it
    oid: str
    asn1_name: str  # as asn1crypto, OpenSSL and PKCS#11 EC parameters name it
    bits: int
    hash: str  # the hash of the same strength (JWS ties them; our CA signs with it)


CURVES: dict[str, Curve] = {
    c.name: c
    for c in (
        Curve("P-256", "1.2.840.10045.3.1.7", "secp256r1", 256, "sha256"),
        Curve("P-384", "1.3.132.0.34", "secp384r1", 384, "sha384"),
        Curve("P-521", "1.3.132.0.35", "secp521r1", 521, "sha512"),
    )
}
CURVE_BY_ASN1_NAME: dict[str, Curve] = {c.asn1_name: c for c in CURVES.values()}
KEY_CURVES = ("P-256", "P-384")  # the curves Signet makes keys on
RSA_SIZES = (2048, 3072, 4096)


@dataclass(frozen=True)
class KeySpec:
    """A key Signet makes in the HSM: `rsa-3072`, `ec-p256`…"""

    key_type: str  # rsa | ec
    size: int
    curve: str | None = None

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        """'rsa-3072', 'ec-p256', 'ec-p384' → KeySpec."""
        kind, _, param = text.lower().partition("-")
        if kind == "rsa" and param.isdigit() and int(param) in RSA_SIZES:
            return cls("rsa", int(param))
        curve = "P-" + param[1:] if param.startswith("p") else ""
        if kind == "ec" and curve in KEY_CURVES:
            return cls("ec", CURVES[curve].bits, curve)
        names = [f"rsa-{size}" for size in RSA_SIZES] + [
            f"ec-{c.lower().replace('-', '')}" for c in KEY_CURVES
        ]
        raise ValueError(f"unknown key type {text!r}; use {', '.join(names[:-1])} or {names[-1]}")

    def __str__(self) -> str:
        return f"rsa-{self.size}" if self.key_type == "rsa" else f"ec-p{self.size}"
