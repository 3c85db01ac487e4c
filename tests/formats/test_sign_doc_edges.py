"""signDoc's edges, each checked by a validator Signet does not use to sign: detached XAdES and
JAdES named from the request (signet_document_name, or a multipart part's filename; xmlsec1,
joserfc), XML that already carries a signature, a TSA that is down, and B-LT revocation data
issued after the signature time-stamp."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os

import requests
import test_sign_doc
from asn1crypto import cms, crl, ocsp, pem
from asn1crypto import x509 as asn1_x509
from formats_helpers import DS, XADES, xmlsec1_verify
from joserfc import jws as jose_jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter
from lxml import etree
from test_sign_doc import ALGOS, b64

# The live Signet of test_sign_doc (on SQLite), shared.
live = test_sign_doc.live
database_url = test_sign_doc.database_url

NAME = "contract 2026 (final)#1.bin"
URI = "contract%202026%20%28final%29%231.bin"
JADES_HEADERS = jose_jws.JWSRegistry(
    header_registry={
        "sigT": HeaderParameter("Claimed signing time", "str"),
        "sigD": HeaderParameter("Signed data objects", lambda value: None),
        "etsiU": HeaderParameter("Unsigned JAdES properties", lambda value: None),
    }
)
JADES_HEADERS.max_header_length = 16 * 1024  # x5c carries the certificate chain


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_xades_detached_named_by_the_json_field_verifies_with_xmlsec1(live):
    document = os.urandom(5000)
    sad = live.authorize("rsa", [hashlib.sha256(document).digest()])
    entry = {
        "document": b64(document),
        "signature_format": "X",
        "conformance_level": "Ades-B-T",
        "signed_envelope_property": "Detached",
    }
    # Without a name it is refused before anything is spent ...
    unnamed = live.sign_doc("rsa-pkcs1", sad, documents=[dict(entry)])
    assert unnamed.status_code == 400
    assert unnamed.json()["error_description"].startswith(
        "Missing parameter signet_document_name: a detached xades signature references"
    )
    for bad, needle in (
        ("a/b.bin", "not a file name"),
        ("..", "not a file name"),
        ("x\ny", "control character"),
        ("n" * 256, "longer than 255"),
    ):
        refused = live.sign_doc(
            "rsa-pkcs1", sad, documents=[{**entry, "signet_document_name": bad}]
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error_description"].startswith(
            "Invalid parameter signet_document_name: "
        ), refused.text
        assert needle in refused.json()["error_description"]
    # ... and the same SAD then signs it with its name.
    response = live.sign_doc("rsa-pkcs1", sad, documents=[{**entry, "signet_document_name": NAME}])
    assert response.status_code == 200, response.text
    assert "DocumentWithSignature" not in response.json()
    signed = base64.b64decode(response.json()["SignatureObject"][0])
    references = etree.fromstring(signed).iterfind(f".//{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert [r.get("URI") for r in references if not r.get("URI").startswith("#")] == [URI]
    folder = live.tmp / "xades-detached"
    folder.mkdir()
    (folder / NAME).write_bytes(document)
    (folder / "signature.xml").write_bytes(signed)
    assert xmlsec1_verify(folder / "signature.xml", live.root_pem)
    (folder / NAME).write_bytes(document[:-1] + bytes([document[-1] ^ 1]))
    assert not xmlsec1_verify(folder / "signature.xml", live.root_pem)


def test_jades_detached_named_by_the_part_filename_verifies_with_joserfc(live):
    document = b'{"invoice": 7, "total": "12.00"}'
    sad = live.authorize("ec", [hashlib.sha256(document).digest()])
    request = {
        "credentialID": live.credentials["ec"],
        "SAD": sad,
        "documents": [
            {
                "signature_format": "J",
                "conformance_level": "Ades-B-T",
                "signed_envelope_property": "Detached",
                "signAlgo": ALGOS["ec-p256"][1],
            }
        ],
    }
    response = requests.post(
        f"{live.url}/csc/v2/signatures/signDoc",
        timeout=120,
        headers={"Authorization": live.session.headers["Authorization"]},
        files=[
            ("request", (None, json.dumps(request), "application/json")),
            ("document", (NAME, document, "application/json")),
        ],
    )
    assert response.status_code == 200, response.text
    signed = json.loads(base64.b64decode(response.json()["SignatureObject"][0]))
    assert "payload" not in signed  # RFC 7515 appendix F: the payload travels apart
    header = json.loads(base64.urlsafe_b64decode(signed["protected"] + "=="))
    assert header["sigD"]["pars"] == [URI]
    assert header["sigD"]["hashM"] == "S256"
    # sigD (ObjectIdByURIHash) signs the document's hash; the JWS payload itself is empty.
    assert header["sigD"]["hashV"] == [b64url(hashlib.sha256(document).digest())]
    assert header["sigD"]["hashV"] != [b64url(hashlib.sha256(document + b" ").digest())]
    cert = asn1_x509.Certificate.load(base64.b64decode(header["x5c"][0]))
    key = ECKey.import_key(pem.armor("PUBLIC KEY", cert.public_key.dump()))
    verified = jose_jws.deserialize_json(
        {**signed, "payload": ""}, key, algorithms=["ES256"], registry=JADES_HEADERS
    )
    assert verified.payload == b""
    assert json.loads(base64.urlsafe_b64decode(signed["header"]["etsiU"][0] + "=="))["sigTst"]
    # A header naming another document's hash no longer verifies.
    forged_header = {**header, "sigD": {**header["sigD"], "hashV": [b64url(b"\0" * 32)]}}
    forged = {
        **signed,
        "payload": "",
        "protected": b64url(json.dumps(forged_header, separators=(",", ":")).encode()),
    }
    try:
        jose_jws.deserialize_json(forged, key, algorithms=["ES256"], registry=JADES_HEADERS)
    except BadSignatureError:
        pass
    else:
        raise AssertionError("joserfc accepted a forged sigD")


def signxml_verifies(signed: bytes) -> bool:
    """signxml's XAdES verifier, pinned to the certificate in KeyInfo (xmlsec1 checks trust)."""
    from cryptography import x509
    from signxml.exceptions import SignXMLException
    from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

    signature = etree.fromstring(signed)
    if signature.tag != f"{{{DS}}}Signature":
        signature = signature.find(f"{{{DS}}}Signature")
    cert = x509.load_der_x509_certificate(
        base64.b64decode(signature.findtext(f".//{{{DS}}}X509Certificate"))
    )
    try:
        XAdESVerifier().verify(
            signed,
            x509_cert=cert,
            expect_config=XAdESSignatureConfiguration(
                expect_references=True, verification_time=cert.not_valid_before_utc
            ),
        )
    except SignXMLException:
        return False
    return True


