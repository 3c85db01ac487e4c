"""XAdES B-B..B-LTA, enveloped/enveloping/detached, checked by xmlsec1 and openssl ts.

xmlsec1 1.2.37 (Debian 12) has no RSA-PSS (sha256-rsa-MGF1): PSS signatures are checked by
signxml's verifier and a direct RSASSA-PSS verification of the canonical SignedInfo instead.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from formats_helpers import (
    DS,
    XADES,
    XADES141,
    c14n,
    find_signature,
    offline_context,
    openssl_ts_verify,
    tsa_certificate,
    validates_offline,
    xades_archive_imprint,
    xades_reference_data,
    xades_token_der,
    xades_tokens,
    xmlsec1_verify,
)
from formats_keys import make_key_variant
from lxml import etree
from signxml import SignatureConfiguration
from signxml.xades import XAdESVerifier

from signet.formats import sign_document

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]
XML_DOC = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<invoice xmlns="urn:signet:test" xmlns:x="urn:signet:x">\n'
    b'  <line x:n="1">Signet test line</line>\n  <total>42.00</total>\n</invoice>\n'
)
BINARY_DOC = bytes(range(256)) * 40
CASES = {
    "enveloped": ("invoice.xml", XML_DOC),
    "enveloping-xml": ("invoice.xml", XML_DOC),
    "enveloping-binary": ("blob.bin", BINARY_DOC),
    "detached": ("blob.bin", BINARY_DOC),
}


def _pss_verify(signature_element, certificate: asn1_x509.Certificate, detached) -> bool:
    """Second opinion for RSA-PSS, which xmlsec1 1.2 cannot check: signxml's verifier (all
    references, XAdES signing-certificate digests) -- or, for a detached file signxml cannot
    dereference, our own reference digests -- plus a bare PSS check of the SignedInfo."""
    cert = x509.load_der_x509_certificate(certificate.dump())
    root = signature_element.getroottree().getroot()
    try:
        if detached is None:
            XAdESVerifier().verify(
                etree.tostring(root),
                x509_cert=cert,
                expect_config=SignatureConfiguration(require_x509=True, expect_references=3),
            )
        else:
            xades_reference_data(signature_element, detached)
    except Exception:
        return False
    value = base64.b64decode(signature_element.findtext(f"{{{DS}}}SignatureValue"))
    signed_info = c14n(signature_element.find(f"{{{DS}}}SignedInfo"))
    try:
        cert.public_key().verify(
            value, signed_info, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
        )
    except Exception:
        return False
    return True


def _verify(path, signature_element, variant, trust, detached=None) -> bool:
    if variant.scheme == "pss":
        return _pss_verify(signature_element, variant.key.certificate, detached)
    return xmlsec1_verify(path, trust.root_pem)


def _tamper(case: str, signed_path, document_path) -> None:
    if case == "detached":
        document_path.write_bytes(BINARY_DOC[:-1] + b"\x00")
        return
    data = signed_path.read_bytes()
    if case == "enveloping-binary":
        root = etree.fromstring(data)
        obj = root.find(f"{{{DS}}}Object[@Id='object']")
        obj.text = base64.b64encode(BINARY_DOC[:-1] + b"\x00").decode()
        signed_path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
        return
    assert data.count(b"42.00") == 1
    signed_path.write_bytes(data.replace(b"42.00", b"43.00"))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("level", LEVELS)
def test_xades_levels_validate_and_tampering_fails(
    level, case, key_variant, pki, tsa_services, trust, tmp_path
):
    name, content = CASES[case]
    document = tmp_path / name
    document.write_bytes(content)
    packaging = case.split("-")[0]
    signed = tmp_path / "signature.xml"
    with open(signed, "wb") as out:
        sign_document(
            document, out, format="xades", packaging=packaging, level=level,
            key=key_variant.key, scheme=key_variant.scheme, services=tsa_services,
            document_name=name,
        )  # fmt: skip
    assert len(key_variant.signer.calls) == 1

    root = etree.fromstring(signed.read_bytes())
    signature = find_signature(root)
    detached = document.read_bytes() if packaging == "detached" else None
    assert _verify(signed, signature, key_variant, trust, detached)

    stamps = xades_tokens(signature, "SignatureTimeStamp")
    archives = xades_tokens(signature, "ArchiveTimeStamp", XADES141)
    if level == "B-B":
        assert not stamps and signature.find(f".//{{{XADES}}}UnsignedProperties") is None
    else:
        assert len(stamps) == 1
        stamp = stamps[0]
        assert stamp.find(f"{{{DS}}}CanonicalizationMethod") is not None
        imprint = hashlib.sha256(c14n(signature.find(f"{{{DS}}}SignatureValue"))).digest()
        assert openssl_ts_verify(xades_token_der(stamp), imprint, trust.root_pem, tmp_path)

    if level in ("B-LT", "B-LTA"):
        certs = [
            asn1_x509.Certificate.load(base64.b64decode(e.text))
            for e in signature.iter(
                f"{{{DS}}}X509Certificate", f"{{{XADES}}}EncapsulatedX509Certificate"
            )
        ]
        crls = [
            crl.CertificateList.load(base64.b64decode(e.text))
            for e in signature.iter(f"{{{XADES}}}EncapsulatedCRLValue")
        ]
        ocsps = [
            ocsp.OCSPResponse.load(base64.b64decode(e.text))
            for e in signature.iter(f"{{{XADES}}}EncapsulatedOCSPValue")
        ]
        assert crls and ocsps
        offline = offline_context(pki.root, certs, ocsps, crls)
        assert validates_offline(pki.cert(key_variant.label), offline)
        token = cms.ContentInfo.load(xades_token_der(stamps[0]))
        assert validates_offline(tsa_certificate(token), offline)

    if level == "B-LTA":
        assert len(archives) == 1
        detached = content if packaging == "detached" else None
        imprint = xades_archive_imprint(signature, archives[0], "sha256", detached)
        token_der = xades_token_der(archives[0])
        assert openssl_ts_verify(token_der, imprint, trust.root_pem, tmp_path)
    else:
        assert not archives

    _tamper(case, signed, document)
    tampered_root = etree.fromstring(signed.read_bytes())
    detached = document.read_bytes() if packaging == "detached" else None
    assert not _verify(signed, find_signature(tampered_root), key_variant, trust, detached)
    if level == "B-LTA":
        with pytest.raises(AssertionError):  # a reference digest no longer matches
            xades_archive_imprint(find_signature(tampered_root), archives[0], "sha256", detached)


def test_xades_sha384_enveloped(pki, tsa_services, trust, tmp_path):
    variant = make_key_variant(pki, "ec-p256")
    signed = tmp_path / "signed.xml"
    with open(signed, "wb") as out:
        sign_document(
            XML_DOC, out, format="X", level="B-T", key=variant.key, services=tsa_services,
            hash_algorithm="sha384",
        )  # fmt: skip
    assert variant.signer.calls[0][1] == "sha384"
    assert xmlsec1_verify(signed, trust.root_pem)
    signature = find_signature(etree.fromstring(signed.read_bytes()))
    method = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod").get("Algorithm")
    assert method.endswith("ecdsa-sha384")
