"""A Signet credential as the three PKCS#11 objects consumers pair by CKA_ID and label: the
certificate, the public key and the private key (which never leaves the service)."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import core, keys
from asn1crypto import x509 as asn1_x509

from signet.client.csc import AuthFactor, auth_factor
from signet.vc import ck

TRUE, FALSE = b"\x01", b"\x00"
CURVE_SIZES = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}


def ck_ulong(value: int) -> bytes:
    """A CK_ULONG as the host lays it out (unsigned long: 8 bytes on LP64)."""
    return struct.pack("@L", value)


@dataclass
class Credential:
    """One credential of the signed-in user, with what signing needs to know of it."""

    credential_id: str
    label: str
    certificate: asn1_x509.Certificate
    factor: AuthFactor
    asked_at_sign: bool = False  # the factor comes from askpass at C_Sign, not a login
    key_type: int = field(init=False)
    key_id: bytes = field(init=False)
    size: int = field(init=False)  # RSA: modulus bytes; EC: bytes of one coordinate

    def __post_init__(self) -> None:
        spki: keys.PublicKeyInfo = self.certificate.public_key
        self.key_id = hashlib.sha1(spki["public_key"].contents).digest()  # noqa: S324 - an id
        if spki.algorithm == "rsa":
            self.key_type = ck.CKK_RSA
            self.size = (spki.bit_size + 7) // 8
        elif spki.algorithm == "ec":
            self.key_type = ck.CKK_EC
            self.size = CURVE_SIZES.get(spki.curve[1], (spki.bit_size + 7) // 8)
        else:
            raise ValueError(f"credential {self.credential_id}: unsupported key {spki.algorithm}")

    @property
    def signature_length(self) -> int:
        return self.size if self.key_type == ck.CKK_RSA else 2 * self.size

    @property
    def always_authenticate(self) -> bool:
        return bool(self.factor.kind) and not self.asked_at_sign

    def attributes(self, cls: int) -> dict[int, bytes]:
        """Every attribute of the object of class ``cls`` (CKO_CERTIFICATE, _PUBLIC_KEY or
        _PRIVATE_KEY); sensitive values are simply absent (the key is remote)."""
        cert = self.certificate
        spki = cert.public_key
        common = {
            ck.CKA_CLASS: ck_ulong(cls),
            ck.CKA_TOKEN: TRUE,
            ck.CKA_PRIVATE: TRUE if cls == ck.CKO_PRIVATE_KEY else FALSE,
            ck.CKA_MODIFIABLE: FALSE,
            ck.CKA_COPYABLE: FALSE,
            ck.CKA_DESTROYABLE: FALSE,
            ck.CKA_LABEL: self.label.encode(),
            ck.CKA_ID: self.key_id,
            ck.CKA_SUBJECT: cert.subject.dump(),
        }
        if cls == ck.CKO_CERTIFICATE:
            return common | {
                ck.CKA_CERTIFICATE_TYPE: ck_ulong(ck.CKC_X_509),
                ck.CKA_TRUSTED: FALSE,
                ck.CKA_CERTIFICATE_CATEGORY: ck_ulong(1),  # token user
                ck.CKA_VALUE: cert.dump(),
                ck.CKA_ISSUER: cert.issuer.dump(),
                ck.CKA_SERIAL_NUMBER: core.Integer(cert.serial_number).dump(),
            }
        key = common | {
            ck.CKA_KEY_TYPE: ck_ulong(self.key_type),
            ck.CKA_LOCAL: FALSE,
            ck.CKA_DERIVE: FALSE,
            ck.CKA_PUBLIC_KEY_INFO: spki.dump(),
        }
        if self.key_type == ck.CKK_RSA:
            numbers = spki["public_key"].parsed
            n, e = int(numbers["modulus"].native), int(numbers["public_exponent"].native)
            key |= {
                ck.CKA_MODULUS: n.to_bytes((n.bit_length() + 7) // 8, "big"),
                ck.CKA_PUBLIC_EXPONENT: e.to_bytes((e.bit_length() + 7) // 8, "big"),
                ck.CKA_MODULUS_BITS: ck_ulong(n.bit_length()),
            }
        else:
            key[ck.CKA_EC_PARAMS] = spki["algorithm"]["parameters"].dump()
        if cls == ck.CKO_PUBLIC_KEY:
            key |= {
                ck.CKA_VERIFY: TRUE,
                ck.CKA_ENCRYPT: FALSE,
                ck.CKA_WRAP: FALSE,
                ck.CKA_VERIFY_RECOVER: FALSE,
            }
            if self.key_type == ck.CKK_EC:
                key[ck.CKA_EC_POINT] = core.OctetString(spki["public_key"].native).dump()
            return key
        return key | {
            ck.CKA_SIGN: TRUE,
            ck.CKA_SIGN_RECOVER: FALSE,
            ck.CKA_DECRYPT: FALSE,
            ck.CKA_UNWRAP: FALSE,
            ck.CKA_SENSITIVE: TRUE,
            ck.CKA_ALWAYS_SENSITIVE: TRUE,
            ck.CKA_EXTRACTABLE: FALSE,
            ck.CKA_NEVER_EXTRACTABLE: TRUE,
            ck.CKA_ALWAYS_AUTHENTICATE: TRUE if self.always_authenticate else FALSE,
        }


def credentials_from_list(answer: Mapping[str, Any]) -> list[Credential]:
    """The usable credentials of a credentials/list answer made with credentialInfo=true."""
    found = []
    for item in answer.get("credentialInfos") or []:
        if not isinstance(item, dict):
            continue
        certs = (item.get("cert") or {}).get("certificates") or []
        status = str((item.get("key") or {}).get("status", "enabled"))
        if not certs or status != "enabled":
            continue
        cert = asn1_x509.Certificate.load(base64.b64decode(certs[0]))
        label = str(item.get("description") or item["credentialID"])
        try:
            found.append(Credential(str(item["credentialID"]), label, cert, auth_factor(item)))
        except ValueError:
            continue
    return found
