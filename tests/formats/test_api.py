"""signet.formats API contract: digests, errors that name the failing service, one signature."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import threading
from collections.abc import Iterator

import pytest
import requests
from formats_helpers import openssl_cms_verify
from formats_keys import CountingSigner, make_key_variant
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from signet.formats import (
    FormatError,
    Level,
    RemoteKey,
    ServiceError,
    ServicesConfig,
    TsaConfig,
    async_sign_document,
    compute_document_digest,
    parse_level,
    sign_document,
)

DATA = b"Signet API test\n" * 1000


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_compute_document_digest_from_bytes_path_and_streams(hash_name, tmp_path):
    expected = hashlib.new(hash_name, DATA).digest()
    path = tmp_path / "doc.bin"
    path.write_bytes(DATA)

    class PipeLike(io.RawIOBase):
        def __init__(self) -> None:
            self._inner = io.BytesIO(DATA)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            return self._inner.readinto(buffer)

    for source in (DATA, path, str(path), io.BytesIO(DATA), PipeLike()):
        assert compute_document_digest(source, hash_name) == expected
    with pytest.raises(FormatError, match="unsupported hash"):
        compute_document_digest(DATA, "md5")


def test_level_and_format_names():
    assert parse_level("Ades-B-LTA") is Level.B_LTA
    assert parse_level("b_lt") is Level.B_LT
    with pytest.raises(FormatError, match="unknown signature level"):
        parse_level("B-LTV")


def test_invalid_combinations_fail_before_signing(pki, tsa_services):
    variant = make_key_variant(pki, "rsa-pkcs1")
    cases = [
        ({"format": "cades", "packaging": "enveloped", "level": "B-B"}, "cannot be packaged"),
        ({"format": "odf", "level": "B-B"}, "unknown signature format"),
        ({"format": "xades", "packaging": "detached", "level": "B-B"}, "document_name"),
        ({"format": "xades", "level": "B-B"}, "needs an XML document"),
        ({"format": "jades", "level": "B-B", "hash_algorithm": "sha1"}, "sha1"),
        ({"format": "cades", "level": "B-B", "scheme": "ecdsa"}, "not possible with an RSA key"),
    ]
    for kwargs, message in cases:
        with pytest.raises(FormatError, match=message):
            sign_document(DATA, io.BytesIO(), key=variant.key, services=tsa_services, **kwargs)
    assert not variant.signer.calls


@pytest.mark.parametrize("fmt", ["pades", "cades", "xades", "jades"])
def test_levels_above_b_b_need_a_tsa(fmt, pki, sample_pdf):
    variant = make_key_variant(pki, "ec-p256")
    source = sample_pdf if fmt == "pades" else b"<doc/>"
    with pytest.raises(FormatError, match="time-stamping service"):
        sign_document(source, io.BytesIO(), format=fmt, level="B-T", key=variant.key)
    assert not variant.signer.calls


def test_signature_from_the_wrong_key_is_refused(pki):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    rsa = make_key_variant(pki, "rsa-pkcs1")
    other_rsa_key = CountingSigner(load_pem_private_key(pki.private_key_pem("tsa"), None))
    mismatched = RemoteKey(
        certificate=rsa.key.certificate, chain=rsa.key.chain, sign_digest=other_rsa_key
    )
    with pytest.raises(FormatError, match="does not verify"):
        sign_document(
            DATA, io.BytesIO(), format="cades", level="B-B", key=mismatched, scheme="pkcs1v15"
        )


def test_remote_key_checks_claimed_key_parameters(pki):
    variant = make_key_variant(pki, "ec-p256")
    key = variant.key
    assert (key.key_type, key.key_size, key.curve) == ("ec", 256, "secp256r1")
    with pytest.raises(FormatError, match="does not match"):
        RemoteKey(
            certificate=key.certificate, chain=key.chain, sign_digest=variant.signer, key_type="rsa"
        )
    from_der = RemoteKey.from_certificates(
        key.certificate.dump(), [c.dump() for c in key.chain], variant.signer
    )
    assert from_der.certificate.dump() == key.certificate.dump()


def test_sign_document_refuses_a_running_event_loop(pki):
    variant = make_key_variant(pki, "ec-p256")

    async def inside_loop() -> None:
        with pytest.raises(FormatError, match="event loop"):
            sign_document(DATA, io.BytesIO(), format="cades", level="B-B", key=variant.key)
        out = io.BytesIO()
        await async_sign_document(DATA, out, format="cades", level="B-B", key=variant.key)
        assert out.getvalue()

    asyncio.run(inside_loop())
    assert len(variant.signer.calls) == 1


@pytest.mark.parametrize("fmt", ["pades", "cades"])
def test_unreachable_tsa_is_a_service_error_naming_it(fmt, pki, sample_pdf):
    variant = make_key_variant(pki, "rsa-pkcs1")
    dead = "http://127.0.0.1:9/tsa"  # discard port: connection refused
    dead_tsa = ServicesConfig(tsa=TsaConfig(url=dead, timeout=2, retries=1, retry_backoff=0.01))
    source = sample_pdf if fmt == "pades" else DATA
    with pytest.raises(ServiceError) as caught:
        sign_document(
            source, io.BytesIO(), format=fmt, level="B-T", key=variant.key, services=dead_tsa
        )
    assert caught.value.service == "tsa" and caught.value.url == dead and dead in str(caught.value)
    if fmt == "pades":
        # pyHanko sizes the signature with a real TSA request before signing: no SAD is lost
        assert not variant.signer.calls


@pytest.mark.parametrize("fmt", ["pades", "cades", "xades", "jades"])
def test_failing_ocsp_responder_is_a_service_error_before_signing(
    fmt, pki, tsa_services, sample_pdf
):
    label = "signer-dead-ocsp"
    signer = make_key_variant(pki, "rsa-pkcs1").signer
    key = RemoteKey(certificate=pki.cert(label), chain=(pki.interm, pki.root), sign_digest=signer)
    ocsp_url = pki.cert(label).ocsp_urls[0]
    source = sample_pdf if fmt == "pades" else b"<doc/>"
    with pytest.raises(ServiceError) as caught:
        sign_document(
            source, io.BytesIO(), format=fmt, level="B-LT", key=key, services=tsa_services
        )
    assert caught.value.service == "ocsp"
    assert ocsp_url in str(caught.value)
    assert not signer.calls  # revocation data is gathered before the SAD is spent


def _self_signed_key() -> RemoteKey:
    """A signer under its own self-signed root: the test PKI's TSA does not chain to it."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization

    from tests.helpers import self_signed_certificate

    certificate, private_key = self_signed_certificate("Self-signed signer")
    root = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    return RemoteKey(certificate=root, chain=(root,), sign_digest=CountingSigner(private_key))


