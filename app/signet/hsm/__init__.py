"""The HSM over PKCS#11: key generation inside the token and raw signing of hashes.

`Hsm` is a token `Connection` (`hsm.connection`: the login, the serialised session or the pool
of sessions, the healing of a lost token) with the operations Signet asks of it: generate and
find keys, sign a digest (PKCS#1 v1.5, PSS, ECDSA) and MAC with the token's secret key.
Signatures and MACs are one C_SignInit and one C_Sign (`hsm.oneshot`, on the same module and
handles), where python-pkcs11 would ask C_Sign for the length first: a round trip less."""

from __future__ import annotations

from typing import Any

import pkcs11
from asn1crypto import algos, core
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, exceptions
from pkcs11.util.ec import encode_named_curve_parameters

from signet.algorithms import CURVES, HASH_NAMES, HASHES, SCHEME_MECHANISMS, KeySpec
from signet.hsm.connection import Connection, HsmError, KeyNotFound, retry_opening

__all__ = ["Hsm", "HsmError", "KeyNotFound", "digest_info", "ecdsa_raw_to_der", "retry_opening"]

# The mechanisms' numbers for the registry's hashes: (hash mechanism, MGF1) for PSS.
_PSS_MECHANISMS = {
    h.name: (int(getattr(Mechanism, h.mechanism)), int(getattr(pkcs11.MGF, h.mgf)))
    for h in HASHES.values()
}
_SCHEME_MECHANISMS = {
    scheme: int(getattr(Mechanism, name)) for scheme, name in SCHEME_MECHANISMS.items()
}

_HMAC = int(Mechanism.SHA256_HMAC)


def _digest_info_prefix(hash_name: str, length: int) -> bytes:
    encoded = algos.DigestInfo(
        {
            "digest_algorithm": {"algorithm": hash_name, "parameters": core.Null()},
            "digest": bytes(length),
        }
    ).dump()
    return encoded[:-length]


# DER DigestInfo up to the digest value, per hash: built once, prepended on every signature.
_DIGEST_INFO_PREFIX = {h.name: _digest_info_prefix(h.name, h.length) for h in HASHES.values()}


def digest_info(digest: bytes, hash_name: str) -> bytes:
    """The DER DigestInfo that CKM_RSA_PKCS expects the caller to prepend (PKCS#1 v1.5)."""
    length = HASHES[hash_name].length
    if len(digest) != length:
        raise HsmError(f"a {hash_name} digest has {length} bytes, got {len(digest)}")
    return _DIGEST_INFO_PREFIX[hash_name] + digest


def ecdsa_raw_to_der(raw: bytes) -> bytes:
    """PKCS#11's r‖s as the DER SEQUENCE X.509 and CMS carry (cryptography's encoder: about
    1 µs here, against 11 µs through asn1crypto's)."""
    half = len(raw) // 2
    return encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