def test_signed_xml_is_refused_enveloped_and_embedded_unchanged_enveloping(live):
    """An enveloped signature over XML that already carries one would break it: refused (the
    SAD keeps its signature), and the same SAD signs it enveloping, in base64, where both
    signatures verify, each with xmlsec1 and signxml."""
    xml = b"<contract><party>Alice</party><amount>100</amount></contract>"
    sad = live.authorize("rsa", [hashlib.sha256(xml).digest()])
    first = live.sign_doc(
        "rsa-pkcs1",
        sad,
        documents=[
            {"document": b64(xml), "signature_format": "X", "signed_envelope_property": "Enveloped"}
        ],
    )
    assert first.status_code == 200, first.text
    signed_once = base64.b64decode(first.json()["DocumentWithSignature"][0])
    sad = live.authorize("ec", [hashlib.sha256(signed_once).digest()])
    entry = {"document": b64(signed_once), "signature_format": "X", "conformance_level": "Ades-B-T"}
    again = live.sign_doc(
        "ec-p256", sad, documents=[{**entry, "signed_envelope_property": "Enveloped"}]
    )
    assert again.status_code == 400, again.text
    assert (
        "already carries a signature (ds:Signature), which a second enveloped signature "
        "would invalidate" in again.json()["error_description"]
    )
    response = live.sign_doc(
        "ec-p256", sad, documents=[{**entry, "signed_envelope_property": "Enveloping"}]
    )
    assert response.status_code == 200, response.text
    signed_twice = base64.b64decode(response.json()["DocumentWithSignature"][0])
    (embedded,) = etree.fromstring(signed_twice).iterfind(
        f"{{{DS}}}Object[@Encoding='http://www.w3.org/2000/09/xmldsig#base64']"
    )
    assert base64.b64decode(embedded.text) == signed_once
    folder = live.tmp / "cosigned"
    folder.mkdir()
    for name, data in (("first.xml", signed_once), ("second.xml", signed_twice)):
        (folder / name).write_bytes(data)
        assert xmlsec1_verify(folder / name, live.root_pem), name
        assert signxml_verifies(data), name
    tampered = signed_twice.replace(embedded.text.encode()[:40], b64(xml).encode()[:40])
    assert tampered != signed_twice
    (folder / "tampered.xml").write_bytes(tampered)
    assert not xmlsec1_verify(folder / "tampered.xml", live.root_pem)
    assert not signxml_verifies(tampered)


