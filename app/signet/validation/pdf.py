"""PAdES: every signature of a PDF and the document time-stamps after it, checked by pyHanko
(byte ranges, CMS signature, changes after signing) against the PDF's DSS."""

from __future__ import annotations

from pathlib import Path

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509

from signet.validation.errors import ContentFault, VerifyError, short
from signet.validation.report import (
    SignatureReport,
    TokenCheck,
    VerificationReport,
    format_time,
    settle_level,
)
from signet.validation.timestamps import lt_check, status_token_check
from signet.validation.trust import Evidence, key_usage_settings, status_trust, validation_context


async def verify_pdf(
    path: Path, detached: Path | None, anchors: list[asn1_x509.Certificate]
) -> VerificationReport:
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
    from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
    from pyhanko.sign.validation.errors import SignatureValidationError

    if detached is not None:
        raise VerifyError("a PDF signature is not detached", ContentFault.UNEXPECTED)
    with open(path, "rb") as handle:
        try:
            reader = PdfFileReader(handle, strict=False)
            signatures = reader.embedded_regular_signatures
            doc_stamps = reader.embedded_timestamp_signatures
        except (PdfError, ValueError) as exc:
            raise VerifyError(f"{path}: not a PDF pyHanko can read: {exc}") from exc
        if not signatures:
            raise VerifyError(f"{path}: the PDF holds no signature")
        evidence = Evidence()
        try:
            dss = DocumentSecurityStore.read_dss(reader)
        except NoDSSFoundError:
            dss = None
        if dss is not None:
            dss_context = dss.as_validation_context({"trust_roots": []})
            evidence = Evidence(
                list(dss.load_certs()), list(dss_context.crls), list(dss_context.ocsps)
            )
        reports = []
        for number, embedded in enumerate(signatures, start=1):
            report = SignatureReport(f"signature {number} ({embedded.field_name})")
            reports.append(report)
            embedded_certs = [
                c.chosen
                for c in embedded.signed_data["certificates"] or []
                if c.name == "certificate"
            ]
            sig_evidence = Evidence(
                [*evidence.certs, *embedded_certs], evidence.crls, evidence.ocsps
            )
            context = validation_context(anchors, sig_evidence, require_revocation=False)
            try:
                status = await async_validate_pdf_signature(
                    embedded,
                    signer_validation_context=context,
                    ts_validation_context=context,
                    key_usage_settings=key_usage_settings(),
                )
            except (SignatureValidationError, PdfError, ValueError) as exc:
                report.problems.append(f"pyHanko could not validate it: {short(exc)}")
                continue
            report.signer = status.signing_cert.subject.human_friendly
            report.claimed_time = format_time(status.signer_reported_dt)
            report.intact, report.valid = status.intact, status.valid
            report.checked.append("byte range digest and CMS signature (pyHanko)")
            if status.coverage is not None and status.docmdp_ok is False:
                report.intact = False
                report.problems.append(
                    f"the document was changed after this signature beyond what it allows "
                    f"({status.modification_level.name if status.modification_level else '?'})"
                )
            else:
                report.checked.append("changes after signing (pyHanko difference analysis)")
            status_trust(report, status, anchors)

            t = None
            tokens = []
            if status.timestamp_validity is not None:
                ts = status.timestamp_validity
                t = status_token_check("signature time-stamp", ts)
                report.timestamps.append(t)
                tokens = _pdf_signature_tokens(embedded.signer_info)
            lt_found = dss is not None and evidence.has_revocation_data
            lt_ok = lt_found and await lt_check(
                report, status.signing_cert, anchors, sig_evidence, tokens
            )
            archive = []
            for stamp in doc_stamps:
                if stamp.signed_revision <= embedded.signed_revision:
                    continue
                try:
                    stamp_status = await async_validate_pdf_timestamp(
                        stamp,
                        validation_context=validation_context(
                            anchors, sig_evidence, require_revocation=False
                        ),
                    )
                    check = status_token_check("document time-stamp", stamp_status)
                except (SignatureValidationError, ValueError) as exc:
                    check = TokenCheck("document time-stamp", problem=short(exc))
                archive.append(check)
                report.timestamps.append(check)
            settle_level(report, t=t, lt_found=lt_found, lt_ok=lt_ok, archive=archive)
    stamps = f", {len(doc_stamps)} document time-stamp(s)" if doc_stamps else ""
    return VerificationReport(str(path), "PAdES (PDF)", reports, extra=stamps)


def _pdf_signature_tokens(signer_info: cms.SignerInfo) -> list[cms.ContentInfo]:
    return [
        cms.ContentInfo.load(value.dump())
        for attr in signer_info["unsigned_attrs"] or []
        if attr["type"].native == "signature_time_stamp_token"
        for value in attr["values"]
    ]
