"""Building CSRs and certificates with asn1crypto, signed by a key that stays in the HSM."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from asn1crypto import core, crl, keys
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signet.algorithms import CURVE_BY_ASN1_NAME

# (digest bytes, hash name, scheme) -> signature; scheme: pkcs1v15 | ecdsa
DigestSigner = Callable[[bytes, str, str], bytes]

QC_STATEMENTS_OID = "1.3.6.1.5.5.7.1.3"
QC_COMPLIANCE = "0.4.0.1862.1.1"
QC_SSCD = "0.4.0.1862.1.4"
QC_TYPE = "0.4.0.1862.1.6"
QC_TYPE_ESIGN = "0.4.0.1862.1.6.1"


class _QcStatement(core.Sequence):
    _fields = [
        ("statement_id", core.ObjectIdentifier),
        ("statement_info", core.Any, {"optional": True}),
    ]


class _QcStatements(core.SequenceOf):
    _child_spec = _QcStatement


class _OidSequence(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


def qc_statements_der() -> bytes:
    """QcCompliance, QcSSCD and QcType=esign (ETSI EN 319 412-5)."""
    return _QcStatements(
        [
            {"statement_id": QC_COMPLIANCE},
            {"statement_id": QC_SSCD},
            {"statement_id": QC_TYPE, "statement_info": _OidSequence([QC_TYPE_ESIGN])},
        ]
    ).dump()


def public_key_info(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> keys.PublicKeyInfo:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return keys.PublicKeyInfo.load(der)


def signature_choice(spki: keys.PublicKeyInfo) -> tuple[str, str, str]:
    """(asn1crypto signature algorithm, hash name, scheme) to sign with this key."""
    if spki.algorithm == "rsa":
        return "sha256_rsa", "sha256", "pkcs1v15"
    curve = CURVE_BY_ASN1_NAME.get(spki.curve[1])
    hash_name = curve.hash if curve else "sha256"
    return f"{hash_name}_ecdsa", hash_name, "ecdsa"


def make_name(
    common_name: str,
    organization: str | None = None,
    country: str | None = None,
    serial_number: str | None = None,
    email: str | None = None,
) -> asn1_x509.Name:
    attrs: dict[str, str] = {}
    if country:
        attrs["country_name"] = country
    if organization:
        attrs["organization_name"] = organization
    attrs["common_name"] = common_name
    if serial_number:
        attrs["serial_number"] = serial_number
    if email:
        attrs["email_address"] = email
    return asn1_x509.Name.build(attrs, use_printable=False)


def describe_name(name: asn1_x509.Name) -> str:
    return name.human_friendly


def build_csr(
    subject: asn1_x509.Name, spki: keys.PublicKeyInfo, sign: DigestSigner
) -> asn1_csr.CertificationRequest:
    """A PKCS#10 request signed by the (HSM) key it certifies: proof of possession."""
    algorithm, hash_name, scheme = signature_choice(spki)
    info = asn1_csr.CertificationRequestInfo(
        {"version": "v1", "subject": subject, "subject_pk_info": spki, "attributes": []}
    )
    digest = hashlib.new(hash_name, info.dump()).digest()
    return asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": algorithm},
            "signature": sign(digest, hash_name, scheme),
        }
    )


def _uri(url: str) -> asn1_x509.GeneralName:
    return asn1_x509.GeneralName(name="uniform_resource_identifier", value=url)


def _time(moment: datetime) -> asn1_x509.Time:
    # RFC 5280: UTCTime through 2049, GeneralizedTime after.
    return asn1_x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def key_identifier(spki: keys.PublicKeyInfo) -> bytes:
    return spki.sha1  # RFC 5280 method 1


def build_certificate(
    *,
    subject: asn1_x509.Name,
    spki: keys.PublicKeyInfo,
    issuer: asn1_x509.Name,
    issuer_spki: keys.PublicKeyInfo,
    sign: DigestSigner,
    validity_days: int,
    is_ca: bool,
    qc_statements: bool = False,
    not_before: datetime | None = None,
    crl_url: str | None = None,
    issuer_url: str | None = None,
) -> asn1_x509.Certificate:
    algorithm, hash_name, scheme = signature_choice(issuer_spki)
    start = (not_before or datetime.now(UTC)).replace(microsecond=0)
    extensions: list[dict[str, object]] = [
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": is_ca, "path_len_constraint": 0 if is_ca else None},
        },
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": {"key_cert_sign", "crl_sign", "digital_signature"}
            if is_ca
            else {"digital_signature", "non_repudiation"},
        },
        {"extn_id": "key_identifier", "critical": False, "extn_value": key_identifier(spki)},
    ]
    if not is_ca or issuer != subject:
        extensions.append(
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": key_identifier(issuer_spki)},
            }
        )
    if crl_url and not (is_ca and issuer == subject):
        extensions.append(
            {
                "extn_id": "crl_distribution_points",
                "critical": False,
                "extn_value": [{"distribution_point": {"full_name": [_uri(crl_url)]}}],
            }
        )
    if issuer_url and not (is_ca and issuer == subject):
        extensions.append(
            {
                "extn_id": "authority_information_access",
                "critical": False,
                "extn_value": [
                    {"access_method": "ca_issuers", "access_location": _uri(issuer_url)}
                ],
            }
        )
    if qc_statements and not is_ca:
        extensions.append(
            {
                "extn_id": QC_STATEMENTS_OID,
                "critical": False,
                "extn_value": core.ParsableOctetString(qc_statements_der()),
            }
        )
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": secrets.randbits(159) | (1 << 158),  # positive, 20 bytes max
            "signature": {"algorithm": algorithm},
            "issuer": issuer,
            "validity": {
                "not_before": _time(start),
                "not_after": _time(start + timedelta(days=validity_days)),
            },
            "subject": subject,
            "subject_public_key_info": spki,
            "extensions": extensions,
        }
    )
    digest = hashlib.new(hash_name, tbs.dump()).digest()
    return asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": algorithm},
            "signature_value": sign(digest, hash_name, scheme),
        }
    )


def build_crl(
    *,
    issuer: asn1_x509.Certificate,
    revoked: list[tuple[int, datetime]],
    sign: DigestSigner,
    number: int,
    validity: timedelta,
) -> crl.CertificateList:
    """A v2 CRL listing (serial, revocation time) pairs, signed by the issuer's HSM key."""
    algorithm, hash_name, scheme = signature_choice(issuer.public_key)
    now = datetime.now(UTC).replace(microsecond=0)
    tbs = crl.TbsCertList(
        {
            "version": "v2",
            "signature": {"algorithm": algorithm},
            "issuer": issuer.subject,
            "this_update": _time(now),
            "next_update": _time(now + validity),
            "revoked_certificates": [
                {"user_certificate": serial, "revocation_date": _time(when.replace(microsecond=0))}
                for serial, when in revoked
            ]
            or None,
            "crl_extensions": [
                {"extn_id": "crl_number", "critical": False, "extn_value": number},
                {
                    "extn_id": "authority_key_identifier",
                    "critical": False,
                    "extn_value": {"key_identifier": key_identifier(issuer.public_key)},
                },
            ],
        }
    )
    if tbs["revoked_certificates"].native is None:
        del tbs["revoked_certificates"]
    digest = hashlib.new(hash_name, tbs.dump()).digest()
    return crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": {"algorithm": algorithm},
            "signature": sign(digest, hash_name, scheme),
        }
    )
