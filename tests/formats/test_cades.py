"""CAdES B-B..B-LTA, detached and attached, checked by openssl cms/ts and pyHanko."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from asn1crypto import cms
from formats_helpers import (
    as_token,
    cades_ats_v3_imprint,
    cms_embedded_validation_data,
    offline_context,
    openssl_cms_verify,
    openssl_ts_verify,
    tsa_certificate,
    unsigned_attr_values,
    validates_offline,
)
from formats_keys import make_key_variant
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

from signet.formats import sign_document

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]
SIGNATURE_TIME_STAMP = "1.2.840.113549.1.9.16.2.14"
ARCHIVE_TIME_STAMP_V3 = "0.4.0.1733.2.4"
CONTENT = b"Signet CAdES test content\n" * 200


def _pyhanko_status(signed_data: cms.SignedData, content: bytes, context: ValidationContext):
    """pyHanko's CMS validator; an attached signature is checked as a detached view of itself
    over the octets it embeds (pyHanko's generic API takes the content separately)."""
    embedded = signed_data["encap_content_info"]["content"].native
    if embedded is not None:
        content = embedded
        signed_data = cms.SignedData.load(signed_data.untag().dump())
        signed_data["encap_content_info"] = {"content_type": "data"}
    return asyncio.run(
        async_validate_detached_cms(
            content, signed_data, signer_validation_context=context, ts_validation_context=context
        )
    )


@pytest.mark.parametrize("packaging", ["detached", "attached"])
@pytest.mark.parametrize("level", LEVELS)
def test_cades_levels_validate_and_tampering_fails(
    level, packaging, key_variant, pki, tsa_services, trust, tmp_path
):
    document = tmp_path / "document.bin"
    document.write_bytes(CONTENT)
    signature = tmp_path / ("document.p7s" if packaging == "detached" else "document.p7m")
    with open(signature, "wb") as out:
        sign_document(
            document, out, format="cades", packaging=packaging, level=level,
            key=key_variant.key, scheme=key_variant.scheme, services=tsa_services,
        )  # fmt: skip
    assert len(key_variant.signer.calls) == 1

    content_info = cms.ContentInfo.load(signature.read_bytes())
    signed_data = content_info["content"]
    signer_info = signed_data["signer_infos"][0]
    embedded = signed_data["encap_content_info"]["content"].native
    assert embedded == (CONTENT if packaging == "attached" else None)
    signed_attr_types = {a["type"].native for a in signer_info["signed_attrs"]}
    assert {"signing_certificate_v2", "signing_time", "message_digest"} <= signed_attr_types

    content_arg = document if packaging == "detached" else None
    assert openssl_cms_verify(signature, content_arg, trust.root_pem)

    online = ValidationContext(
        trust_roots=[pki.root], allow_fetching=True, fetcher_backend=RequestsFetcherBackend()
    )
    status = _pyhanko_status(signed_data, CONTENT, online)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()

    stamps = unsigned_attr_values(signer_info, SIGNATURE_TIME_STAMP)
    archives = unsigned_attr_values(signer_info, ARCHIVE_TIME_STAMP_V3)
    if level == "B-B":
        assert not stamps
    else:
        assert len(stamps) == 1
        assert status.timestamp_validity is not None and status.timestamp_validity.trusted
        imprint = hashlib.sha256(signer_info["signature"].native).digest()
        assert openssl_ts_verify(stamps[0].dump(), imprint, trust.root_pem, tmp_path)

    if level in ("B-LT", "B-LTA"):
        # validation data sits in SignedData.certificates/crls and suffices offline
        certs, ocsps, crls = cms_embedded_validation_data(signed_data)
        assert ocsps and crls and signed_data["version"].native == "v5"
        # an OCSP response for the signer produced after the signature time-stamp is embedded
        gen_time = (
            as_token(stamps[0])["content"]["encap_content_info"]["content"]
            .parsed["gen_time"]
            .native
        )
        produced = [
            r["response_bytes"]["response"].parsed["tbs_response_data"]["produced_at"].native
            for r in ocsps
        ]
        assert max(produced) >= gen_time, (gen_time, produced)
        offline = offline_context(pki.root, certs, ocsps, crls)
        assert validates_offline(pki.cert(key_variant.label), offline)
        assert validates_offline(tsa_certificate(as_token(stamps[0])), offline)
        offline_status = _pyhanko_status(signed_data, CONTENT, offline)
        assert offline_status.bottom_line, offline_status.pretty_print_details()

    if level == "B-LTA":
        assert len(archives) == 1
        token = as_token(archives[0])
        imprint = cades_ats_v3_imprint(signed_data, token)
        assert openssl_ts_verify(token.dump(), imprint, trust.root_pem, tmp_path)
        # the imprint covers the signature: any other value must not verify
        assert not openssl_ts_verify(
            token.dump(), hashlib.sha256(imprint).digest(), trust.root_pem, tmp_path
        )
    else:
        assert not archives

    # tampering: the content (detached: the file; attached: the embedded octets)
    if packaging == "detached":
        tampered_content = tmp_path / "tampered.bin"
        tampered_content.write_bytes(CONTENT[:-2] + b"!\n")
        assert not openssl_cms_verify(signature, tampered_content, trust.root_pem)
        assert not _pyhanko_status(signed_data, tampered_content.read_bytes(), online).intact
    else:
        raw = signature.read_bytes()
        tampered = tmp_path / "tampered.p7m"
        tampered.write_bytes(
            raw.replace(b"Signet CAdES test content", b"Signet CAdES test c0ntent", 1)
        )
        assert not openssl_cms_verify(tampered, None, trust.root_pem)
        tampered_sd = cms.ContentInfo.load(tampered.read_bytes())["content"]
        assert not _pyhanko_status(tampered_sd, CONTENT, online).intact


def test_cades_sha512_with_rsa(pki, tsa_services, trust, tmp_path):
    variant = make_key_variant(pki, "rsa-pkcs1")
    document = tmp_path / "document.bin"
    document.write_bytes(CONTENT)
    signature = tmp_path / "document.p7s"
    with open(signature, "wb") as out:
        sign_document(
            document, out, format="C", level="B-T", key=variant.key, services=tsa_services,
            hash_algorithm="sha512",
        )  # fmt: skip
    digest, hash_name, _ = variant.signer.calls[0]
    assert (len(digest), hash_name) == (64, "sha512")
    assert openssl_cms_verify(signature, document, trust.root_pem)
    signer_info = cms.ContentInfo.load(signature.read_bytes())["content"]["signer_infos"][0]
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha512_rsa"
