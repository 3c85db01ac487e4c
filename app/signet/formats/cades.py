"""CAdES baseline signatures (B-B..B-LTA), detached or attached, with pyHanko's CMS signer.

B-T: signature-time-stamp unsigned attribute (pyHanko). B-LT: the validation data goes where
EN 319 122-1 puts it for baseline signatures -- SignedData.certificates and SignedData.crls,
OCSP responses as RevocationInfoChoice ``other`` (id-ri-ocsp-response, RFC 5940; SignedData v5).
B-LTA: archive-time-stamp-v3 with an ats-hash-index-v3 (EN 319 122-1 clause 5.5.2/5.5.3).
"""

from __future__ import annotations

import hashlib
from typing import IO

from asn1crypto import algos, cms
from pyhanko.sign.general import SigningError

from signet.formats._io import CHUNK_SIZE, Source, open_source, read_source
from signet.formats.asn1 import (
    ARCHIVE_V3_SIGNER_INFO_FIELDS,
    ID_AA_ATS_HASH_INDEX_V3,
    ID_AA_ETS_ARCHIVE_TIMESTAMP_V3,
    ATSHashIndexV3,
)
from signet.formats.cms_signer import RemoteCMSSigner
from signet.formats.errors import FormatError, ServiceError
from signet.formats.keys import RemoteKey
from signet.formats.levels import Level, parse_level
from signet.formats.services import (
    ServicesConfig,
    ValidationDataCollector,
    make_timestamper,
)

PACKAGINGS = ("detached", "attached")


async def async_sign_cades(
    source: Source,
    out: IO[bytes],
    *,
    level: str | Level,
    key: RemoteKey,
    services: ServicesConfig | None = None,
    hash_algorithm: str = "sha256",
    scheme: str | None = None,
    packaging: str = "detached",
    document_digest: bytes | None = None,
) -> None:
    """Write a DER CMS SignedData (``.p7s`` detached, ``.p7m`` attached) to ``out``.

    Detached signing hashes the input in 1 MiB chunks; attached signing embeds the document,
    so it reads it into memory once.
    With ``document_digest`` (CSC's documentDigests) the document itself is never seen: the
    signature is detached, over that digest, and ``source`` is ignored.
    """
    level = parse_level(level)
    if packaging not in PACKAGINGS:
        raise FormatError(f"CAdES packaging {packaging!r} is not one of {', '.join(PACKAGINGS)}")
    services = services or ServicesConfig()
    signer = RemoteCMSSigner(key, hash_algorithm, key.resolve_scheme(scheme))
    timestamper = make_timestamper(services, level.value) if level.at_least(Level.B_T) else None
    collector = None
    if level.at_least(Level.B_LT):
        collector = await ValidationDataCollector.before_signing(key, services, timestamper)
    if document_digest is not None:
        expected = hashlib.new(hash_algorithm).digest_size
        if packaging != "detached" or len(document_digest) != expected:
            raise FormatError(
                f"a document digest signs detached CAdES only, with a "
                f"{hash_algorithm} digest of {expected} bytes"
            )
    try:
        if document_digest is not None:
            content_info = await signer.async_sign(
                document_digest,
                hash_algorithm,
                use_pades=True,
                is_pdf_sig=False,
                timestamper=timestamper,
            )
        elif packaging == "attached":
            content_info = await signer.async_sign_general_data(
                read_source(source),
                hash_algorithm,
                detached=False,
                use_cades=True,
                timestamper=timestamper,
            )
        else:
            with open_source(source) as stream:
                content_info = await signer.async_sign_general_data(
                    stream,
                    hash_algorithm,
                    detached=True,
                    use_cades=True,
                    timestamper=timestamper,
                    chunk_size=CHUNK_SIZE,
                )
    except SigningError as exc:
        if isinstance(exc.__cause__, ServiceError):
            raise exc.__cause__ from exc
        raise FormatError(f"CAdES signing failed: {exc}") from exc
    signed_data = content_info["content"]
    signer_info = signed_data["signer_infos"][0]
    if collector is not None:
        await _add_validation_data(signed_data, signer_info, collector)
    if level is Level.B_LTA:
        assert timestamper is not None
        token = await timestamper.async_timestamp(
            archive_timestamp_v3_digest(signed_data, signer_info, hash_algorithm)[0],
            hash_algorithm,
        )
        _attach_archive_timestamp(signed_data, signer_info, token, hash_algorithm)
    out.write(content_info.dump())


def _signature_timestamp(signer_info: cms.SignerInfo) -> cms.ContentInfo:
    for attr in signer_info["unsigned_attrs"] or []:
        if attr["type"].native == "signature_time_stamp_token":
            return attr["values"][0]
    raise FormatError("B-LT needs the B-T signature time-stamp, which is missing")


