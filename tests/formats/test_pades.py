"""PAdES B-B..B-LTA with RSA PKCS#1 v1.5, RSA-PSS and ECDSA, checked by pyHanko and pdfsig."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path

import pytest
from formats_helpers import openssl_ts_verify, pdfsig
from formats_keys import make_key_variant
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.policy_decl import (
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager

from signet.formats import FormatError, sign_document

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]
EXPECTED_MECHANISM = {"rsa-pkcs1": "sha256_rsa", "rsa-pss": "rsassa_pss", "ec-p256": "sha256_ecdsa"}


def _tamper(signed: Path, target: Path) -> Path:
    data = signed.read_bytes()
    marker = b"Signet test document"
    assert data.count(marker) == 1
    target.write_bytes(data.replace(marker, b"Signet test documenT"))
    return target


def _lta_spec(root, fetching: RevinfoOnlineFetchingRule) -> PdfSignatureValidationSpec:
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=fetching, fetcher_backend=RequestsFetcherBackend()
            ),
        )
    )


@pytest.mark.parametrize("level", LEVELS)
def test_pades_levels_validate_and_tampering_fails(
    level, key_variant, pki, tsa_services, trust, sample_pdf, tmp_path
):
    signed = tmp_path / "signed.pdf"
    with open(signed, "w+b") as out:
        sign_document(
            sample_pdf, out, format="pades", level=level, key=key_variant.key,
            scheme=key_variant.scheme, services=tsa_services,
        )  # fmt: skip
    assert len(key_variant.signer.calls) == 1
    digest, hash_name, scheme = key_variant.signer.calls[0]
    assert (len(digest), hash_name, scheme) == (32, "sha256", key_variant.scheme)

    with open(signed, "rb") as handle:
        reader = PdfFileReader(handle)
        signatures = reader.embedded_signatures
        embedded = signatures[0]
        mechanism = embedded.signer_info["signature_algorithm"]["algorithm"].native
        assert mechanism == EXPECTED_MECHANISM[key_variant.name]
        context = ValidationContext(
            trust_roots=[pki.root], allow_fetching=True, fetcher_backend=RequestsFetcherBackend()
        )
        status = asyncio.run(
            async_validate_pdf_signature(embedded, signer_validation_context=context)
        )
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.signing_cert.dump() == pki.cert(key_variant.label).dump()

        unsigned = embedded.signer_info["unsigned_attrs"]
        if level == "B-B":
            assert not unsigned
        else:
            assert status.timestamp_validity is not None
            assert status.timestamp_validity.intact and status.timestamp_validity.trusted
            # the signature time-stamp's imprint is the hash of the signature value
            imprint = hashlib.sha256(embedded.signer_info["signature"].native).digest()
            assert unsigned[0]["type"].native == "signature_time_stamp_token"
            assert openssl_ts_verify(
                unsigned[0]["values"][0].dump(), imprint,
                trust.root_pem, tmp_path,
            )  # fmt: skip

        if level in ("B-LT", "B-LTA"):
            # The DSS alone must make the signature and its time-stamp verifiable: no fetching
            # and revocation data required for every certificate.
            dss = DocumentSecurityStore.read_dss(reader)
            offline = dss.as_validation_context(
                {"trust_roots": [pki.root], "allow_fetching": False, "revocation_mode": "require"}
            )
            offline_status = asyncio.run(
                async_validate_pdf_signature(
                    embedded, signer_validation_context=offline, ts_validation_context=offline
                )
            )
            assert offline_status.bottom_line, offline_status.pretty_print_details()
        else:
            assert "/DSS" not in reader.root

        if level == "B-LTA":
            assert len(signatures) == 2 and signatures[1].sig_object_type == "/DocTimeStamp"
            result = asyncio.run(
                ades_lta_validation(
                    embedded, _lta_spec(pki.root, RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH)
                )
            )
            assert result.ades_subindic == AdESPassed.OK, result
        else:
            assert len(signatures) == 1

    verdict = pdfsig(signed, trust.nss_dir)
    assert verdict[0]["Signature Validation"] == "Signature is Valid."
    assert verdict[0]["Certificate Validation"] == "Certificate is Trusted."

    tampered = _tamper(signed, tmp_path / "tampered.pdf")
    verdict = pdfsig(tampered, trust.nss_dir)
    assert verdict[0]["Signature Validation"] != "Signature is Valid."
    with open(tampered, "rb") as handle:
        embedded = PdfFileReader(handle).embedded_signatures[0]
        status = asyncio.run(
            async_validate_pdf_signature(embedded, signer_validation_context=context)
        )
        assert not status.intact
        if level == "B-LTA":
            result = asyncio.run(
                ades_lta_validation(
                    embedded, _lta_spec(pki.root, RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH)
                )
            )
            assert result.ades_subindic != AdESPassed.OK


def test_pades_unseekable_input_and_output(pki, tsa_services, trust, sample_pdf, tmp_path):
    """A pipe-like input is spooled and a write-only output is filled via a temporary file."""
    variant = make_key_variant(pki, "ec-p256")

    class Unseekable(io.RawIOBase):
        def __init__(self, data: bytes):
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            return self._inner.readinto(buffer)

    class WriteOnly(io.RawIOBase):
        def __init__(self):
            self.chunks: list[bytes] = []

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            self.chunks.append(bytes(data))
            return len(data)

    sink = WriteOnly()
    sign_document(
        Unseekable(sample_pdf.read_bytes()), sink, format="P", level="Ades-B-LT", key=variant.key,
        services=tsa_services,
    )  # fmt: skip
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(b"".join(sink.chunks))
    verdict = pdfsig(signed, trust.nss_dir)
    assert verdict[0]["Signature Validation"] == "Signature is Valid."
    assert verdict[0]["Certificate Validation"] == "Certificate is Trusted."
    assert len(variant.signer.calls) == 1


def test_pades_in_place_b_lta(pki, tsa_services, trust, sample_pdf, tmp_path):
    """``out is data``: signature, DSS and document time-stamp appended to the input itself."""
    variant = make_key_variant(pki, "rsa-pkcs1")
    original = sample_pdf.read_bytes()
    signed = tmp_path / "in-place.pdf"
    signed.write_bytes(original)
    with open(signed, "r+b") as document:
        document.seek(0, io.SEEK_END)  # wherever it stands, the whole file is signed
        sign_document(
            document, document, format="P", level="B-LTA", key=variant.key, services=tsa_services
        )
    data = signed.read_bytes()
    assert data.startswith(original) and len(data) > len(original)
    verdict = pdfsig(signed, trust.nss_dir)
    assert verdict[0]["Signature Validation"] == "Signature is Valid."
    assert verdict[0]["Certificate Validation"] == "Certificate is Trusted."
    reader = PdfFileReader(io.BytesIO(data))
    assert len(reader.embedded_signatures) == 2 and "/DSS" in reader.root
    assert len(variant.signer.calls) == 1
    with open(signed, "r+b") as document, pytest.raises(FormatError, match="in place"):
        sign_document(document, document, format="C", level="B-B", key=variant.key)


def test_pades_second_signature_keeps_the_first_valid(
    pki, tsa_services, trust, sample_pdf, tmp_path
):
    first, second = make_key_variant(pki, "rsa-pkcs1"), make_key_variant(pki, "ec-p256")
    once, twice = tmp_path / "once.pdf", tmp_path / "twice.pdf"
    with open(once, "w+b") as out:
        sign_document(
            sample_pdf, out, format="pades", level="B-T", key=first.key, services=tsa_services
        )
    with open(twice, "w+b") as out:
        sign_document(once, out, format="pades", level="B-B", key=second.key)
    verdict = pdfsig(twice, trust.nss_dir)
    assert [v["Signature Field Name"] for v in verdict] == ["Signature1", "Signature2"]
    assert all(v["Signature Validation"] == "Signature is Valid." for v in verdict)
    with open(twice, "rb") as handle:
        context = ValidationContext(
            trust_roots=[pki.root], fetcher_backend=RequestsFetcherBackend(), allow_fetching=True
        )
        for embedded in PdfFileReader(handle).embedded_signatures:
            status = asyncio.run(
                async_validate_pdf_signature(embedded, signer_validation_context=context)
            )
            assert status.bottom_line, status.pretty_print_details()


def test_pades_reserves_what_the_last_signature_took(
    pki, tsa_services, trust, sample_pdf, tmp_path, monkeypatch
):
    """The first B-T signature with a key is sized by pyHanko's dry run (a dummy CMS and a
    dummy time-stamp token); the next ones reserve what the last one took, make neither, and
    still validate."""
    from collections import OrderedDict

    from pyhanko.sign.signers.pdf_signer import PdfSigningSession

    from signet.formats import pades
    from signet.formats.services import SignetTimeStamper

    estimates: list[int] = []
    tsa_requests: list[int] = []
    estimate = PdfSigningSession.estimate_signature_container_size
    request = SignetTimeStamper.async_request_tsa_response

    async def counted_estimate(self, *args, **kwargs):
        estimates.append(1)
        return await estimate(self, *args, **kwargs)

    async def counted_request(self, *args, **kwargs):
        tsa_requests.append(1)
        return await request(self, *args, **kwargs)

    monkeypatch.setattr(PdfSigningSession, "estimate_signature_container_size", counted_estimate)
    monkeypatch.setattr(SignetTimeStamper, "async_request_tsa_response", counted_request)
    monkeypatch.setattr(pades, "_RESERVES", OrderedDict())
    variant = make_key_variant(pki, "rsa-pkcs1")
    for run in range(3):
        signed = tmp_path / f"signed-{run}.pdf"
        with open(signed, "w+b") as out:
            sign_document(
                sample_pdf, out, format="P", level="B-T", key=variant.key, services=tsa_services
            )
        verdict = pdfsig(signed, trust.nss_dir)[0]
        assert verdict["Signature Validation"] == "Signature is Valid.", verdict
    assert estimates == [1]
    assert len(tsa_requests) == 2 + 1 + 1  # dummy and real token, then the real ones only
    # Another level is another size: estimated again.
    with open(tmp_path / "b-b.pdf", "w+b") as out:
        sign_document(sample_pdf, out, format="P", level="B-B", key=variant.key)
    assert estimates == [1, 1]


def test_pades_rejects_a_non_pdf(pki):
    variant = make_key_variant(pki, "ec-p256")
    with pytest.raises(FormatError, match="not a PDF"):
        sign_document(
            b"plain text, not a PDF", io.BytesIO(), format="pades", level="B-B", key=variant.key
        )
    assert not variant.signer.calls