def test_a_tsa_that_does_not_answer_spends_no_sad(live, monkeypatch):
    """B-T is time-stamped after the HSM signed: the TSA is asked first, so a TSA that is down
    costs no signature of the SAD, and the refusal is in the audit trail."""
    from sqlalchemy import select

    from signet.store import AuditRecord
    from tests.helpers import free_port

    document = b"<note>time-stamp me</note>"
    sad = live.authorize("rsa", [hashlib.sha256(document).digest()])
    entry = {
        "document": b64(document),
        "signature_format": "X",
        "conformance_level": "Ades-B-T",
        "signed_envelope_property": "Enveloped",
    }
    dead = f"http://127.0.0.1:{free_port()}/tsa"
    formats = live.services.settings.formats
    working = formats.tsa_url
    monkeypatch.setattr(formats, "tsa_url", dead)
    monkeypatch.setattr(formats, "tsa_retries", 0)
    refused = live.sign_doc("rsa-pkcs1", sad, documents=[dict(entry)])
    assert refused.status_code == 503, refused.text
    description = refused.json()["error_description"]
    assert description.startswith(f"TSA service {dead} failed: ")
    assert description.endswith("; nothing was signed and the SAD was not spent")
    with live.services.database.transaction() as session:
        event, details = session.execute(
            select(AuditRecord.event, AuditRecord.details).order_by(AuditRecord.seq.desc()).limit(1)
        ).one()
    assert event == "sad.rejected" and dead in json.loads(details)["reason"]
    monkeypatch.setattr(formats, "tsa_url", working)
    signed = live.sign_doc("rsa-pkcs1", sad, documents=[dict(entry)])
    assert signed.status_code == 200, signed.text
    path = live.tmp / "stamped.xml"
    path.write_bytes(base64.b64decode(signed.json()["DocumentWithSignature"][0]))
    assert b"SignatureTimeStamp" in path.read_bytes()
    assert xmlsec1_verify(path, live.root_pem)


def _gen_time(token_der: bytes):
    token = cms.ContentInfo.load(token_der)
    return token["content"]["encap_content_info"]["content"].parsed["gen_time"].native


def _revocation_times(crls: list[bytes], ocsps: list[bytes]) -> list[tuple[str, object]]:
    """(issuer, thisUpdate) of each CRL and ("OCSP", producedAt) of each OCSP response."""
    times = [
        (
            crl.CertificateList.load(der).issuer.human_friendly,
            crl.CertificateList.load(der)["tbs_cert_list"]["this_update"].native,
        )
        for der in crls
    ]
    times += [
        (
            "OCSP",
            ocsp.OCSPResponse.load(der)["response_bytes"]["response"]
            .parsed["tbs_response_data"]["produced_at"]
            .native,
        )
        for der in ocsps
    ]
    return times