class Hsm(Connection):
    """A token in a PKCS#11 module and what Signet does with its keys. Thread-safe and
    fork-safe within a process."""

    # -- keys -------------------------------------------------------------------------------
    def generate_key(self, label: str, spec: KeySpec) -> None:
        """Generate a sensitive, non-extractable signing key pair inside the token."""
        private = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        public = {
            Attribute.TOKEN: True,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
        }

        def generate(session: Any) -> None:
            if spec.key_type == "rsa":
                session.generate_keypair(
                    KeyType.RSA,
                    spec.size,
                    label=label,
                    id=label.encode(),
                    store=True,
                    public_template=public,
                    private_template=private,
                )
            else:
                assert spec.curve
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {
                        Attribute.EC_PARAMS: encode_named_curve_parameters(
                            CURVES[spec.curve].asn1_name
                        )
                    },
                    local=True,
                )
                params.generate_keypair(
                    label=label,
                    id=label.encode(),
                    store=True,
                    public_template=public,
                    private_template=private,
                )

        self._call(generate)

    def ensure_secret_key(self, label: str) -> bool:
        """Make sure a 256-bit HMAC key with this label exists in the token (sensitive,
        non-extractable, sign/verify only); return True if it was created now."""

        def ensure(session: Any) -> bool:
            if any(
                True
                for _ in session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
                )
            ):
                return False
            self._nothing_found(session)
            session.generate_key(
                KeyType.GENERIC_SECRET,
                256,
                label=label,
                id=label.encode(),
                store=True,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.VERIFY: True,
                    Attribute.ENCRYPT: False,
                    Attribute.DECRYPT: False,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.DERIVE: False,
                },
            )
            return True

        return self._call(ensure)

    def hmac_sha256(self, label: str, data: bytes) -> bytes:
        """HMAC-SHA-256 of data under the token's secret key `label` (CKM_SHA256_HMAC)."""

        def mac(session: Any) -> bytes:
            keys = self._key_cache()
            key = keys.get("secret:" + label)
            if key is None:
                try:
                    key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
                except exceptions.NoSuchKey as exc:
                    self._nothing_found(session)
                    raise KeyNotFound(
                        f"no secret key labelled {label!r} in the token; run `signet init`"
                    ) from exc
                except exceptions.MultipleObjectsReturned:
                    raise HsmError(
                        f"several secret keys labelled {label!r}; fix the token"
                    ) from None
                keys["secret:" + label] = key
            return self._library.signing().sign(session.handle, key.handle, _HMAC, data)

        return self._call(mac)

    def _private_key(self, session: Any, label: str) -> Any:
        keys = self._key_cache()
        key = keys.get(label)
        if key is None:
            try:
                key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
            except exceptions.NoSuchKey as exc:
                self._nothing_found(session)
                raise KeyNotFound(f"no private key labelled {label!r} in the token") from exc
            except exceptions.MultipleObjectsReturned:
                raise HsmError(f"several private keys labelled {label!r}; fix the token") from None
            keys[label] = key
        return key

    def public_key(self, label: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        def read(session: Any) -> Any:
            try:
                key = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
            except exceptions.NoSuchKey as exc:
                self._nothing_found(session)
                raise KeyNotFound(f"no public key labelled {label!r} in the token") from exc
            if key.key_type == KeyType.RSA:
                return rsa.RSAPublicNumbers(
                    int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big"),
                    int.from_bytes(key[Attribute.MODULUS], "big"),
                ).public_key()
            from pkcs11.util.ec import encode_ec_public_key

            return serialization.load_der_public_key(encode_ec_public_key(key))

        return self._call(read)

    def key_exists(self, label: str) -> bool:
        def find(session: Any) -> bool:
            if any(
                True
                for _ in session.get_objects(
                    {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
                )
            ):
                return True
            self._nothing_found(session)
            return False

        return self._call(find)

    def destroy_key(self, label: str) -> None:
        def destroy(session: Any) -> None:
            found = list(session.get_objects({Attribute.LABEL: label}))
            if not found:
                self._nothing_found(session)
            for obj in found:
                obj.destroy()
            self._keys.pop(label, None)
            self._keys.pop("secret:" + label, None)
            if self._pool is not None:
                self._pool.forget_keys()

        self._call(destroy)

    def read_private_attribute(self, label: str, attribute: Any) -> Any:
        """Read an attribute of a private key (the token refuses sensitive ones)."""
        return self._call(lambda session: self._private_key(session, label)[attribute])

    # -- signing ----------------------------------------------------------------------------
    def sign_digest(
        self,
        label: str,
        digest: bytes,
        hash_name: str,
        scheme: str,
        salt_length: int | None = None,
    ) -> bytes:
        """Sign an already computed digest. scheme: pkcs1v15 | pss | ecdsa.

        ECDSA comes back DER-encoded; PSS uses MGF1 with the same hash and, by default,
        a salt as long as the hash."""
        if hash_name not in HASHES:
            raise HsmError(f"unsupported hash {hash_name!r}; use {', '.join(HASH_NAMES)}")
        length = HASHES[hash_name].length
        if len(digest) != length:
            raise HsmError(f"a {hash_name} digest has {length} bytes, got {len(digest)}")
        if scheme not in _SCHEME_MECHANISMS:
            raise HsmError(f"unknown signature scheme {scheme!r}")
        mechanism, data = _SCHEME_MECHANISMS[scheme], digest
        pss: tuple[int, int, int] | None = None
        if scheme == "pkcs1v15":
            data = digest_info(digest, hash_name)
        elif scheme == "pss":
            salt = length if salt_length is None else salt_length
            if salt < 0:
                raise HsmError(f"a PSS salt length is 0 or more, got {salt}")
            pss = (*_PSS_MECHANISMS[hash_name], salt)

        def sign(session: Any) -> bytes:
            key = self._private_key(session, label)
            return self._library.signing().sign(session.handle, key.handle, mechanism, data, pss)

        signature = self._call(sign)
        return ecdsa_raw_to_der(signature) if scheme == "ecdsa" else signature
