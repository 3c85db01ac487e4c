"""XAdES B-B..B-LTA, enveloped/enveloping/detached, checked by xmlsec1 and openssl ts.

xmlsec1 1.2.37 (Debian 12) has no RSA-PSS (sha256-rsa-MGF1): PSS signatures are checked by
libxmlsec1 1.3 instead, the build inside python-xmlsec's wheel, with the same trust root and
references.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from formats_helpers import (
    DS,
    XADES,
    XADES141,
    c14n,
    find_signature,
    libxmlsec_verify,
    offline_context,
    openssl_ts_verify,
    tsa_certificate,
    validates_offline,
    xades_archive_imprint,
    xades_token_der,
    xades_tokens,
    xmlsec1_verify,
)
from formats_keys import make_key_variant
from lxml import etree

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


def _verify(path, variant, trust) -> bool:
    """xmlsec1 (Debian's 1.2) where it can; RSASSA-PSS, which it does not know, by libxmlsec1
    1.3 through python-xmlsec: the same checks, trust up to the test PKI's root included."""
    if variant.scheme == "pss":
        return libxmlsec_verify(path, trust.root_pem)
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
    assert _verify(signed, key_variant, trust)

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
    assert not _verify(signed, key_variant, trust)
    if level == "B-LTA":
        tampered_root = etree.fromstring(signed.read_bytes())
        detached = document.read_bytes() if packaging == "detached" else None
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


def test_libxmlsec_checks_pss_and_trust(pki, tsa_services, trust, tmp_path):
    """The check that stands in for xmlsec1 with RSASSA-PSS knows PSS, and fails a signature
    that does not chain to the trusted root (tampered ones fail in the level tests)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.helpers import throwaway_chain

    variant = make_key_variant(pki, "rsa-pss")
    signed = tmp_path / "signed.xml"
    with open(signed, "wb") as out:
        sign_document(
            XML_DOC,
            out,
            format="X",
            level="B-B",
            key=variant.key,
            scheme="pss",
            services=tsa_services,
        )
    method = (
        find_signature(etree.fromstring(signed.read_bytes()))
        .find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
        .get("Algorithm")
    )
    assert method.endswith("sha256-rsa-MGF1")
    assert libxmlsec_verify(signed, trust.root_pem)

    other_root, _ = throwaway_chain("Other", rsa.generate_private_key(65537, 2048).public_key())
    stranger = tmp_path / "other-root.pem"
    stranger.write_bytes(other_root.public_bytes(serialization.Encoding.PEM))
    assert not libxmlsec_verify(signed, stranger)
