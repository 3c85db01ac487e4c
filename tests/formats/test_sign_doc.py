"""CSC v2 signatures/signDoc and signatures/timestamp on a live Signet (keys in SoftHSM, local
CA publishing its CRL, the test PKI's TSA), every output checked by independent validators."""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import http.client
import io
import itertools
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from asn1crypto import algos, cms, pem
from asn1crypto import x509 as asn1_x509
from formats_helpers import openssl_cms_verify, openssl_ts_verify, pdfsig, xmlsec1_verify
from jwcrypto import jwk, jws
from jwcrypto.common import JWSEHeaderParameter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from werkzeug.serving import make_server

from tests.helpers import enrol, free_port, signet_server

SHA256 = "2.16.840.1.101.3.4.2.1"
PIN = "975310"
ALGOS = {
    "rsa-pkcs1": ("rsa", "1.2.840.113549.1.1.11", None),
    "rsa-pss": ("rsa", "1.2.840.113549.1.1.10", "pss"),
    "ec-p256": ("ec", "1.2.840.10045.4.3.2", None),
}


@pytest.fixture
def database_url(tmp_path):
    # The format matrix runs on SQLite; the SAD's database behaviour is tested on both engines.
    return f"sqlite:///{tmp_path / 'signet.db'}"


@dataclass
class Live:
    url: str
    session: requests.Session
    credentials: dict[str, str]
    roots: list[asn1_x509.Certificate]
    root_pem: Path
    nss_dir: Path
    tmp: Path
    services: Any = None

    def authorize(self, key: str, digests: list[bytes], num: int | None = None) -> str:
        response = self.session.post(
            f"{self.url}/csc/v2/credentials/authorize",
            json={
                "credentialID": self.credentials[key],
                "numSignatures": num or len(digests),
                "hashes": [b64(d) for d in digests],
                "hashAlgorithmOID": SHA256,
                "authData": [{"id": "PIN", "value": PIN}],
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()["SAD"]

    def sign_doc(self, variant: str, sad: str, **body) -> requests.Response:
        key, sign_algo, _ = ALGOS[variant]
        for entry in body.get("documents", []) + body.get("documentDigests", []):
            entry.setdefault("signAlgo", sign_algo)
            if variant == "rsa-pss":
                entry.setdefault("signAlgoParams", pss_params())
        return self.session.post(
            f"{self.url}/csc/v2/signatures/signDoc",
            json={"credentialID": self.credentials[key], "SAD": sad, **body},
            timeout=120,
        )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pss_params() -> str:
    return b64(
        algos.RSASSAPSSParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
                "salt_length": 32,
                "trailer_field": "trailer_field_bc",
            }
        ).dump()
    )


