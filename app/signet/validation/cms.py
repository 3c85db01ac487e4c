"""CAdES: a single-signer CMS SignedData, attached or detached, checked by pyHanko, with its
revocation data, signature time-stamp and archive-time-stamp-v3 (EN 319 122-1)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from asn1crypto import cms, core, ocsp
from asn1crypto import x509 as asn1_x509

from signet.formats.asn1 import (
    ARCHIVE_V3_SIGNER_INFO_FIELDS,
    ID_AA_ATS_HASH_INDEX_V3,
    ID_AA_ETS_ARCHIVE_TIMESTAMP_V3,
    ATSHashIndexV3,
)
from signet.validation.errors import ContentFault, VerifyError, short
from signet.validation.report import (
    SignatureReport,
    TokenCheck,
    VerificationReport,
    format_time,
)
from signet.validation.timestamps import (
    Stamps,
    hasher,
    status_token_check,
    token_certs,
)
from signet.validation.trust import Evidence, key_usage_settings, status_trust, validation_context

ID_AA_SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"
ID_RI_OCSP_RESPONSE = "1.3.6.1.5.5.7.16.2"


def _cms_evidence(signed_data: cms.SignedData) -> Evidence:
    evidence = Evidence(
        [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
    )
    for choice in signed_data["crls"] or []:
        if choice.name == "crl":
            evidence.crls.append(choice.chosen)
        elif choice.name == "other":
            other = choice.chosen
            if other["other_rev_info_format"].dotted == ID_RI_OCSP_RESPONSE:
                evidence.ocsps.append(ocsp.OCSPResponse.load(other["other_rev_info"].dump()))
    return evidence


def _unsigned_values(signer_info: cms.SignerInfo, dotted: str) -> list[Any]:
    return [
        value
        for attr in signer_info["unsigned_attrs"] or []
        if attr["type"].dotted == dotted
        for value in attr["values"]
    ]


def _archive_v3_imprint(
    signed_data: cms.SignedData, signer_info: cms.SignerInfo, token: cms.ContentInfo
) -> Callable[[str], bytes]:
    """EN 319 122-1 5.5.3: the imprint is computed with the ats-hash-index-v3 the token
    carries, after checking every hash in that index names an element present now."""
    indexes = _unsigned_values(token["content"]["signer_infos"][0], ID_AA_ATS_HASH_INDEX_V3)
    if len(indexes) != 1:
        raise ValueError("the archive time-stamp carries no single ats-hash-index-v3")
    index_der = indexes[0].dump()
    index = ATSHashIndexV3.load(index_der)
    index_hash = index["hash_ind_algorithm"]["algorithm"].native

    def h(data: bytes) -> bytes:
        return hashlib.new(index_hash, data).digest()

    present = {
        "certificates_hash_index": {h(c.dump()) for c in signed_data["certificates"] or []},
        "crls_hash_index": {h(c.dump()) for c in signed_data["crls"] or []},
        "unsigned_attr_values_hash_index": {
            h(attr["type"].dump() + value.dump())
            for attr in signer_info["unsigned_attrs"] or []
            for value in attr["values"]
        },
    }
    for name, hashes in present.items():
        for digest in index[name]:
            if digest.native not in hashes:
                raise ValueError(f"ats-hash-index-v3 {name} names an element that is missing")
    message_digest = next(
        bytes(a["values"][0])
        for a in signer_info["signed_attrs"]
        if a["type"].native == "message_digest"
    )

    return hasher(
        [
            signed_data["encap_content_info"]["content_type"].dump(),
            message_digest,
            *(signer_info[name].dump() for name in ARCHIVE_V3_SIGNER_INFO_FIELDS),
            index_der,
        ]
    )


async def verify_cms(
    path: Path, detached: Path | None, anchors: list[asn1_x509.Certificate]
) -> VerificationReport:
    from pyhanko.sign.validation import async_validate_detached_cms
    from pyhanko.sign.validation.errors import SignatureValidationError

    try:
        content_info = cms.ContentInfo.load(path.read_bytes())
        if content_info["content_type"].native != "signed_data":
            raise VerifyError(
                f"{path}: a CMS {content_info['content_type'].native}, not SignedData"
            )
        signed_data = content_info["content"]
        signer_infos = list(signed_data["signer_infos"])
        encapsulated = signed_data["encap_content_info"]["content"]
    except (ValueError, TypeError) as exc:
        raise VerifyError(f"{path}: not a DER CMS signature: {short(exc)}") from exc
    if len(signer_infos) != 1:
        raise VerifyError(
            f"{path}: CMS with {len(signer_infos)} signers; only single-signer CAdES is verified"
        )
    attached = encapsulated is not None and not isinstance(encapsulated, core.Void)
    if not attached and detached is None:
        raise VerifyError(f"{path} is a detached CAdES signature", ContentFault.MISSING)
    if attached and detached is not None:
        raise VerifyError(f"{path} carries its content", ContentFault.UNEXPECTED)
    signer_info = signer_infos[0]
    evidence = _cms_evidence(signed_data)
    report = SignatureReport("signature 1")
    context = validation_context(anchors, evidence, require_revocation=False)
    with ExitStack() as stack:
        data: bytes | IO[bytes]
        to_check = signed_data
        if attached:
            data = bytes(encapsulated)
            # pyHanko validates a detached structure over the content: same signed attributes
            to_check = signed_data.copy()
            eci = signed_data["encap_content_info"]
            to_check["encap_content_info"] = type(eci)({"content_type": eci["content_type"]})
        else:
            assert detached is not None
            data = stack.enter_context(open(detached, "rb"))
        try:
            status = await async_validate_detached_cms(
                data,
                to_check,
                signer_validation_context=context,
                ts_validation_context=context,
                key_usage_settings=key_usage_settings(),
            )
        except (SignatureValidationError, ValueError) as exc:
            report.problems.append(f"pyHanko could not validate it: {short(exc)}")
            return VerificationReport(str(path), _cms_label(attached), [report])
    report.signer = status.signing_cert.subject.human_friendly
    report.claimed_time = format_time(status.signer_reported_dt)
    report.intact, report.valid = status.intact, status.valid
    report.checked.append("message digest and CMS signature (pyHanko)")
    status_trust(report, status, anchors)

    # pyHanko checked the signature time-stamp; its tokens are kept for the B-LT check
    stamps = Stamps(report, anchors, evidence)
    stamps.tokens = [
        cms.ContentInfo.load(v.dump())
        for v in _unsigned_values(signer_info, ID_AA_SIGNATURE_TIME_STAMP_TOKEN)
    ]
    if status.timestamp_validity is not None:
        stamps.t = status_token_check("signature time-stamp", status.timestamp_validity)
        report.timestamps.append(stamps.t)
    for value in _unsigned_values(signer_info, ID_AA_ETS_ARCHIVE_TIMESTAMP_V3):
        token = cms.ContentInfo.load(value.dump())
        try:
            imprint = _archive_v3_imprint(signed_data, signer_info, token)
        except (ValueError, KeyError, StopIteration) as exc:
            stamps.add_archive(TokenCheck("archive time-stamp (v3)", problem=short(exc)))
        else:
            _, tsa_certs = token_certs(token)
            await stamps.check_archive_stamp(
                token,
                imprint,
                kind="archive time-stamp (v3)",
                evidence=Evidence([*evidence.certs, *tsa_certs], evidence.crls, evidence.ocsps),
            )
    await stamps.settle(status.signing_cert)
    return VerificationReport(str(path), _cms_label(attached), [report])


def _cms_label(attached: bool) -> str:
    return f"CAdES (CMS SignedData, {'attached' if attached else 'detached'})"
