"""Independent validators for the formats tests: openssl, xmlsec1, pdfsig, pyHanko, jwcrypto.

Nothing here calls signet.formats: imprints and reference data are recomputed from the
serialised output, so a mistake in the signing code cannot hide behind itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import subprocess
from pathlib import Path

from asn1crypto import algos, cms, core, crl, ocsp
from asn1crypto import x509 as asn1_x509
from lxml import etree
from pyhanko_certvalidator import CertificateValidator, ValidationContext

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)


# --- RFC 3161 tokens -------------------------------------------------------------------------


def openssl_ts_verify(token: bytes, imprint: bytes, root_pem: Path, work: Path) -> bool:
    """``openssl ts -verify`` of a TimeStampToken against a message imprint we computed."""
    token_path = work / f"token-{hashlib.sha1(token).hexdigest()}.der"
    token_path.write_bytes(token)
    result = run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(token_path),
         "-digest", imprint.hex(), "-CAfile", str(root_pem)]
    )  # fmt: skip
    return result.returncode == 0 and "Verification: OK" in result.stdout


def token_hash_name(token: cms.ContentInfo) -> str:
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    return tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native


# --- CMS -------------------------------------------------------------------------------------


def openssl_cms_verify(signature: Path, content: Path | None, root_pem: Path) -> bool:
    args = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature),
            "-CAfile", str(root_pem), "-purpose", "any", "-out", "/dev/null"]  # fmt: skip
    if content is not None:
        args += ["-content", str(content)]
    result = run(args)
    return result.returncode == 0 and "Verification successful" in result.stderr


def unsigned_attr_values(signer_info: cms.SignerInfo, dotted_oid: str) -> list[core.Asn1Value]:
    values = []
    for attr in signer_info["unsigned_attrs"] or []:
        if attr["type"].dotted == dotted_oid:
            values.extend(attr["values"])
    return values


def as_token(value: core.Asn1Value) -> cms.ContentInfo:
    return cms.ContentInfo.load(value.dump())


def cades_ats_v3_imprint(signed_data: cms.SignedData, token: cms.ContentInfo) -> bytes:
    """archive-time-stamp-v3 imprint per EN 319 122-1 5.5.3, from the ats-hash-index-v3 found
    in the token, after checking that index against the signature it claims to cover."""
    signer_info = signed_data["signer_infos"][0]
    hash_name = token_hash_name(token)
    token_signer = token["content"]["signer_infos"][0]
    index_values = unsigned_attr_values(token_signer, "0.4.0.19122.1.5")
    assert len(index_values) == 1, "archive time-stamp must carry one ats-hash-index-v3"
    index_der = index_values[0].dump()
    index = core.Sequence.load(index_der)
    algorithm, cert_hashes, crl_hashes, attr_hashes = (index[i] for i in range(4))

    def h(data: bytes) -> bytes:
        return hashlib.new(hash_name, data).digest()

    def octets(seq: core.Asn1Value) -> list[bytes]:
        return [
            core.OctetString.load(item.dump()).native for item in core.SequenceOf.load(seq.dump())
        ]

    assert (
        core.Sequence.load(algorithm.dump())[0].dump() == algos.DigestAlgorithmId(hash_name).dump()
    )
    assert octets(cert_hashes) == [h(c.dump()) for c in signed_data["certificates"]]
    assert octets(crl_hashes) == [h(c.dump()) for c in signed_data["crls"] or []]
    expected_attr_hashes = [
        h(attr["type"].dump() + value.dump())
        for attr in signer_info["unsigned_attrs"]
        if attr["type"].dotted != "0.4.0.1733.2.4"
        for value in attr["values"]
    ]
    assert octets(attr_hashes) == expected_attr_hashes
    message_digest = next(
        a["values"][0].native
        for a in signer_info["signed_attrs"]
        if a["type"].native == "message_digest"
    )
    data = signed_data["encap_content_info"]["content_type"].dump() + message_digest
    for name in (
        "version",
        "sid",
        "digest_algorithm",
        "signed_attrs",
        "signature_algorithm",
        "signature",
    ):
        data += signer_info[name].dump()
    assert signer_info["signed_attrs"].dump()[0] == 0xA0  # [0] IMPLICIT, as EN 319 122-1 wants
    return h(data + index_der)


def cms_embedded_validation_data(
    signed_data: cms.SignedData,
) -> tuple[list[asn1_x509.Certificate], list[ocsp.OCSPResponse], list[crl.CertificateList]]:
    certs = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"]
    crls, ocsps = [], []
    for choice in signed_data["crls"] or []:
        if choice.name == "crl":
            crls.append(choice.chosen)
        else:
            other = choice.chosen
            assert other["other_rev_info_format"].dotted == "1.3.6.1.5.5.7.16.2"
            ocsps.append(ocsp.OCSPResponse.load(other["other_rev_info"].dump()))
    return certs, ocsps, crls


def offline_context(
    root: asn1_x509.Certificate,
    certs: list[asn1_x509.Certificate],
    ocsps: list[ocsp.OCSPResponse],
    crls: list[crl.CertificateList],
) -> ValidationContext:
    """No fetching and revocation data required: only what the signature embeds counts."""
    return ValidationContext(
        trust_roots=[root],
        other_certs=certs,
        ocsps=ocsps,
        crls=crls,
        allow_fetching=False,
        revocation_mode="require",
    )


def validates_offline(cert: asn1_x509.Certificate, context: ValidationContext) -> bool:
    validator = CertificateValidator(cert, validation_context=context)
    try:
        asyncio.run(validator.async_validate_usage(set()))
    except Exception:
        return False
    return True


def tsa_certificate(token: cms.ContentInfo) -> asn1_x509.Certificate:
    signed_data = token["content"]
    sid = signed_data["signer_infos"][0]["sid"].chosen
    for choice in signed_data["certificates"]:
        cert = choice.chosen
        if cert.issuer == sid["issuer"] and cert.serial_number == sid["serial_number"].native:
            return cert
    raise AssertionError("TSA certificate missing from token")


# --- XML -------------------------------------------------------------------------------------


XMLSEC_ID_ATTRS = [
    "--id-attr:Id", f"{XADES}:SignedProperties",
    "--id-attr:Id", "KeyInfo",
    "--id-attr:Id", "Object",
]  # fmt: skip


def xmlsec1_verify(signature: Path, root_pem: Path) -> bool:
    result = run(
        ["xmlsec1", "--verify", "--trusted-pem", str(root_pem), *XMLSEC_ID_ATTRS, str(signature)],
        cwd=signature.parent,
    )
    return result.returncode == 0 and result.stderr.startswith("OK")


def libxmlsec_verify(signature: Path, root_pem: Path) -> bool:
    """The same check as xmlsec1_verify, by libxmlsec1 1.3 (python-xmlsec's own build), which
    knows RSASSA-PSS where Debian's xmlsec1 1.2 does not: the signature and every reference
    (a detached one read from beside the signature file), the signer's certificate from
    KeyInfo, trusted up to ``root_pem``."""
    import xmlsec

    tree = etree.parse(str(signature))
    root = tree.getroot()
    xmlsec.tree.add_ids(root, ["Id"])
    manager = xmlsec.KeysManager()
    manager.load_cert(
        str(root_pem), xmlsec.constants.KeyDataFormatPem, xmlsec.constants.KeyDataTypeTrusted
    )
    context = xmlsec.SignatureContext(manager)
    try:
        # A relative reference is opened from the working directory, as xmlsec1 does.
        with contextlib.chdir(signature.parent):
            context.verify(find_signature(root))
    except xmlsec.Error:
        return False
    return True


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def find_signature(root: etree._Element) -> etree._Element:
    if root.tag == f"{{{DS}}}Signature":
        return root
    return root.findall(f"{{{DS}}}Signature")[-1]


def xades_reference_data(signature: etree._Element, detached_content: bytes | None) -> list[bytes]:
    """Octets each ds:Reference digests (only the shapes signet produces), checked against
    the DigestValue so this function cannot silently disagree with xmlsec1."""
    result = []
    for reference in signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference"):
        uri = reference.get("URI")
        transforms = [t.get("Algorithm") for t in reference.iterfind(f".//{{{DS}}}Transform")]
        if uri == "":
            doc = etree.fromstring(etree.tostring(signature.getroottree().getroot()))
            doc.remove(find_signature(doc))
            data = c14n(doc)
        elif uri.startswith("#"):
            target = signature.getroottree().xpath("//*[@Id=$id]", id=uri[1:])[0]
            if transforms:  # a moved-out copy, as for an enveloping ds:Object
                target = etree.fromstring(etree.tostring(target))
            data = c14n(target)
        else:
            assert detached_content is not None
            data = detached_content
        digest_uri = reference.find(f"{{{DS}}}DigestMethod").get("Algorithm")
        hash_name = digest_uri.rsplit("#", 1)[1]
        expected = base64.b64decode(reference.findtext(f"{{{DS}}}DigestValue"))
        assert hashlib.new(hash_name, data).digest() == expected, f"reference {uri!r}"
        result.append(data)
    return result


def xades_archive_imprint(
    signature: etree._Element, archive: etree._Element, hash_name: str, detached: bytes | None
) -> bytes:
    """xades141:ArchiveTimeStamp input, EN 319 132-1 clause 5.5.2.2 (steps 1-4)."""
    data = b"".join(xades_reference_data(signature, detached))
    for name in ("SignedInfo", "SignatureValue", "KeyInfo"):
        element = signature.find(f"{{{DS}}}{name}")
        if element is not None:
            data += c14n(element)
    for prop in archive.getparent():
        if prop is archive:
            break
        data += c14n(prop)
    for obj in signature.findall(f"{{{DS}}}Object"):
        if obj.find(f"{{{XADES}}}QualifyingProperties") is None:
            data += c14n(obj)
    return hashlib.new(hash_name, data).digest()


def xades_tokens(
    signature: etree._Element, local_name: str, namespace: str = XADES
) -> list[etree._Element]:
    return signature.findall(f".//{{{namespace}}}{local_name}")


def xades_token_der(stamp: etree._Element) -> bytes:
    return base64.b64decode(stamp.findtext(f"{{{XADES}}}EncapsulatedTimeStamp"))


# --- JSON ------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def etsi_u(document: dict) -> list[tuple[str, object, str]]:
    """(name, value, raw base64url component) for every etsiU entry."""
    entries = []
    for raw in document.get("header", {}).get("etsiU", []):
        ((name, value),) = json.loads(b64url_decode(raw)).items()
        entries.append((name, value, raw))
    return entries


# --- PDF -------------------------------------------------------------------------------------


def pdfsig(pdf: Path, nss_dir: Path) -> list[dict[str, str]]:
    """Run pdfsig (online OCSP on: the test responder is up) and parse each signature block."""
    result = run(["pdfsig", "-nssdir", f"sql:{nss_dir}", str(pdf)])
    signatures: list[dict[str, str]] = []
    for line in result.stdout.splitlines():
        if line.startswith("Signature #"):
            signatures.append({})
        elif line.strip().startswith("- ") and ":" in line and signatures:
            name, _, value = line.strip()[2:].partition(":")
            signatures[-1][name.strip()] = value.strip()
    return signatures
