"""From a PKCS#11 signing mechanism and its input to the CSC signHash request: which hash, which
signAlgo (and PSS parameters), the digest to send, and how the answer becomes PKCS#11 output."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import algos

from signet.algorithms import EC_PUBLIC_KEY, HASHES, RSA_ENCRYPTION, RSA_PSS
from signet.client.csc import pss_params_der
from signet.vc import ck


class MechanismError(Exception):
    """Carries the CKR code the failing call answers."""

    def __init__(self, rv: int, why: str = "") -> None:
        super().__init__(why or hex(rv))
        self.rv = rv


@dataclass(frozen=True)
class Mechanism:
    ckm: int
    key_type: int  # CKK_RSA or CKK_EC
    scheme: str  # pkcs1v15, pss, ecdsa
    hashes_data: str | None  # the hash the token computes over the data (None: data is a hash)


MECHANISMS: dict[int, Mechanism] = {
    m.ckm: m
    for m in (
        Mechanism(ck.CKM_RSA_PKCS, ck.CKK_RSA, "pkcs1v15", None),
        Mechanism(ck.CKM_SHA256_RSA_PKCS, ck.CKK_RSA, "pkcs1v15", "sha256"),
        Mechanism(ck.CKM_SHA384_RSA_PKCS, ck.CKK_RSA, "pkcs1v15", "sha384"),
        Mechanism(ck.CKM_SHA512_RSA_PKCS, ck.CKK_RSA, "pkcs1v15", "sha512"),
        Mechanism(ck.CKM_RSA_PKCS_PSS, ck.CKK_RSA, "pss", None),
        Mechanism(ck.CKM_SHA256_RSA_PKCS_PSS, ck.CKK_RSA, "pss", "sha256"),
        Mechanism(ck.CKM_SHA384_RSA_PKCS_PSS, ck.CKK_RSA, "pss", "sha384"),
        Mechanism(ck.CKM_SHA512_RSA_PKCS_PSS, ck.CKK_RSA, "pss", "sha512"),
        Mechanism(ck.CKM_ECDSA, ck.CKK_EC, "ecdsa", None),
        Mechanism(ck.CKM_ECDSA_SHA256, ck.CKK_EC, "ecdsa", "sha256"),
        Mechanism(ck.CKM_ECDSA_SHA384, ck.CKK_EC, "ecdsa", "sha384"),
        Mechanism(ck.CKM_ECDSA_SHA512, ck.CKK_EC, "ecdsa", "sha512"),
    )
}
CKM_HASH = {ck.CKM_SHA256: "sha256", ck.CKM_SHA384: "sha384", ck.CKM_SHA512: "sha512"}
MGF_HASH = {
    ck.CKG_MGF1_SHA256: "sha256",
    ck.CKG_MGF1_SHA384: "sha384",
    ck.CKG_MGF1_SHA512: "sha512",
}
HASH_BY_LENGTH = {h.length: name for name, h in HASHES.items()}
DIGEST_INFO_OIDS = {h.oid: name for name, h in HASHES.items()}


def check_pss_params(mechanism: Mechanism, params: tuple[int, int, int] | None) -> str:
    """The hash PSS parameters (hashAlg, mgf, sLen) name; Signet signs with MGF1 of the same
    hash and a salt as long as the digest, so anything else is CKR_MECHANISM_PARAM_INVALID."""
    if params is None:
        raise MechanismError(ck.CKR_MECHANISM_PARAM_INVALID, "PSS needs CK_RSA_PKCS_PSS_PARAMS")
    hash_alg, mgf, salt = params
    name = CKM_HASH.get(hash_alg)
    if (
        name is None
        or MGF_HASH.get(mgf) != name
        or salt != HASHES[name].length
        or (mechanism.hashes_data and mechanism.hashes_data != name)
    ):
        raise MechanismError(
            ck.CKR_MECHANISM_PARAM_INVALID,
            "Signet signs PSS with MGF1 of the message hash and a salt of the digest's length",
        )
    return name


@dataclass(frozen=True)
class SignRequest:
    """One CSC signHash call: the digest, its hash, signAlgo and parameters."""

    digest: bytes
    hash_name: str
    sign_algo: str
    sign_algo_params: bytes | None
    scheme: str


def parse_digest_info(data: bytes) -> tuple[str, bytes]:
    """CKM_RSA_PKCS input: a DER DigestInfo of a SHA-2 hash Signet signs."""
    try:
        info = algos.DigestInfo.load(data, strict=True)
        oid = info["digest_algorithm"]["algorithm"].dotted
        digest = bytes(info["digest"].native)
    except (ValueError, TypeError) as exc:
        raise MechanismError(ck.CKR_DATA_INVALID, "CKM_RSA_PKCS input is not a DigestInfo") from exc
    name = DIGEST_INFO_OIDS.get(oid)
    if name is None or len(digest) != HASHES[name].length:
        raise MechanismError(ck.CKR_DATA_INVALID, f"DigestInfo of {oid}: Signet signs SHA-2 only")
    return name, digest


def sign_request(mechanism: Mechanism, pss_hash: str | None, data: bytes) -> SignRequest:
    """The signHash request for ``data`` (the message for the hash-and-sign mechanisms, the
    digest or DigestInfo for the raw ones)."""
    if mechanism.hashes_data:
        name = mechanism.hashes_data
        digest = hashlib.new(name, data).digest()
    elif mechanism.scheme == "pkcs1v15":
        name, digest = parse_digest_info(data)
    elif mechanism.scheme == "pss":
        assert pss_hash is not None
        name, digest = pss_hash, data
        if len(data) != HASHES[name].length:
            raise MechanismError(ck.CKR_DATA_LEN_RANGE, "PSS input must be the digest")
    else:
        found = HASH_BY_LENGTH.get(len(data))
        if found is None:
            raise MechanismError(ck.CKR_DATA_LEN_RANGE, "ECDSA input must be a SHA-2 digest")
        name, digest = found, data
    return request_for_digest(mechanism.scheme, name, digest)


def request_for_digest(scheme: str, hash_name: str, digest: bytes) -> SignRequest:
    if scheme == "pss":
        return SignRequest(digest, hash_name, RSA_PSS, pss_params_der(hash_name), "pss")
    algo = RSA_ENCRYPTION if scheme == "pkcs1v15" else EC_PUBLIC_KEY
    return SignRequest(digest, hash_name, algo, None, scheme)


def ecdsa_raw(signature: bytes, size: int) -> bytes:
    """PKCS#11 wants ECDSA as r||s, each ``size`` bytes; CSC services answer DER or r||s."""
    if len(signature) == 2 * size and signature[0] != 0x30:
        return signature
    try:
        parsed = algos.DSASignature.load(signature, strict=True)
        r, s = int(parsed["r"].native), int(parsed["s"].native)
    except (ValueError, TypeError):
        if len(signature) == 2 * size:
            return signature
        raise MechanismError(
            ck.CKR_DEVICE_ERROR, "the service's ECDSA signature is not DER"
        ) from None
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")