@pytest.fixture
def live(settings_env, pki, monkeypatch, tmp_path):
    from signet.config import load_settings
    from signet.signing import Services, admin
    from signet.web import create_app

    port = free_port()
    tsa_root = tmp_path / "tsa-root.pem"
    tsa_root.write_bytes(pem.armor("CERTIFICATE", pki.root.dump()))
    monkeypatch.setenv("SIGNET_WEB__BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SIGNET_FORMATS__TSA_URL", pki.tsa_url)
    monkeypatch.setenv("SIGNET_FORMATS__TRUST_ROOTS", json.dumps([str(tsa_root)]))
    services = Services(load_settings())
    admin.initialise(services)
    admin.add_user(
        services,
        "alice",
        password="long password",
        display_name="Alice Doc",
        email="alice@example.test",
        actor="test",
    )
    credentials = {}
    for key in ("rsa-2048", "ec-p256"):
        view = enrol(services, "alice", key=key, actor="test", activation="pin", pin=PIN)
        credentials[key.split("-")[0]] = view.credential_id
    server = make_server("127.0.0.1", port, create_app(services=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    session = requests.Session()
    token = session.post(
        f"http://127.0.0.1:{port}/csc/v2/auth/login", auth=("alice", "long password"), timeout=30
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    signet_root = services.ca.chain()[-1]
    root_pem = tmp_path / "roots.pem"
    root_pem.write_bytes(
        pem.armor("CERTIFICATE", signet_root.dump()) + pem.armor("CERTIFICATE", pki.root.dump())
    )
    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    for name, cert in (("signet", signet_root), ("tsa", pki.root)):
        (tmp_path / f"{name}.der").write_bytes(cert.dump())
        subprocess.run(
            [
                "certutil",
                "-A",
                "-d",
                f"sql:{nss}",
                "-n",
                name,
                "-t",
                "CT,C,C",
                "-i",
                str(tmp_path / f"{name}.der"),
            ],
            check=True,
        )
    yield Live(
        f"http://127.0.0.1:{port}",
        session,
        credentials,
        [signet_root, pki.root],
        root_pem,
        nss,
        tmp_path,
        services,
    )
    server.shutdown()
    services.database.dispose()


def signed_pdf(live: Live, variant: str, level: str, pdf: bytes) -> bytes:
    key = ALGOS[variant][0]
    sad = live.authorize(key, [hashlib.sha256(pdf).digest()])
    response = live.sign_doc(
        variant,
        sad,
        documents=[
            {
                "document": b64(pdf),
                "signature_format": "P",
                "conformance_level": f"Ades-{level}",
                "signed_envelope_property": "Enveloped",
            }
        ],
    )
    assert response.status_code == 200, response.text
    assert "SignatureObject" not in response.json()
    return base64.b64decode(response.json()["DocumentWithSignature"][0])


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT", "B-LTA"])
@pytest.mark.parametrize("variant", list(ALGOS))
def test_pades_levels_validate(live, sample_pdf, variant, level):
    pdf = sample_pdf.read_bytes()
    signed = signed_pdf(live, variant, level, pdf)
    reader = PdfFileReader(io.BytesIO(signed))
    # Judged at the signature time-stamp's time with the local CA's CRL fetched now (it only
    # serves a fresh one): revocation data issued after that time is what ETSI asks for.
    context = ValidationContext(
        trust_roots=live.roots, allow_fetching=True, retroactive_revinfo=True
    )
    status = validate_pdf_signature(reader.embedded_signatures[0], context)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    if level != "B-B":
        assert status.timestamp_validity is not None and status.timestamp_validity.intact
    if level in ("B-LT", "B-LTA"):
        assert reader.root["/DSS"]["/CRLs"], "the local CA's CRL is embedded"
    if level == "B-LTA":
        assert len(reader.embedded_signatures) == 2  # plus the document time-stamp
    out = live.tmp / f"{variant}-{level}.pdf"
    out.write_bytes(signed)
    first = pdfsig(out, live.nss_dir)[0]
    assert first["Signature Validation"] == "Signature is Valid.", first
    tampered = bytearray(signed)
    at = tampered.index(b"/MediaBox")
    tampered[at + 1] = ord("m")
    bad = live.tmp / f"{variant}-{level}-bad.pdf"
    bad.write_bytes(bytes(tampered))
    assert pdfsig(bad, live.nss_dir)[0]["Signature Validation"] != "Signature is Valid."
    assert not validate_pdf_signature(
        PdfFileReader(io.BytesIO(bytes(tampered))).embedded_signatures[0], context
    ).intact


@pytest.mark.parametrize("variant", ["rsa-pkcs1", "ec-p256"])
def test_xades_enveloped_b_lta_verifies_with_xmlsec1(live, variant):
    xml = b"<contract><party>Alice</party><amount>100</amount></contract>"
    sad = live.authorize(ALGOS[variant][0], [hashlib.sha256(xml).digest()])
    response = live.sign_doc(
        variant,
        sad,
        documents=[
            {
                "document": b64(xml),
                "signature_format": "X",
                "conformance_level": "Ades-B-LTA",
                "signed_envelope_property": "Enveloped",
            }
        ],
    )
    assert response.status_code == 200, response.text
    signed = base64.b64decode(response.json()["DocumentWithSignature"][0])
    assert b"ArchiveTimeStamp" in signed and b"RevocationValues" in signed
    path = live.tmp / "signed.xml"
    path.write_bytes(signed)
    assert xmlsec1_verify(path, live.root_pem)
    path.write_bytes(signed.replace(b"<amount>100</amount>", b"<amount>900</amount>"))
    assert not xmlsec1_verify(path, live.root_pem)


@pytest.mark.parametrize("variant", list(ALGOS))
def test_cades_from_document_digests_b_t(live, variant):
    content = b"a document the server never sees\n" * 100
    digest = hashlib.sha256(content).digest()
    sad = live.authorize(ALGOS[variant][0], [digest])
    response = live.sign_doc(
        variant,
        sad,
        documentDigests=[
            {
                "hashes": [b64(digest)],
                "hashAlgorithmOID": SHA256,
                "signature_format": "C",
                "conformance_level": "Ades-B-T",
                "signed_envelope_property": "Detached",
            }
        ],
    )
    assert response.status_code == 200, response.text
    p7s = base64.b64decode(response.json()["SignatureObject"][0])
    (live.tmp / "doc.bin").write_bytes(content)
    (live.tmp / "doc.p7s").write_bytes(p7s)
    assert openssl_cms_verify(live.tmp / "doc.p7s", live.tmp / "doc.bin", live.root_pem)
    signer_info = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]
    assert any(
        a["type"].native == "signature_time_stamp_token" for a in signer_info["unsigned_attrs"]
    )
    (live.tmp / "doc.bin").write_bytes(content + b"x")
    assert not openssl_cms_verify(live.tmp / "doc.p7s", live.tmp / "doc.bin", live.root_pem)


def test_jades_attached_b_b_verifies_with_jwcrypto(live):
    payload = b'{"order": 42}'
    sad = live.authorize("ec", [hashlib.sha256(payload).digest()])
    response = live.sign_doc(
        "ec-p256",
        sad,
        documents=[
            {
                "document": b64(payload),
                "signature_format": "J",
                "conformance_level": "Ades-B-B",
                "signed_envelope_property": "Attached",
            }
        ],
    )
    assert response.status_code == 200, response.text
    token = base64.b64decode(response.json()["DocumentWithSignature"][0]).decode()
    header = json.loads(
        base64.urlsafe_b64decode(json.loads(token)["protected"] + "==")
        if token.startswith("{")
        else base64.urlsafe_b64decode(token.split(".")[0] + "==")
    )
    cert = asn1_x509.Certificate.load(base64.b64decode(header["x5c"][0]))
    key = jwk.JWK.from_pem(pem.armor("PUBLIC KEY", cert.public_key.dump()))
    verifier = jws.JWS(
        header_registry={"sigT": JWSEHeaderParameter("Claimed signing time", True, True, None)}
    )
    verifier.deserialize(token)
    verifier.verify(key)
    assert verifier.payload == payload
    tampered = json.loads(token)
    tampered["payload"] = base64.urlsafe_b64encode(b'{"order": 43}').decode().rstrip("=")
    forged = jws.JWS(
        header_registry={"sigT": JWSEHeaderParameter("Claimed signing time", True, True, None)}
    )
    forged.deserialize(json.dumps(tampered))
    with pytest.raises(jws.InvalidJWSSignature):
        forged.verify(key)


def test_sign_doc_refusals(live, sample_pdf, monkeypatch):
    pdf = sample_pdf.read_bytes()
    other = hashlib.sha256(b"another document").digest()
    sad = live.authorize("rsa", [other])
    unbound = live.sign_doc(
        "rsa-pkcs1",
        sad,
        documents=[
            {"document": b64(pdf), "signature_format": "P", "conformance_level": "Ades-B-B"}
        ],
    )
    assert unbound.status_code == 400 and "not authorized" in unbound.json()["error_description"]
    sad = live.authorize("rsa", [hashlib.sha256(pdf).digest()])
    digests_as_pades = live.sign_doc(
        "rsa-pkcs1",
        sad,
        documentDigests=[
            {
                "hashes": [b64(hashlib.sha256(pdf).digest())],
                "hashAlgorithmOID": SHA256,
                "signature_format": "P",
            }
        ],
    )
    assert digests_as_pades.status_code == 400
    assert "CAdES detached" in digests_as_pades.json()["error_description"]
    two = live.sign_doc(
        "rsa-pkcs1",
        sad,
        documents=[
            {"document": b64(pdf), "signature_format": "P"},
            {"document": b64(pdf), "signature_format": "P"},
        ],
    )
    assert two.status_code == 400 and "numSignatures" in two.json()["error_description"]
    not_pdf = b"this is not a PDF"
    sad = live.authorize("rsa", [hashlib.sha256(not_pdf).digest()])
    broken = live.sign_doc(
        "rsa-pkcs1", sad, documents=[{"document": b64(not_pdf), "signature_format": "P"}]
    )
    assert broken.status_code == 400, broken.text
    # The refused document gave its signature back: the SAD still signs a valid one as CAdES.
    cades = live.sign_doc(
        "rsa-pkcs1",
        sad,
        documents=[
            {
                "document": b64(not_pdf),
                "signature_format": "C",
                "signed_envelope_property": "Attached",
            }
        ],
    )
    assert cades.status_code == 200, cades.text
    for bad_body, needle in (
        ({"documents": [{"document": "!!", "signature_format": "P"}]}, "base64"),
        ({"documents": [{"document": b64(pdf), "signature_format": "Z"}]}, "signature_format"),
        (
            {
                "documents": [
                    {"document": b64(pdf), "signature_format": "P", "conformance_level": "Ades-B-Q"}
                ]
            },
            "conformance_level",
        ),
        ({"documents": []}, "documents"),
        ({}, "documents"),
    ):
        response = live.sign_doc("rsa-pkcs1", sad, **bad_body)
        assert response.status_code == 400, (bad_body, response.text)
        assert needle in response.json()["error_description"], response.json()


def test_timestamp_endpoint_and_info(live):
    digest = hashlib.sha256(b"stamp me").digest()
    response = live.session.post(
        f"{live.url}/csc/v2/signatures/timestamp",
        json={"hash": b64(digest), "hashAlgorithmOID": SHA256, "nonce": "1f2e3d"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    token = base64.b64decode(response.json()["timestamp"])
    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert info["nonce"].native == 0x1F2E3D
    assert openssl_ts_verify(token, digest, live.root_pem, live.tmp)
    assert not openssl_ts_verify(token, hashlib.sha256(b"other").digest(), live.root_pem, live.tmp)
    bad = live.session.post(
        f"{live.url}/csc/v2/signatures/timestamp",
        json={"hash": b64(b"short"), "hashAlgorithmOID": SHA256},
        timeout=30,
    )
    assert bad.status_code == 400
    offered = live.session.post(f"{live.url}/csc/v2/info", json={}, timeout=30).json()
    assert offered["conformance_levels"] == ["Ades-B-B", "Ades-B-T", "Ades-B-LT", "Ades-B-LTA"]
    assert "signatures/signDoc" in offered["methods"]
    assert "signatures/timestamp" in offered["methods"]  # a TSA is configured
    v1 = live.session.post(
        f"{live.url}/csc/v1/signatures/timestamp",
        json={"hash": b64(digest), "hashAlgo": SHA256},
        timeout=30,
    )
    assert v1.status_code == 200, v1.text
    assert openssl_ts_verify(
        base64.b64decode(v1.json()["timestamp"]), digest, live.root_pem, live.tmp
    )
    # SHA-1 (csctester asks for it) is not offered: the refusal says what is, in v1's names
    sha1 = live.session.post(
        f"{live.url}/csc/v1/signatures/timestamp",
        json={"hash": b64(hashlib.sha1(b"stamp me").digest()), "hashAlgo": "1.3.14.3.2.26"},
        timeout=30,
    )
    assert sha1.status_code == 400
    assert sha1.json()["error_description"] == (
        "Invalid parameter hashAlgo: 1.3.14.3.2.26 is not offered; use 2.16.840.1.101.3.4.2.1 "
        "(sha256), 2.16.840.1.101.3.4.2.2 (sha384), 2.16.840.1.101.3.4.2.3 (sha512)"
    )
    assert offered["signature_formats"]["formats"] == ["C", "X", "P", "J"]


# -- documents over 64 KiB: spooled to disk on the way in, streamed from disk on the way out --
SHA384 = "2.16.840.1.101.3.4.2.2"


def deleted_files_open() -> int:
    """Open file descriptors of this process on deleted (temporary) files."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")
    return count


@pytest.fixture
def gunicorn(live):
    """`signet serve` (gunicorn, one worker) on the live fixture's database and token."""
    with signet_server(workers=1) as url:
        yield url


def pades_request(live: Live, pdf: Path, sad: str) -> tuple[bytes, bytes]:
    """The JSON of a signDoc request around the document, which goes in between."""
    head = json.dumps(
        {
            "credentialID": live.credentials["rsa"],
            "SAD": sad,
            "documents": [
                {
                    "document": "@",
                    "signature_format": "P",
                    "conformance_level": "Ades-B-B",
                    "signed_envelope_property": "Enveloped",
                    "signAlgo": ALGOS["rsa-pkcs1"][1],
                }
            ],
        }
    ).encode()
    before, after = head.split(b'"@"')
    return before + b'"', b'"' + after


def base64_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(3 * 2**18):
            yield base64.b64encode(chunk)


def check_signed_pdf(live: Live, signed: bytes, original: Path) -> None:
    assert signed[: original.stat().st_size] == original.read_bytes()  # an incremental update
    reader = PdfFileReader(io.BytesIO(signed))
    # Judged at the signature time-stamp's time with the local CA's CRL fetched now (it only
    # serves a fresh one): revocation data issued after that time is what ETSI asks for.
    context = ValidationContext(
        trust_roots=live.roots, allow_fetching=True, retroactive_revinfo=True
    )
    status = validate_pdf_signature(reader.embedded_signatures[0], context)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()


def test_a_20_mb_pdf_streams_through_gunicorn(live, gunicorn):
    from make_pdf import write_pdf

    pdf = write_pdf(live.tmp / "big.pdf", 20 * 2**20)
    sad = live.authorize("rsa", [hashlib.sha256(pdf.read_bytes()).digest()])
    before, after = pades_request(live, pdf, sad)
    length = len(before) + 4 * -(-pdf.stat().st_size // 3) + len(after)
    host = gunicorn.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=120)
    connection.request(
        "POST",
        "/csc/v2/signatures/signDoc",
        itertools.chain([before], base64_of(pdf), [after]),
        headers={
            "Authorization": live.session.headers["Authorization"],
            "Content-Type": "application/json",
            "Content-Length": str(length),
        },
    )
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    assert response.status == 200, raw[:500]
    assert int(response.headers["Content-Length"]) == len(raw)
    assert raw.endswith(b'"]}\n') and list(json.loads(raw)) == ["DocumentWithSignature"]
    check_signed_pdf(live, base64.b64decode(json.loads(raw)["DocumentWithSignature"][0]), pdf)

    # The same without Content-Length: a chunked upload, which gunicorn ends for us.
    small = write_pdf(live.tmp / "small.pdf", 2**20)
    sad = live.authorize("rsa", [hashlib.sha256(small.read_bytes()).digest()])
    before, after = pades_request(live, small, sad)
    chunked = requests.post(
        f"{gunicorn}/csc/v2/signatures/signDoc",
        data=itertools.chain([before], base64_of(small), [after]),
        headers={
            "Authorization": live.session.headers["Authorization"],
            "Content-Type": "application/json",
        },
        timeout=120,
    )
    assert chunked.status_code == 200, chunked.text[:500]
    check_signed_pdf(live, base64.b64decode(chunked.json()["DocumentWithSignature"][0]), small)


def multipart_sign_doc(
    url: str, live: Live, request: dict[str, Any], documents: list[Path | bytes], accept: str
) -> requests.Response:
    """signDoc as multipart/form-data, encoded by requests (urllib3), documents from files."""
    with contextlib.ExitStack() as stack:
        files: list[tuple[str, Any]] = [
            ("request", (None, json.dumps(request), "application/json"))
        ]
        for document in documents:
            files.append(
                (
                    "document",
                    (
                        "doc",
                        stack.enter_context(document.open("rb"))
                        if isinstance(document, Path)
                        else document,
                    ),
                )
            )
        return requests.post(
            f"{url}/csc/v2/signatures/signDoc",
            files=files,
            timeout=120,
            headers={"Authorization": live.session.headers["Authorization"], "Accept": accept},
        )


def mime_parts(response: requests.Response) -> list[tuple[str, bytes]]:
    """A multipart/mixed answer read by the standard library: (name, bytes) of each part."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode() + response.content
    )
    return [
        (part.get_param("name", header="content-disposition"), part.get_payload(decode=True))
        for part in message.iter_parts()
    ]


def test_multipart_sign_doc_through_gunicorn(live, gunicorn):
    """Documents as raw parts and outputs as raw parts: no base64 either way."""
    from make_pdf import write_pdf

    pdf = write_pdf(live.tmp / "raw.pdf", 3 * 2**20 + 12_345)  # a few 1 MiB reads
    blob = os.urandom(200_000)
    sad = live.authorize(
        "rsa", [hashlib.sha256(pdf.read_bytes()).digest(), hashlib.sha256(blob).digest()]
    )
    request = {
        "credentialID": live.credentials["rsa"],
        "SAD": sad,
        "documents": [
            {"signature_format": "P", "signAlgo": ALGOS["rsa-pkcs1"][1]},
            {
                "signature_format": "C",
                "signed_envelope_property": "Detached",
                "signAlgo": ALGOS["rsa-pkcs1"][1],
            },
        ],
    }
    # One answer body takes one document: refused before anything is signed or spent...
    refused = multipart_sign_doc(gunicorn, live, request, [pdf, blob], "application/octet-stream")
    assert (refused.status_code, refused.json()["error_description"]) == (
        406,
        "Accept: application/octet-stream answers one document a request, not 2: accept "
        "multipart/mixed for several",
    )
    # ... so the same SAD then signs both, answered as multipart/mixed.
    response = multipart_sign_doc(gunicorn, live, request, [pdf, blob], "multipart/mixed")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    (name, signed), (detached_name, p7s) = mime_parts(response)
    assert (name, detached_name) == ("DocumentWithSignature", "SignatureObject")
    check_signed_pdf(live, signed, pdf)
    (live.tmp / "raw-signed.pdf").write_bytes(signed)
    first = pdfsig(live.tmp / "raw-signed.pdf", live.nss_dir)[0]
    assert first["Signature Validation"] == "Signature is Valid.", first
    (live.tmp / "blob.bin").write_bytes(blob)
    (live.tmp / "blob.p7s").write_bytes(p7s)
    assert openssl_cms_verify(live.tmp / "blob.p7s", live.tmp / "blob.bin", live.root_pem)

    # A multipart request answered the usual way (JSON, base64) when the client asks nothing.
    small = os.urandom(1000)
    request["SAD"] = live.authorize("rsa", [hashlib.sha256(small).digest()])
    request["documents"] = request["documents"][1:]
    response = multipart_sign_doc(gunicorn, live, request, [small], "*/*")
    assert response.status_code == 200, response.text[:500]
    (live.tmp / "small.bin").write_bytes(small)
    (live.tmp / "small.p7s").write_bytes(base64.b64decode(response.json()["SignatureObject"][0]))
    assert openssl_cms_verify(live.tmp / "small.p7s", live.tmp / "small.bin", live.root_pem)

    # One document, answered with its signed bytes alone (gunicorn sends the file itself).
    request["SAD"] = live.authorize("rsa", [hashlib.sha256(pdf.read_bytes()).digest()])
    request["documents"] = [{"signature_format": "P", "signAlgo": ALGOS["rsa-pkcs1"][1]}]
    response = multipart_sign_doc(gunicorn, live, request, [pdf], "application/octet-stream")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; name="DocumentWithSignature"'
    assert int(response.headers["Content-Length"]) == len(response.content)
    check_signed_pdf(live, response.content, pdf)

    # A small output, kept in memory rather than in a file, answered the same way.
    request["SAD"] = live.authorize("rsa", [hashlib.sha256(small).digest()])
    request["documents"] = [
        {
            "signature_format": "C",
            "signed_envelope_property": "Detached",
            "signAlgo": ALGOS["rsa-pkcs1"][1],
        }
    ]
    response = multipart_sign_doc(gunicorn, live, request, [small], "application/octet-stream")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Disposition"] == 'attachment; name="SignatureObject"'
    (live.tmp / "small.p7s").write_bytes(response.content)
    assert openssl_cms_verify(live.tmp / "small.p7s", live.tmp / "small.bin", live.root_pem)


def test_request_part_last_and_only_the_appended_bytes_through_gunicorn(live, gunicorn):
    """A client hashes a PDF while it sends it, authorizes with that hash while its signDoc
    waits, and then sends the request part; it asks for only what signing appended
    (signet_appended) and appends that to its own copy, which then validates."""
    from make_pdf import write_pdf

    pdf = write_pdf(live.tmp / "streamed.pdf", 3 * 2**20 + 999)
    boundary = "streamed-boundary"
    connection = http.client.HTTPConnection(gunicorn.removeprefix("http://"), timeout=120)
    connection.putrequest("POST", "/csc/v2/signatures/signDoc")
    for name, value in {
        "Authorization": live.session.headers["Authorization"],
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Accept": "application/octet-stream",
        "Transfer-Encoding": "chunked",
    }.items():
        connection.putheader(name, value)
    connection.endheaders()

    def chunk(data: bytes) -> None:
        connection.send(b"%x\r\n%s\r\n" % (len(data), data))

    chunk(f"--{boundary}\r\nContent-Disposition: form-data; name=document\r\n\r\n".encode())
    digest = hashlib.sha256()
    with pdf.open("rb") as source:
        while piece := source.read(2**20):
            digest.update(piece)
            chunk(piece)
    sad = live.authorize("rsa", [digest.digest()])  # the server holds the request meanwhile
    request = {
        "credentialID": live.credentials["rsa"],
        "SAD": sad,
        "signet_appended": True,
        "documents": [{"signature_format": "P", "signAlgo": ALGOS["rsa-pkcs1"][1]}],
    }
    chunk(
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=request\r\n\r\n"
        f"{json.dumps(request)}\r\n--{boundary}--\r\n".encode()
    )
    connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    appended = response.read()
    connection.close()
    assert response.status == 200, appended[:500]
    assert response.headers["Signet-Appended-To"] == str(pdf.stat().st_size)
    assert int(response.headers["Content-Length"]) == len(appended) < 100_000
    signed = pdf.read_bytes() + appended
    check_signed_pdf(live, signed, pdf)
    (live.tmp / "streamed-signed.pdf").write_bytes(signed)
    assert (
        pdfsig(live.tmp / "streamed-signed.pdf", live.nss_dir)[0]["Signature Validation"]
        == "Signature is Valid."
    )

    # Several outputs: the PDF's appended bytes, and a detached signature whole.
    blob = os.urandom(100_000)
    request["SAD"] = live.authorize("rsa", [digest.digest(), hashlib.sha256(blob).digest()])
    request["documents"].append(
        {
            "signature_format": "C",
            "signed_envelope_property": "Detached",
            "signAlgo": ALGOS["rsa-pkcs1"][1],
        }
    )
    response = multipart_sign_doc(gunicorn, live, request, [pdf, blob], "multipart/mixed")
    assert response.status_code == 200, response.text[:500]
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode() + response.content
    )
    pades, cades = message.iter_parts()
    assert pades["Signet-Appended-To"] == str(pdf.stat().st_size)
    check_signed_pdf(live, pdf.read_bytes() + pades.get_payload(decode=True), pdf)
    assert cades["Signet-Appended-To"] is None
    (live.tmp / "blob.bin").write_bytes(blob)
    (live.tmp / "blob.p7s").write_bytes(cades.get_payload(decode=True))
    assert openssl_cms_verify(live.tmp / "blob.p7s", live.tmp / "blob.bin", live.root_pem)


def test_appended_refusals_spend_nothing(live):
    from make_pdf import write_pdf

    pdf = write_pdf(live.tmp / "small.pdf", 100_000)
    sad = live.authorize("rsa", [hashlib.sha256(pdf.read_bytes()).digest()])
    pades = {"signature_format": "P", "signAlgo": ALGOS["rsa-pkcs1"][1]}
    xades = {
        "signature_format": "X",
        "signed_envelope_property": "Enveloped",
        "signAlgo": ALGOS["rsa-pkcs1"][1],
    }
    for flag, entry, accept, status, message in [
        (
            True,
            pades,
            "application/json",
            406,
            "signet_appended answers raw bytes, each output with a Signet-Appended-To header: "
            "accept application/octet-stream or multipart/mixed",
        ),
        (
            "yes",
            pades,
            "application/octet-stream",
            400,
            "Invalid type for boolean parameter signet_appended",
        ),
        (
            True,
            xades,
            "application/octet-stream",
            400,
            "Invalid parameter signet_appended: only PAdES signs by appending to the document, "
            "not xades enveloped",
        ),
    ]:
        request = {
            "credentialID": live.credentials["rsa"],
            "SAD": sad,
            "signet_appended": flag,
            "documents": [entry],
        }
        refused = multipart_sign_doc(live.url, live, request, [pdf], accept)
        assert (refused.status_code, refused.json()["error_description"]) == (status, message)
    # Nothing was spent: the same SAD signs, and the whole PDF comes back without the flag.
    request = {"credentialID": live.credentials["rsa"], "SAD": sad, "documents": [pades]}
    response = multipart_sign_doc(live.url, live, request, [pdf], "application/octet-stream")
    assert response.status_code == 200, response.text[:500]
    assert "Signet-Appended-To" not in response.headers
    check_signed_pdf(live, response.content, pdf)


def test_appended_bytes_of_a_small_pdf_sent_in_json(live):
    """A PDF under 64 KiB in the JSON transport is not spooled: PAdES copies it to an output
    kept in memory, and the answer still starts where the document ends."""
    from make_pdf import write_pdf

    pdf = write_pdf(live.tmp / "tiny.pdf", 20_000)
    sad = live.authorize("ec", [hashlib.sha256(pdf.read_bytes()).digest()])
    response = live.session.post(
        f"{live.url}/csc/v2/signatures/signDoc",
        timeout=60,
        headers={"Accept": "application/octet-stream"},
        json={
            "credentialID": live.credentials["ec"],
            "SAD": sad,
            "signet_appended": True,
            "documents": [
                {
                    "document": b64(pdf.read_bytes()),
                    "signature_format": "P",
                    "signAlgo": ALGOS["ec-p256"][1],
                }
            ],
        },
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Signet-Appended-To"] == str(pdf.stat().st_size)
    check_signed_pdf(live, pdf.read_bytes() + response.content, pdf)


def test_multipart_refusals_are_csc_errors_and_leave_no_file(live):
    open_before = deleted_files_open()
    document = os.urandom(300_000)
    sad = live.authorize("rsa", [hashlib.sha256(b"another document").digest()])
    entry = {"signature_format": "C", "signAlgo": ALGOS["rsa-pkcs1"][1]}
    request = {"credentialID": live.credentials["rsa"], "SAD": sad, "documents": [entry]}
    for documents, body, status, message in (
        (
            [document],
            request,
            400,
            f"Hash not authorized by the SAD: {b64(hashlib.sha256(document).digest())}",
        ),
        (
            [document, document],
            request,
            400,
            "Invalid parameter documents: 1 entries for 2 document parts",
        ),
        (
            [document],
            {**request, "documents": [{**entry, "document": "QQ=="}]},
            400,
            "Invalid parameter document: in a multipart/form-data request each document is a "
            "part named document, not a JSON string",
        ),
    ):
        response = multipart_sign_doc(live.url, live, body, documents, "multipart/mixed")
        assert response.headers["Content-Type"] == "application/json"
        assert (response.status_code, response.json()["error_description"]) == (status, message)
    refused = requests.post(
        f"{live.url}/csc/v2/signatures/signDoc",
        timeout=30,
        data=b"--b\r\nContent-Disposition: form-data; name=request\r\n\r\n{}",
        headers={
            "Authorization": live.session.headers["Authorization"],
            "Content-Type": "multipart/form-data; boundary=b",
        },
    )
    assert (refused.status_code, refused.json()["error_description"]) == (
        400,
        "Malformed multipart/form-data body: it ends before the closing boundary",
    )
    assert deleted_files_open() == open_before


def test_a_bulk_request_does_not_hold_a_file_per_document(live):
    """Small outputs are kept in memory, so 100 documents (a credential's multisign) sign with
    room for 60 more open files in this process. With a file per output they ran out, and
    SoftHSM, unable to open its own files, failed the request (503 "HSM error:
    ObjectHandleInvalid")."""
    documents = [os.urandom(300) for _ in range(100)]
    sad = live.authorize("ec", [hashlib.sha256(d).digest() for d in documents])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 60, hard))
    try:
        response = live.sign_doc(
            "ec-p256",
            sad,
            documents=[
                {
                    "document": b64(d),
                    "signature_format": "C",
                    "signed_envelope_property": "Detached",
                }
                for d in documents
            ],
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert response.status_code == 200, response.text[:500]
    signatures = response.json()["SignatureObject"]
    assert len(signatures) == len(documents)
    for index in (0, 99):
        (live.tmp / "bulk.bin").write_bytes(documents[index])
        (live.tmp / "bulk.p7s").write_bytes(base64.b64decode(signatures[index]))
        assert openssl_cms_verify(live.tmp / "bulk.p7s", live.tmp / "bulk.bin", live.root_pem)


def test_a_long_pdf_is_signed_in_place_b_lta(live, monkeypatch):
    """A spooled PDF gets its signature, DSS and document time-stamp appended where it lies:
    signDoc opens no output file of its own, and every temporary file is closed after."""
    import tempfile

    from make_pdf import write_pdf

    real = tempfile.TemporaryFile
    opened_by: list[str] = []

    def tracked(*args, **kwargs):
        opened_by.append(sys._getframe(1).f_globals["__name__"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", tracked)
    open_before = deleted_files_open()
    pdf = write_pdf(live.tmp / "long.pdf", 300_000)
    signed = signed_pdf(live, "rsa-pkcs1", "B-LTA", pdf.read_bytes())
    check_signed_pdf(live, signed, pdf)
    reader = PdfFileReader(io.BytesIO(signed))
    assert len(reader.embedded_signatures) == 2 and "/DSS" in reader.root
    deadline = time.monotonic() + 10  # the server closes the answer after sending it
    while deleted_files_open() != open_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deleted_files_open() == open_before
    assert opened_by == ["signet.web.signdoc.spool"]


def test_long_documents_in_every_format_with_a_sha384_sad(live):
    xml = (
        b"<contract>"
        + b"".join(
            b"<clause n='%d'>%s</clause>" % (i, base64.b64encode(os.urandom(60)))
            for i in range(2500)
        )
        + b"</contract>"
    )
    blob = os.urandom(300_000)
    payload = json.dumps([base64.b64encode(os.urandom(48)).decode() for _ in range(3000)]).encode()
    documents = [
        (xml, "X", "Enveloped"),
        (blob, "C", "Detached"),
        (blob, "C", "Attached"),
        (payload, "J", "Attached"),
    ]
    assert all(len(d) > 128 * 1024 for d, _, _ in documents)
    authorized = live.session.post(
        f"{live.url}/csc/v2/credentials/authorize",
        json={
            "credentialID": live.credentials["rsa"],
            "numSignatures": len(documents),
            "hashes": [b64(hashlib.sha384(d).digest()) for d, _, _ in documents],
            "hashAlgorithmOID": SHA384,
            "authData": [{"id": "PIN", "value": PIN}],
        },
        timeout=30,
    )
    assert authorized.status_code == 200, authorized.text
    body = json.dumps(
        {
            "credentialID": live.credentials["rsa"],
            "SAD": authorized.json()["SAD"],
            "documents": [
                {
                    "document": b64(d),
                    "signature_format": f,
                    "signed_envelope_property": p,
                    "signAlgo": ALGOS["rsa-pkcs1"][1],
                }
                for d, f, p in documents
            ],
        }
    )
    body = body.replace("/", "\\/")  # as some JSON encoders write it; valid in any string
    response = live.session.post(
        f"{live.url}/csc/v2/signatures/signDoc",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert response.status_code == 200, response.text[:500]
    signed_xml, p7m, jades = map(base64.b64decode, response.json()["DocumentWithSignature"])
    (p7s,) = map(base64.b64decode, response.json()["SignatureObject"])
    (live.tmp / "signed.xml").write_bytes(signed_xml)
    assert xmlsec1_verify(live.tmp / "signed.xml", live.root_pem)
    (live.tmp / "blob.bin").write_bytes(blob)
    (live.tmp / "blob.p7s").write_bytes(p7s)
    assert openssl_cms_verify(live.tmp / "blob.p7s", live.tmp / "blob.bin", live.root_pem)
    (live.tmp / "blob.p7m").write_bytes(p7m)
    assert openssl_cms_verify(live.tmp / "blob.p7m", None, live.root_pem)
    assert cms.ContentInfo.load(p7m)["content"]["encap_content_info"]["content"].native == blob
    header = json.loads(base64.urlsafe_b64decode(json.loads(jades)["protected"] + "=="))
    cert = asn1_x509.Certificate.load(base64.b64decode(header["x5c"][0]))
    verifier = jws.JWS(
        header_registry={"sigT": JWSEHeaderParameter("Claimed signing time", True, True, None)}
    )
    verifier.deserialize(jades.decode())
    verifier.verify(jwk.JWK.from_pem(pem.armor("PUBLIC KEY", cert.public_key.dump())))
    assert verifier.payload == payload


def test_long_document_refusals(live):
    open_before = deleted_files_open()
    document = b64(os.urandom(200_000))
    sad = live.authorize("rsa", [hashlib.sha256(b"something else").digest()])
    for entry, sad_value, status, message in (
        (
            {"document": document[:100_000] + "!" + document[100_000:]},
            sad,
            400,
            "Invalid parameter document: not base64",
        ),
        (
            {"document": document[:100_000] + "\\n" + document[100_000:]},
            sad,
            400,
            "Invalid parameter document: not base64",
        ),
        ({"document": document}, "S" * 100_000, 400, "Invalid parameter SAD: longer than 64 KiB"),
        (
            {"document": document, "signAlgoParams": "A" * 70_000},
            sad,
            400,
            "Invalid parameter signAlgoParams: longer than 64 KiB",
        ),
    ):
        body = json.dumps(
            {
                "credentialID": live.credentials["rsa"],
                "SAD": sad_value,
                "documents": [
                    {"signature_format": "C", "signAlgo": ALGOS["rsa-pkcs1"][1], **entry}
                ],
            }
        )
        response = live.session.post(
            f"{live.url}/csc/v2/signatures/signDoc",
            data=body.replace("\\\\n", "\\n"),
            timeout=60,
            headers={"Content-Type": "application/json"},
        )
        assert (response.status_code, response.json()["error_description"]) == (status, message)
    live.services.settings.formats.max_document_mb = 1
    too_long = live.sign_doc(
        "rsa-pkcs1",
        sad,
        documents=[{"document": b64(os.urandom(1_200_000)), "signature_format": "C"}],
    )
    assert too_long.status_code == 413
    assert too_long.json() == {
        "error": "invalid_request",
        "error_description": "document larger than 1 MiB (formats.max_document_mb)",
    }
    connection = http.client.HTTPConnection(live.url.removeprefix("http://"), timeout=30)
    connection.putrequest("POST", "/csc/v2/signatures/signDoc")
    for name, value in (
        ("Authorization", live.session.headers["Authorization"]),
        ("Content-Type", "application/json"),
        ("Content-Length", "3000000"),
    ):
        connection.putheader(name, value)
    connection.endheaders()  # and no body: the declared length alone is refused
    response = connection.getresponse()
    refused = json.loads(response.read())
    connection.close()
    assert response.status == 413 and "formats.max_document_mb" in refused["error_description"]
    assert deleted_files_open() == open_before  # every temporary file was closed
    assert live.session.post(f"{live.url}/csc/v2/info", json={}, timeout=30).status_code == 200