def test_b_lt_revocation_data_is_issued_after_the_signature_time_stamp(live):
    """A local CA's CRL issued after the signature time-stamp's genTime is embedded at B-LT, in
    CAdES, XAdES, JAdES and PAdES (beside the one fetched before signing, which validators that
    judge at the time-stamp's time use). The test TSA's root publishes its CRL on a 90-day
    schedule: that one is as fresh as its CA makes it."""
    from make_pdf import write_pdf
    from pyhanko.pdf_utils.reader import PdfFileReader

    documents = [
        b"cades document",
        b"<xades>document</xades>",
        b'{"jades": "document"}',
        write_pdf(live.tmp / "lt.pdf", 4096).read_bytes(),
    ]
    sad = live.authorize("rsa", [hashlib.sha256(d).digest() for d in documents])
    response = live.sign_doc(
        "rsa-pkcs1",
        sad,
        documents=[
            {
                "document": b64(document),
                "signature_format": fmt,
                "conformance_level": "Ades-B-LT",
                "signed_envelope_property": packaging,
            }
            for document, fmt, packaging in zip(
                documents,
                "CXJP",
                ("Attached", "Enveloped", "Attached", "Enveloped"),
                strict=True,
            )
        ],
    )
    assert response.status_code == 200, response.text
    p7m, xml, jades, pdf = map(base64.b64decode, response.json()["DocumentWithSignature"])

    reader = PdfFileReader(io.BytesIO(pdf))
    (stamp,) = [
        a["values"][0].dump()
        for a in reader.embedded_signatures[0].signer_info["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    ]
    dss = reader.root["/DSS"]
    pades = (
        _gen_time(stamp),
        _revocation_times(
            [s.get_object().data for s in dss.get("/CRLs", [])],
            [s.get_object().data for s in dss.get("/OCSPs", [])],
        ),
    )

    signed_data = cms.ContentInfo.load(p7m)["content"]
    (stamp,) = [
        a["values"][0].dump()
        for a in signed_data["signer_infos"][0]["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    ]
    cades = (
        _gen_time(stamp),
        _revocation_times(
            [c.chosen.dump() for c in signed_data["crls"] if c.name == "crl"],
            [c.chosen["other_rev_info"].dump() for c in signed_data["crls"] if c.name == "other"],
        ),
    )

    root = etree.fromstring(xml)
    values = {
        name: [base64.b64decode(e.text) for e in root.iter(f"{{{XADES}}}{name}")]
        for name in ("EncapsulatedTimeStamp", "EncapsulatedCRLValue", "EncapsulatedOCSPValue")
    }
    xades = (
        _gen_time(values["EncapsulatedTimeStamp"][0]),
        _revocation_times(values["EncapsulatedCRLValue"], values["EncapsulatedOCSPValue"]),
    )

    unsigned = {}
    for component in json.loads(jades)["header"]["etsiU"]:
        unsigned.update(json.loads(base64.urlsafe_b64decode(component + "==")))
    jades_times = (
        _gen_time(base64.b64decode(unsigned["sigTst"]["tstTokens"][0]["val"])),
        _revocation_times(
            [base64.b64decode(v["val"]) for v in unsigned["rVals"].get("crlVals", [])],
            [base64.b64decode(v["val"]) for v in unsigned["rVals"].get("ocspVals", [])],
        ),
    )

    signet_ca = live.roots[0].subject.human_friendly
    for name, (gen_time, times) in (
        ("CAdES", cades),
        ("XAdES", xades),
        ("JAdES", jades_times),
        ("PAdES", pades),
    ):
        local = [moment for issuer, moment in times if issuer == signet_ca]
        assert any(moment >= gen_time for moment in local), (name, gen_time, times)
        external = {issuer for issuer, _ in times if issuer != signet_ca}
        assert external == {live.roots[1].subject.human_friendly}, (name, times)
