"""XAdES: the first ds:Signature of an XML file, checked by signxml (SignedInfo, references,
signing certificate digest), with its validation data and time-stamps (EN 319 132-1)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509

from signet.validation.errors import ContentFault, VerifyError, short
from signet.validation.report import SignatureReport, TokenCheck, VerificationReport
from signet.validation.timestamps import Stamps, hasher
from signet.validation.trust import SIGNER_KEY_USAGES, Evidence, path_check, signer_trust

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"


def _xml_parser() -> Any:
    from signet.formats._xml import safe_parser

    # huge_tree: an enveloping signature over a large document has a text node over 10 MB
    return safe_parser(huge_tree=True)


def _c14n(element: Any, algorithm: str | None) -> bytes:
    from lxml import etree

    algorithm = algorithm or ""
    return etree.tostring(
        element,
        method="c14n",
        exclusive="xml-exc-c14n" in algorithm,
        with_comments=algorithm.endswith("#WithComments"),
    )


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _b64_der(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()))


async def verify_xml(
    path: Path, detached: Path | None, anchors: list[asn1_x509.Certificate]
) -> VerificationReport:
    from lxml import etree

    from signet.formats._xml import XmlRefused, refuse_doctype

    try:
        root = etree.parse(str(path), parser=_xml_parser()).getroot()
        refuse_doctype(root)
    except (etree.XMLSyntaxError, OSError) as exc:
        raise VerifyError(f"{path}: not well-formed XML: {short(exc)}") from exc
    except XmlRefused as exc:
        raise VerifyError(f"{path}: {exc}") from exc
    if root.tag == _tag(DS, "Signature"):
        signatures = [root]
    else:
        signatures = root.findall(_tag(DS, "Signature"))
    if not signatures:
        raise VerifyError(f"{path}: no ds:Signature at the top of the XML document")
    notes = []
    if len(signatures) > 1:
        notes.append(
            f"{len(signatures)} signatures found; only the first was checked "
            "(one XML signature per file is verified)"
        )
    report = await _verify_xades(path, root, signatures[0], detached, anchors)
    reports = [report]
    for number in range(2, len(signatures) + 1):
        skipped = SignatureReport(f"signature {number}")
        skipped.problems.append("not checked")
        reports.append(skipped)
    return VerificationReport(str(path), "XAdES (XML)", reports, notes)


async def _verify_xades(
    path: Path,
    root: Any,
    signature: Any,
    detached: Path | None,
    anchors: list[asn1_x509.Certificate],
) -> SignatureReport:
    from cryptography import x509 as pyca_x509
    from signxml.exceptions import InvalidDigest, InvalidInput, SignXMLException
    from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

    report = SignatureReport("signature 1")
    key_info_certs = [
        asn1_x509.Certificate.load(_b64_der(e.text))
        for e in signature.iterfind(
            f"{_tag(DS, 'KeyInfo')}/{_tag(DS, 'X509Data')}/{_tag(DS, 'X509Certificate')}"
        )
    ]
    if not key_info_certs:
        report.problems.append("no X509Certificate in ds:KeyInfo: the signer is unknown")
        return report
    external = [
        r.get("URI")
        for r in signature.iterfind(f"{_tag(DS, 'SignedInfo')}/{_tag(DS, 'Reference')}")
        if r.get("URI") and not r.get("URI").startswith("#")
    ]
    if external and detached is None:
        raise VerifyError(
            f"{path} is a detached XAdES signature over {external[0]!r}", ContentFault.MISSING
        )
    if len(external) > 1:
        raise VerifyError(f"{path} references {len(external)} external files; only one is verified")
    if detached is not None and not external:
        raise VerifyError(f"{path} references no external file", ContentFault.UNEXPECTED)

    # signxml checks the SignedInfo signature with the certificate from KeyInfo, every
    # reference and the SigningCertificate(V2) digest; the path is validated below.
    signer_cert = key_info_certs[0]
    signer_pyca = pyca_x509.load_der_x509_certificate(signer_cert.dump())
    config = XAdESSignatureConfiguration(
        expect_references=True, verification_time=signer_pyca.not_valid_before_utc
    )
    signed_data: list[bytes] = []
    try:
        results = XAdESVerifier().verify(
            _etree_bytes(root),
            x509_cert=signer_pyca,
            expect_config=config,
            parser=_xml_parser(),
            uri_resolver=(lambda uri: Path(detached).read_bytes()) if detached else None,
        )
        signed_data = [r.signed_data for r in results]
        report.intact = report.valid = True
        report.checked.append(
            "SignedInfo signature, every ds:Reference and the signing certificate digest (signxml)"
        )
    except InvalidDigest as exc:
        if "certificate digest" in str(exc):
            report.intact = True
            report.problems.append(
                f"the signed signing-certificate reference does not match "
                f"the certificate in KeyInfo ({short(exc)})"
            )
        else:
            report.valid = True
            report.problems.append(f"the signed data changed: {short(exc)}")
    except (InvalidInput, SignXMLException, ValueError) as exc:
        report.problems.append(f"the XML signature does not verify: {short(exc)}")
    for cert in key_info_certs:
        if cert.dump() == signer_cert.dump():
            report.signer = cert.subject.human_friendly
    report.claimed_time = signature.findtext(f".//{_tag(XADES, 'SigningTime')}")

    evidence = Evidence(list(key_info_certs))
    unsigned = signature.find(f".//{_tag(XADES, 'UnsignedSignatureProperties')}")
    if unsigned is not None:
        evidence.certs += [
            asn1_x509.Certificate.load(_b64_der(e.text))
            for e in unsigned.iterfind(
                f"{_tag(XADES, 'CertificateValues')}/{_tag(XADES, 'EncapsulatedX509Certificate')}"
            )
        ]
        values = f"{_tag(XADES, 'RevocationValues')}"
        evidence.crls += [
            crl.CertificateList.load(_b64_der(e.text))
            for e in unsigned.iterfind(
                f"{values}/{_tag(XADES, 'CRLValues')}/{_tag(XADES, 'EncapsulatedCRLValue')}"
            )
        ]
        evidence.ocsps += [
            ocsp.OCSPResponse.load(_b64_der(e.text))
            for e in unsigned.iterfind(
                f"{values}/{_tag(XADES, 'OCSPValues')}/{_tag(XADES, 'EncapsulatedOCSPValue')}"
            )
        ]
    ok, detail = await path_check(
        signer_cert, anchors, evidence, require_revocation=False, key_usage=SIGNER_KEY_USAGES
    )
    signer_trust(report, ok, detail)

    stamps = Stamps(report, anchors, evidence)
    if unsigned is not None:
        signature_value = signature.find(_tag(DS, "SignatureValue"))
        for stamp in unsigned.findall(_tag(XADES, "SignatureTimeStamp")):
            token = cms.ContentInfo.load(
                _b64_der(stamp.findtext(_tag(XADES, "EncapsulatedTimeStamp")))
            )
            method = stamp.find(_tag(DS, "CanonicalizationMethod"))
            octets = _c14n(signature_value, method.get("Algorithm") if method is not None else None)
            await stamps.check_signature_stamp(token, [octets])
        for stamp in unsigned.findall(_tag(XADES141, "ArchiveTimeStamp")):
            token = cms.ContentInfo.load(
                _b64_der(stamp.findtext(_tag(XADES, "EncapsulatedTimeStamp")))
            )
            if not signed_data:
                stamps.add_archive(
                    TokenCheck(
                        "archive time-stamp",
                        problem="its input cannot be computed: the references did not verify",
                    )
                )
            else:
                parts = _xades_archive_input(signature, unsigned, stamp, signed_data)
                await stamps.check_archive_stamp(token, hasher(parts))
    await stamps.settle(signer_cert)
    return report


def _etree_bytes(root: Any) -> bytes:
    from lxml import etree

    return bytes(etree.tostring(root.getroottree()))


def _xades_archive_input(
    signature: Any, unsigned: Any, stamp: Any, references: list[bytes]
) -> list[bytes]:
    """xades141:ArchiveTimeStamp input, EN 319 132-1 clause 5.5.2.2: the referenced data
    after transforms (as signxml verified it), SignedInfo, SignatureValue, KeyInfo, the
    unsigned properties before this time-stamp, and the other ds:Objects."""
    method = stamp.find(_tag(DS, "CanonicalizationMethod"))
    algorithm = method.get("Algorithm") if method is not None else None
    parts = list(references)
    for name in ("SignedInfo", "SignatureValue", "KeyInfo"):
        element = signature.find(_tag(DS, name))
        if element is not None:
            parts.append(_c14n(element, algorithm))
    for prop in unsigned:
        if prop is stamp:
            break
        parts.append(_c14n(prop, algorithm))
    for obj in signature.findall(_tag(DS, "Object")):
        if obj.find(_tag(XADES, "QualifyingProperties")) is None:
            parts.append(_c14n(obj, algorithm))
    return parts