async def _add_validation_data(
    signed_data: cms.SignedData,
    signer_info: cms.SignerInfo,
    collector: ValidationDataCollector,
) -> None:
    data = await collector.result_after(_signature_timestamp(signer_info))
    certificates = list(signed_data["certificates"] or [])
    present = {choice.chosen.dump() for choice in certificates}
    for cert in data.certificates:
        if cert.dump() not in present:
            certificates.append(cms.CertificateChoices({"certificate": cert}))
            present.add(cert.dump())
    revocation = list(signed_data["crls"] or [])
    revocation.extend(cms.RevocationInfoChoice({"crl": crl}) for crl in data.crls)
    revocation.extend(
        cms.RevocationInfoChoice(
            {
                "other": cms.OtherRevocationInfoFormat(
                    {"other_rev_info_format": "ocsp_response", "other_rev_info": response}
                )
            }
        )
        for response in data.ocsp_responses
    )
    signed_data["certificates"] = cms.CertificateSet(certificates)
    signed_data["crls"] = cms.RevocationInfoChoices(revocation)
    if data.ocsp_responses:
        # RFC 5652 5.1: a crls field holding 'other' revocation info makes SignedData v5
        signed_data["version"] = "v5"


def _message_digest(signer_info: cms.SignerInfo) -> bytes:
    for attr in signer_info["signed_attrs"]:
        if attr["type"].native == "message_digest":
            return bytes(attr["values"][0])
    raise FormatError("the CMS signature has no message-digest attribute")


def ats_hash_index_v3(
    signed_data: cms.SignedData, signer_info: cms.SignerInfo, hash_name: str
) -> ATSHashIndexV3:
    """Hashes of every certificate, revocation entry and unsigned attribute value present now."""

    def digest(data: bytes) -> bytes:
        return hashlib.new(hash_name, data).digest()

    certificates = [digest(choice.dump()) for choice in signed_data["certificates"] or []]
    crls = [digest(choice.dump()) for choice in signed_data["crls"] or []]
    attr_values = [
        digest(attr["type"].dump() + value.dump())
        for attr in signer_info["unsigned_attrs"] or []
        for value in attr["values"]
    ]
    return ATSHashIndexV3(
        {
            "hash_ind_algorithm": algos.DigestAlgorithm({"algorithm": hash_name}),
            "certificates_hash_index": certificates,
            "crls_hash_index": crls,
            "unsigned_attr_values_hash_index": attr_values,
        }
    )


def archive_timestamp_v3_digest(
    signed_data: cms.SignedData, signer_info: cms.SignerInfo, hash_name: str
) -> tuple[bytes, ATSHashIndexV3]:
    """Message imprint of an archive-time-stamp-v3 (EN 319 122-1 clause 5.5.3).

    Concatenation of: eContentType; the hash of the signed content (the message-digest
    attribute, as the archive time-stamp uses the signature's hash algorithm); SignerInfo's
    version, sid, digestAlgorithm, signedAttrs ([0]-tagged), signatureAlgorithm and signature,
    each with tag and length; and the ATSHashIndexV3 value.
    """
    index = ats_hash_index_v3(signed_data, signer_info, hash_name)
    hasher = hashlib.new(hash_name)
    hasher.update(signed_data["encap_content_info"]["content_type"].dump())
    hasher.update(_message_digest(signer_info))
    for field in ARCHIVE_V3_SIGNER_INFO_FIELDS:
        hasher.update(signer_info[field].dump())
    hasher.update(index.dump())
    return hasher.digest(), index


def _attach_archive_timestamp(
    signed_data: cms.SignedData,
    signer_info: cms.SignerInfo,
    token: cms.ContentInfo,
    hash_name: str,
) -> None:
    # Recompute the index from the same state the imprint was computed over (nothing changed
    # in between) and store it unsigned in the token's SignerInfo, where EN 319 122-1 wants it.
    index = ats_hash_index_v3(signed_data, signer_info, hash_name)
    token_signer = token["content"]["signer_infos"][0]
    token_attrs = list(token_signer["unsigned_attrs"] or [])
    token_attrs.append(cms.CMSAttribute({"type": ID_AA_ATS_HASH_INDEX_V3, "values": [index]}))
    token_signer["unsigned_attrs"] = cms.CMSAttributes(token_attrs)
    attrs = list(signer_info["unsigned_attrs"] or [])
    attrs.append(cms.CMSAttribute({"type": ID_AA_ETS_ARCHIVE_TIMESTAMP_V3, "values": [token]}))
    signer_info["unsigned_attrs"] = cms.CMSAttributes(attrs)