@pytest.mark.parametrize("fmt", ["pades", "cades", "xades", "jades"])
def test_a_tsa_outside_the_trust_anchors_fails_b_lt_before_signing(fmt, tsa_services, sample_pdf):
    """B-LT embeds the validation data of the TSA's certificate too: a TSA whose certificate
    does not chain to a trust anchor is found with a probe token before the key signs."""
    key = _self_signed_key()
    source = sample_pdf if fmt == "pades" else b"<doc/>"
    with pytest.raises(FormatError, match="the TSA.s certificate .*Signet Test TSA"):
        sign_document(
            source, io.BytesIO(), format=fmt, level="B-LT", key=key, services=tsa_services
        )
    assert not key.sign_digest.calls  # type: ignore[attr-defined]
    # The same key at B-T (no validation data) signs, with the same TSA.
    out = io.BytesIO()
    sign_document(source, out, format=fmt, level="B-T", key=key, services=tsa_services)
    assert len(key.sign_digest.calls) == 1  # type: ignore[attr-defined]


@pytest.fixture
def authenticated_tsa(pki) -> Iterator[tuple[str, list[int]]]:
    """A TSA front that wants HTTP Basic auth and fails its first request with 503."""
    statuses: list[int] = []
    expected = "Basic " + base64.b64encode(b"signet:s3cret").decode()

    @Request.application
    def app(request: Request) -> Response:
        if request.headers.get("Authorization") != expected:
            statuses.append(401)
            return Response("auth required", status=401)
        if not statuses:
            statuses.append(503)
            return Response("try again", status=503)
        upstream = requests.post(
            pki.tsa_url,
            data=request.get_data(),
            headers={"Content-Type": "application/timestamp-query"},
            timeout=10,
        )
        statuses.append(upstream.status_code)
        return Response(
            upstream.content,
            status=upstream.status_code,
            content_type=upstream.headers["Content-Type"],
        )

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/tsa", statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_tsa_basic_auth_and_retry(authenticated_tsa, pki, trust, tmp_path):
    url, statuses = authenticated_tsa
    variant = make_key_variant(pki, "ec-p256")
    authenticating_tsa = ServicesConfig(
        tsa=TsaConfig(url=url, username="signet", password="s3cret", retries=2, retry_backoff=0.01)
    )
    signature = tmp_path / "doc.p7s"
    document = tmp_path / "doc.bin"
    document.write_bytes(DATA)
    with open(signature, "wb") as out:
        sign_document(
            document, out, format="cades", level="B-T", key=variant.key, services=authenticating_tsa
        )
    assert statuses == [503, 200]
    assert openssl_cms_verify(signature, document, trust.root_pem)

    wrong = ServicesConfig(tsa=TsaConfig(url=url, username="signet", password="nope", retries=0))
    with pytest.raises(ServiceError, match=url):
        sign_document(
            DATA, io.BytesIO(), format="cades", level="B-T", key=variant.key, services=wrong
        )


def test_counting_signer_sees_only_digests(pki, sample_pdf):
    """Every format hands sign_digest one hash of the right size -- never document bytes."""
    for fmt, source, extra in (
        ("pades", sample_pdf, {}),
        ("cades", DATA, {"packaging": "attached"}),
        ("xades", DATA, {"packaging": "enveloping"}),
        ("jades", DATA, {}),
    ):
        variant = make_key_variant(pki, "rsa-pss")
        sign_document(
            source, io.BytesIO(), format=fmt, level="B-B", key=variant.key, scheme="pss",
            hash_algorithm="sha384", **extra,
        )  # fmt: skip
        assert [(len(d), h, s) for d, h, s in variant.signer.calls] == [(48, "sha384", "pss")]
    assert isinstance(variant.signer, CountingSigner)
