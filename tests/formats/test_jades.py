"""JAdES B-B..B-LTA (JSON) and B-B (compact), attached and detached, checked by jwcrypto,
openssl verify (x5c chain) and openssl ts (sigTst / arcTst recomputed from the output)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from asn1crypto import cms, crl, ocsp
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from formats_helpers import (
    b64url,
    b64url_decode,
    etsi_u,
    offline_context,
    openssl_ts_verify,
    run,
    tsa_certificate,
    validates_offline,
)
from formats_keys import make_key_variant
from jwcrypto.common import JWSEHeaderParameter
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from signet.formats import FormatError, sign_document

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]
PAYLOAD = b'{"invoice": 42, "currency": "EUR", "lines": ["Signet test line"]}'
# a relying party that understands JAdES knows these critical header parameters
JADES_CRIT = {
    "sigT": JWSEHeaderParameter("Claimed signing time", True, True, None),
    "sigD": JWSEHeaderParameter("Signed data objects", True, True, None),
}


def _jws_verifies(serialised: str, certificate: asn1_x509.Certificate, detached: bool) -> bool:
    public = JWK.from_pyca(x509.load_der_x509_certificate(certificate.dump()).public_key())
    jws = JWS(header_registry=JADES_CRIT)
    try:
        jws.deserialize(serialised)
        jws.verify(public, detached_payload=b"" if detached else None)
    except Exception:
        return False
    return True


def _chain_verifies(x5c: list[str], root_pem, work) -> bool:
    paths = []
    for index, der in enumerate(x5c):
        path = work / f"x5c-{index}.pem"
        path.write_bytes(asn1_pem.armor("CERTIFICATE", base64.b64decode(der)))
        paths.append(path)
    untrusted = work / "untrusted.pem"
    untrusted.write_bytes(b"".join(p.read_bytes() for p in paths[1:]))
    result = run(
        ["openssl", "verify", "-CAfile", str(root_pem), "-untrusted", str(untrusted), str(paths[0])]
    )
    return result.returncode == 0


@pytest.mark.parametrize("packaging", ["attached", "detached"])
@pytest.mark.parametrize("level", LEVELS)
def test_jades_json_levels_validate_and_tampering_fails(
    level, packaging, key_variant, pki, tsa_services, trust, tmp_path
):
    document = tmp_path / "invoice.json"
    document.write_bytes(PAYLOAD)
    signed = tmp_path / "invoice.jades.json"
    with open(signed, "wb") as out:
        sign_document(
            document, out, format="jades", packaging=packaging, level=level,
            key=key_variant.key, scheme=key_variant.scheme, services=tsa_services,
            document_name="invoice.json", mime_type="application/json",
        )  # fmt: skip
    assert len(key_variant.signer.calls) == 1

    serialised = signed.read_text()
    document_json = json.loads(serialised)
    detached = packaging == "detached"
    assert _jws_verifies(serialised, pki.cert(key_variant.label), detached)

    header = json.loads(b64url_decode(document_json["protected"]))
    assert (
        header["alg"] == {"pkcs1v15": "RS256", "pss": "PS256", "ecdsa": "ES256"}[key_variant.scheme]
    )
    assert "sigT" in header["crit"]
    assert header["x5t#S256"] == b64url(hashlib.sha256(pki.cert(key_variant.label).dump()).digest())
    assert _chain_verifies(header["x5c"], trust.root_pem, tmp_path)
    if detached:
        assert "payload" not in document_json
        sig_d = header["sigD"]
        assert sig_d["mId"] == "http://uri.etsi.org/19182/ObjectIdByURIHash"
        assert sig_d["pars"] == ["invoice.json"]
        assert sig_d["hashV"] == [b64url(hashlib.sha256(PAYLOAD).digest())]
    else:
        assert b64url_decode(document_json["payload"]) == PAYLOAD

    components = etsi_u(document_json)
    names = [name for name, _, _ in components]
    expected = {
        "B-B": [],
        "B-T": ["sigTst"],
        "B-LT": ["sigTst", "xVals", "rVals"],
        "B-LTA": ["sigTst", "xVals", "rVals", "arcTst"],
    }[level]
    assert names == expected

    values = {name: value for name, value, _ in components}
    if "sigTst" in values:
        token_der = base64.b64decode(values["sigTst"]["tstTokens"][0]["val"])
        imprint = hashlib.sha256(document_json["signature"].encode()).digest()
        assert openssl_ts_verify(token_der, imprint, trust.root_pem, tmp_path)
    if "rVals" in values:
        certs = [asn1_x509.Certificate.load(base64.b64decode(c)) for c in header["x5c"]]
        certs += [
            asn1_x509.Certificate.load(base64.b64decode(v["x509Cert"]["val"]))
            for v in values["xVals"]
        ]
        crls = [
            crl.CertificateList.load(base64.b64decode(v["val"])) for v in values["rVals"]["crlVals"]
        ]
        ocsps = [
            ocsp.OCSPResponse.load(base64.b64decode(v["val"])) for v in values["rVals"]["ocspVals"]
        ]
        offline = offline_context(pki.root, certs, ocsps, crls)
        assert validates_offline(pki.cert(key_variant.label), offline)
        assert validates_offline(tsa_certificate(cms.ContentInfo.load(token_der)), offline)
    if "arcTst" in values:
        payload_part = b64url(PAYLOAD) if detached else document_json["payload"]
        data = f"{payload_part}.{document_json['protected']}.{document_json['signature']}.".encode()
        data += b"".join(raw.encode() for name, _, raw in components if name != "arcTst")
        archive_der = base64.b64decode(values["arcTst"]["tstTokens"][0]["val"])
        assert openssl_ts_verify(
            archive_der, hashlib.sha256(data).digest(), trust.root_pem, tmp_path
        )

    # tampering
    if detached:
        tampered_payload = PAYLOAD.replace(b"42", b"43")
        assert b64url(hashlib.sha256(tampered_payload).digest()) not in header["sigD"]["hashV"]
        tampered = dict(document_json)
        header["sigD"]["hashV"] = [b64url(hashlib.sha256(tampered_payload).digest())]
        tampered["protected"] = b64url(json.dumps(header).encode())
        assert not _jws_verifies(json.dumps(tampered), pki.cert(key_variant.label), True)
    else:
        tampered = dict(document_json, payload=b64url(PAYLOAD.replace(b"42", b"43")))
        assert not _jws_verifies(json.dumps(tampered), pki.cert(key_variant.label), False)


@pytest.mark.parametrize("packaging", ["attached", "detached"])
def test_jades_compact_b_b(packaging, key_variant, pki, trust, tmp_path):
    signed = tmp_path / "compact.jws"
    with open(signed, "wb") as out:
        sign_document(
            PAYLOAD, out, format="J", packaging=packaging, level="B-B", key=key_variant.key,
            scheme=key_variant.scheme, serialization="compact", document_name="invoice.json",
        )  # fmt: skip
    compact = signed.read_text()
    protected, payload, signature = compact.split(".")
    assert (payload == "") == (packaging == "detached")
    assert _jws_verifies(compact, pki.cert(key_variant.label), packaging == "detached")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert not _jws_verifies(
        f"{protected}.{payload}.{flipped}", pki.cert(key_variant.label), packaging == "detached"
    )


def test_jades_compact_refuses_levels_above_b_b(pki, tsa_services):
    variant = make_key_variant(pki, "ec-p256")
    with pytest.raises(FormatError, match="compact"):
        sign_document(
            PAYLOAD, __import__("io").BytesIO(), format="jades", level="B-T", key=variant.key,
            services=tsa_services, serialization="compact",
        )  # fmt: skip
    assert not variant.signer.calls
