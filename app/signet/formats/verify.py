"""Verify PAdES, CAdES, XAdES and JAdES signatures, and say what was and was not checked.

Pure: no other signet module is imported, so the verdict does not rest on the signing code.
pyHanko validates PDF and CMS signatures and every RFC 3161 token, signxml XML signatures
(``XAdESVerifier``), jwcrypto JWS; pyhanko-certvalidator builds certificate paths.

Per signature the report gives: *intact* (the signed data hashes to what was signed),
*valid* (the signature value verifies with the signer's key and its signed properties hold),
*trusted* (a path from the signer's certificate to a ``--trust`` anchor validates now, with
revocation checked against the data embedded in the file, never fetched), and the *level*
reached: B-B, then B-T (a signature time-stamp from a trusted TSA over this signature), B-LT
(the embedded certificates, CRLs and OCSP responses alone validate the signer and the TSA),
B-LTA (an archive / document time-stamp over all that, from a trusted TSA).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from asn1crypto import algos, cms, core, crl, ocsp, pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
SIGNER_KEY_USAGES = {"digital_signature", "non_repudiation"}
NOT_CHECKED = (
    "signature policy, qualified status (no EU trusted list), certificates at the signing "
    "or time-stamp time (they are validated now), online revocation (only data embedded in "
    "the file is used)"
)

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
ID_ARCHIVE_TIMESTAMP_V3 = "0.4.0.1733.2.4"
ID_ATS_HASH_INDEX_V3 = "0.4.0.19122.1.5"
OCSP_RESPONSE_FORMAT = "1.3.6.1.5.5.7.16.2"
JWS_HASHES = {"S256": "sha256", "S384": "sha384", "S512": "sha512"}


class VerifyError(Exception):
    """The file cannot be verified at all (unreadable, unknown format, detached data missing)."""


# -- the report ---------------------------------------------------------------------------
@dataclass
class TokenCheck:
    """An RFC 3161 token checked against the imprint recomputed from the signature."""

    kind: str
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    time: datetime | None = None
    tsa: str = ""
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted

    def line(self) -> str:
        when = f" at {self.time:%Y-%m-%d %H:%M:%S %Z}".rstrip() if self.time else ""
        by = f" by {self.tsa}" if self.tsa else ""
        verdict = ", ".join(
            f"{name} {_yes(flag)}"
            for name, flag in (
                ("intact", self.intact),
                ("valid", self.valid),
                ("trusted", self.trusted),
            )
        )
        return f"{self.kind}{when}{by}: {verdict}" + (f" ({self.problem})" if self.problem else "")


@dataclass
class SignatureReport:
    label: str
    signer: str = "(unknown)"
    claimed_time: str | None = None
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    trust_detail: str = ""
    found: str = "B-B"
    reached: str | None = None
    timestamps: list[TokenCheck] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted

    def lines(self) -> list[str]:
        out = [f"{self.label}:", f"  signer: {self.signer}"]
        out.append(
            f"  signing time: {self.claimed_time or 'none claimed'}"
            + (" (claimed by the signer)" if self.claimed_time else "")
        )
        out.extend(f"  {token.line()}" for token in self.timestamps)
        reached = self.reached or "none"
        out.append(
            f"  level: {reached}"
            + (f" (found {self.found} elements)" if reached != self.found else "")
        )
        out.append(f"  intact: {_yes(self.intact)}")
        out.append(f"  valid: {_yes(self.valid)}")
        out.append(
            f"  trusted: {_yes(self.trusted)}"
            + (f" ({self.trust_detail})" if self.trust_detail else "")
        )
        out.extend(f"  problem: {p}" for p in self.problems)
        if self.checked:
            out.append(f"  checked: {'; '.join(self.checked)}")
        return out


@dataclass
class VerificationReport:
    path: str
    format: str
    signatures: list[SignatureReport]
    notes: list[str] = field(default_factory=list)
    extra: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.signatures) and all(s.ok for s in self.signatures)

    def lines(self) -> list[str]:
        out = [
            f"file: {self.path}",
            f"format: {self.format}, {len(self.signatures)} signature(s){self.extra}",
        ]
        for signature in self.signatures:
            out.extend(signature.lines())
        out.extend(f"note: {note}" for note in self.notes)
        out.append(f"not checked: {NOT_CHECKED}")
        good = sum(s.ok for s in self.signatures)
        verdict = "OK" if self.ok else "FAILED"
        out.append(
            f"result: {verdict}: {good} of {len(self.signatures)} signature(s) intact, "
            "valid and trusted"
        )
        return out


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# -- inputs -------------------------------------------------------------------------------
def load_certificates(path: str | Path) -> list[asn1_x509.Certificate]:
    """Every certificate in a PEM file (one or more blocks) or a DER file."""
    data = Path(path).read_bytes()
    try:
        if b"-----BEGIN" in data:
            certs = [
                asn1_x509.Certificate.load(der)
                for kind, _, der in pem.unarmor(data, multiple=True)
                if kind in ("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE")
            ]
        else:
            certs = [asn1_x509.Certificate.load(data)]
        for cert in certs:
            cert.native  # noqa: B018 - a full parse, so a broken file fails here
    except (ValueError, TypeError) as exc:
        raise ValueError(f"no certificate in it (PEM or DER expected): {exc}") from None
    if not certs:
        raise ValueError("no certificate in it (PEM CERTIFICATE blocks or DER expected)")
    return certs


def detect_format(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"%PDF") or b"%PDF-" in head[:1024]:
        return "pades"
    if text.startswith(b"<"):
        return "xades"
    if text.startswith(b"{"):
        return "jades"
    if text.startswith(b"ey") and text.count(b".") == 2:
        return "jades"
    if head[:1] == b"\x30":
        return "cades"
    raise VerifyError("not a PDF, CMS (DER), XML or JSON/JWS signature")


def verify_file(
    path: str | Path,
    *,
    detached: str | Path | None = None,
    trust: Sequence[asn1_x509.Certificate] = (),
) -> VerificationReport:
    """Verify every signature in ``path``; ``detached`` is the signed file of a detached
    signature; ``trust`` are the anchors (nothing is trusted without one)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise VerifyError(f"{path}: {exc.strerror or exc}") from exc
    if detached is not None and not Path(detached).is_file():
        raise VerifyError(f"--detached {detached}: no such file")
    kind = detect_format(head)
    verifier = {
        "pades": _verify_pdf,
        "cades": _verify_cms,
        "xades": _verify_xml,
        "jades": _verify_jws,
    }[kind]
    anchors = list(trust)
    report = asyncio.run(verifier(path, Path(detached) if detached else None, anchors))
    if not anchors:
        report.notes.append("no trust anchor given (--trust CERT): no signature can be trusted")
    return report


# -- shared checks ------------------------------------------------------------------------
@dataclass
class Evidence:
    """Certificates and revocation data a signature carries (for paths and B-LT)."""

    certs: list[asn1_x509.Certificate] = field(default_factory=list)
    crls: list[crl.CertificateList] = field(default_factory=list)
    ocsps: list[ocsp.OCSPResponse] = field(default_factory=list)

    @property
    def has_revocation_data(self) -> bool:
        return bool(self.crls or self.ocsps)


def _context(
    anchors: Sequence[asn1_x509.Certificate], evidence: Evidence, *, require_revocation: bool
) -> ValidationContext:
    # never fetch: the verdict rests on the anchors and on what the file embeds
    return ValidationContext(
        trust_roots=list(anchors),
        other_certs=list(evidence.certs),
        crls=list(evidence.crls),
        ocsps=list(evidence.ocsps),
        allow_fetching=False,
        revocation_mode="require" if require_revocation else "soft-fail",
    )


def _key_usage_settings() -> Any:
    from pyhanko.sign.validation.settings import KeyUsageConstraints

    return KeyUsageConstraints(key_usage=set(SIGNER_KEY_USAGES), match_all_key_usages=False)


async def _path_check(
    cert: asn1_x509.Certificate,
    anchors: Sequence[asn1_x509.Certificate],
    evidence: Evidence,
    *,
    require_revocation: bool,
    key_usage: set[str] | None = None,
) -> tuple[bool, str]:
    """(ok, anchor subject or the reason) for a path from ``cert`` to an anchor."""
    if not anchors:
        return False, "no trust anchor given"
    validator = CertificateValidator(
        cert,
        intermediate_certs=list(evidence.certs),
        validation_context=_context(anchors, evidence, require_revocation=require_revocation),
    )
    try:
        path = await validator.async_validate_usage(set())
    except PathBuildingError:
        return False, "no path to a --trust anchor"
    except (PathValidationError, ValidationError, ValueError) as exc:
        return False, _short(exc)
    usages = cert.key_usage_value
    if key_usage and usages is not None and not key_usage & set(usages.native):
        return False, f"the certificate's key usage allows none of {sorted(key_usage)}"
    return True, f"anchor {path.first.subject.human_friendly}"


async def _token_check(
    kind: str,
    token: cms.ContentInfo,
    imprint: Callable[[str], bytes],
    anchors: Sequence[asn1_x509.Certificate],
    evidence: Evidence,
) -> TokenCheck:
    from pyhanko.sign.general import SignedDataCerts, extract_certificate_info
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko.sign.validation.status import TimestampSignatureStatus

    check = TokenCheck(kind)
    try:
        signed_data = token["content"]
        info: SignedDataCerts = extract_certificate_info(signed_data)
        check.tsa = info.signer_cert.subject.human_friendly
        context = _context(anchors, evidence, require_revocation=False)
        kwargs = await validate_tst_signed_data(signed_data, context, imprint)
        status = TimestampSignatureStatus(**kwargs)
    except (SignatureValidationError, ValueError, KeyError, TypeError) as exc:
        check.problem = f"unusable token: {_short(exc)}"
        return check
    check.intact, check.valid, check.trusted = status.intact, status.valid, status.trusted
    check.time = status.timestamp
    if not status.intact:
        check.problem = "its imprint does not match what it should time-stamp"
    elif not status.valid:
        check.problem = "its signature does not verify"
    elif not status.trusted:
        check.problem = (
            "TSA not trusted: add its root with --trust" if anchors else "no trust anchor given"
        )
    return check


def _hasher(parts: Sequence[bytes]) -> Callable[[str], bytes]:
    """The imprint a time-stamp should carry: the hash of ``parts`` with the token's hash."""

    def imprint(hash_name: str) -> bytes:
        h = hashlib.new(hash_name)
        for part in parts:
            h.update(part)
        return h.digest()

    return imprint


async def _lt_check(
    report: SignatureReport,
    signer: asn1_x509.Certificate,
    anchors: Sequence[asn1_x509.Certificate],
    evidence: Evidence,
    signature_tokens: Sequence[cms.ContentInfo],
) -> bool:
    """B-LT: the embedded data alone (no fetching, revocation required) validates the
    signer and the TSA of the signature time-stamp."""
    if not evidence.has_revocation_data or not anchors:
        return False
    ok, detail = await _path_check(signer, anchors, evidence, require_revocation=True)
    if not ok:
        report.problems.append(f"B-LT data do not validate the signer offline: {detail}")
        return False
    for token in signature_tokens:
        tsa, others = _token_certs(token)
        if tsa is None:
            report.problems.append("B-LT: the time-stamp carries no TSA certificate")
            return False
        extended = Evidence([*evidence.certs, *others], evidence.crls, evidence.ocsps)
        ok, detail = await _path_check(tsa, anchors, extended, require_revocation=True)
        if not ok:
            report.problems.append(f"B-LT data do not validate the TSA offline: {detail}")
            return False
    report.checked.append("revocation of signer and TSA against the embedded data")
    return True


def _token_certs(
    token: cms.ContentInfo,
) -> tuple[asn1_x509.Certificate | None, list[asn1_x509.Certificate]]:
    signed_data = token["content"]
    certs = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
    sid = signed_data["signer_infos"][0]["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if (
                cert.issuer == sid.chosen["issuer"]
                and cert.serial_number == sid.chosen["serial_number"].native
            ):
                return cert, certs
        elif cert.key_identifier == sid.chosen.native:
            return cert, certs
    return None, certs


def _settle_level(
    report: SignatureReport,
    *,
    t: TokenCheck | None,
    lt_found: bool,
    lt_ok: bool,
    archive: Sequence[TokenCheck],
) -> None:
    """found = the highest level whose elements are present; reached = what verified."""
    report.found = "B-LTA" if archive else "B-LT" if lt_found else "B-T" if t else "B-B"
    if not (report.intact and report.valid):
        report.reached = None
        return
    reached = "B-B"
    if t is not None and t.ok:
        reached = "B-T"
        if lt_found and lt_ok:
            reached = "B-LT"
            if archive and all(a.ok for a in archive):
                reached = "B-LTA"
    report.reached = reached
    # a broken time-stamp is a broken file, not just a lower level
    for token in [*([t] if t else []), *archive]:
        if not (token.intact and token.valid):
            report.valid = False
            report.problems.append(f"{token.kind} is not intact or its signature fails")


def _signer_trust(report: SignatureReport, ok: bool, detail: str) -> None:
    report.trusted = ok and report.intact and report.valid
    if ok and not report.trusted:
        detail += ", but the signature itself does not hold"
    report.trust_detail = detail


def _status_trust(
    report: SignatureReport, status: Any, anchors: Sequence[asn1_x509.Certificate]
) -> None:
    """Trust as pyHanko judged it (it evaluates paths only for a valid signature)."""
    path = status.validation_path
    if not anchors:
        ok, detail = False, "no trust anchor given"
    elif status.revoked:
        ok, detail = False, "a certificate in the path is revoked"
    elif status.trust_problem_indic is not None:
        ok, detail = False, status.trust_problem_indic.name
    elif path is not None:
        ok, detail = True, f"anchor {path.first.subject.human_friendly}"
    elif not status.valid:
        ok, detail = False, "not evaluated: the signature value does not verify"
    else:
        ok, detail = False, "no path to a --trust anchor"
    _signer_trust(report, ok, detail)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _format_time(value: Any) -> str | None:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S %Z}".rstrip()
    return str(value) if value else None


# -- PDF ----------------------------------------------------------------------------------
async def _verify_pdf(
    path: Path, detached: Path | None, anchors: list[asn1_x509.Certificate]
) -> VerificationReport:
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
    from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
    from pyhanko.sign.validation.errors import SignatureValidationError

    if detached is not None:
        raise VerifyError("a PDF signature is not detached: drop --detached")
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
            context = _context(anchors, sig_evidence, require_revocation=False)
            try:
                status = await async_validate_pdf_signature(
                    embedded,
                    signer_validation_context=context,
                    ts_validation_context=context,
                    key_usage_settings=_key_usage_settings(),
                )
            except (SignatureValidationError, PdfError, ValueError) as exc:
                report.problems.append(f"pyHanko could not validate it: {_short(exc)}")
                continue
            report.signer = status.signing_cert.subject.human_friendly
            report.claimed_time = _format_time(status.signer_reported_dt)
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
            _status_trust(report, status, anchors)

            t = None
            tokens = []
            if status.timestamp_validity is not None:
                ts = status.timestamp_validity
                t = TokenCheck(
                    "signature time-stamp",
                    ts.intact,
                    ts.valid,
                    ts.trusted,
                    ts.timestamp,
                    ts.signing_cert.subject.human_friendly,
                )
                if not ts.trusted and ts.intact and ts.valid:
                    t.problem = "TSA not trusted: add its root with --trust"
                report.timestamps.append(t)
                tokens = _pdf_signature_tokens(embedded.signer_info)
            lt_found = dss is not None and evidence.has_revocation_data
            lt_ok = lt_found and await _lt_check(
                report, status.signing_cert, anchors, sig_evidence, tokens
            )
            archive = []
            for stamp in doc_stamps:
                if stamp.signed_revision <= embedded.signed_revision:
                    continue
                try:
                    stamp_status = await async_validate_pdf_timestamp(
                        stamp,
                        validation_context=_context(
                            anchors, sig_evidence, require_revocation=False
                        ),
                    )
                    check = TokenCheck(
                        "document time-stamp",
                        stamp_status.intact,
                        stamp_status.valid,
                        stamp_status.trusted,
                        stamp_status.timestamp,
                        stamp_status.signing_cert.subject.human_friendly,
                    )
                    if check.intact and check.valid and not check.trusted:
                        check.problem = "TSA not trusted: add its root with --trust"
                except (SignatureValidationError, ValueError) as exc:
                    check = TokenCheck("document time-stamp", problem=_short(exc))
                archive.append(check)
                report.timestamps.append(check)
            _settle_level(report, t=t, lt_found=lt_found, lt_ok=lt_ok, archive=archive)
    stamps = f", {len(doc_stamps)} document time-stamp(s)" if doc_stamps else ""
    return VerificationReport(str(path), "PAdES (PDF)", reports, extra=stamps)


def _pdf_signature_tokens(signer_info: cms.SignerInfo) -> list[cms.ContentInfo]:
    return [
        cms.ContentInfo.load(value.dump())
        for attr in signer_info["unsigned_attrs"] or []
        if attr["type"].native == "signature_time_stamp_token"
        for value in attr["values"]
    ]


# -- CMS (CAdES) --------------------------------------------------------------------------
class _DigestIndex(core.SequenceOf):
    _child_spec = core.OctetString


class _ATSHashIndexV3(core.Sequence):
    _fields = [
        ("hash_ind_algorithm", algos.DigestAlgorithm, {"default": {"algorithm": "sha256"}}),
        ("certificates_hash_index", _DigestIndex),
        ("crls_hash_index", _DigestIndex),
        ("unsigned_attr_values_hash_index", _DigestIndex),
    ]


def _cms_evidence(signed_data: cms.SignedData) -> Evidence:
    evidence = Evidence(
        [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
    )
    for choice in signed_data["crls"] or []:
        if choice.name == "crl":
            evidence.crls.append(choice.chosen)
        elif choice.name == "other":
            other = choice.chosen
            if other["other_rev_info_format"].dotted == OCSP_RESPONSE_FORMAT:
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
    indexes = _unsigned_values(token["content"]["signer_infos"][0], ID_ATS_HASH_INDEX_V3)
    if len(indexes) != 1:
        raise ValueError("the archive time-stamp carries no single ats-hash-index-v3")
    index_der = indexes[0].dump()
    index = _ATSHashIndexV3.load(index_der)
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

    return _hasher(
        [
            signed_data["encap_content_info"]["content_type"].dump(),
            message_digest,
            *(
                signer_info[name].dump()
                for name in (
                    "version",
                    "sid",
                    "digest_algorithm",
                    "signed_attrs",
                    "signature_algorithm",
                    "signature",
                )
            ),
            index_der,
        ]
    )


async def _verify_cms(
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
        raise VerifyError(f"{path}: not a DER CMS signature: {_short(exc)}") from exc
    if len(signer_infos) != 1:
        raise VerifyError(
            f"{path}: CMS with {len(signer_infos)} signers; signet verify "
            "checks single-signer CAdES"
        )
    attached = encapsulated is not None and not isinstance(encapsulated, core.Void)
    if not attached and detached is None:
        raise VerifyError(
            f"{path} is a detached CAdES signature: give the signed file with --detached FILE"
        )
    if attached and detached is not None:
        raise VerifyError(f"{path} carries its content: drop --detached")
    signer_info = signer_infos[0]
    evidence = _cms_evidence(signed_data)
    report = SignatureReport("signature 1")
    context = _context(anchors, evidence, require_revocation=False)
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
                key_usage_settings=_key_usage_settings(),
            )
        except (SignatureValidationError, ValueError) as exc:
            report.problems.append(f"pyHanko could not validate it: {_short(exc)}")
            return VerificationReport(str(path), _cms_label(attached), [report])
    report.signer = status.signing_cert.subject.human_friendly
    report.claimed_time = _format_time(status.signer_reported_dt)
    report.intact, report.valid = status.intact, status.valid
    report.checked.append("message digest and CMS signature (pyHanko)")
    _status_trust(report, status, anchors)

    t = None
    tokens = [
        cms.ContentInfo.load(v.dump())
        for v in _unsigned_values(signer_info, "1.2.840.113549.1.9.16.2.14")
    ]
    if status.timestamp_validity is not None:
        ts = status.timestamp_validity
        t = TokenCheck(
            "signature time-stamp",
            ts.intact,
            ts.valid,
            ts.trusted,
            ts.timestamp,
            ts.signing_cert.subject.human_friendly,
        )
        if ts.intact and ts.valid and not ts.trusted:
            t.problem = "TSA not trusted: add its root with --trust"
        report.timestamps.append(t)
    lt_found = evidence.has_revocation_data
    lt_ok = lt_found and await _lt_check(report, status.signing_cert, anchors, evidence, tokens)
    archive = []
    for value in _unsigned_values(signer_info, ID_ARCHIVE_TIMESTAMP_V3):
        token = cms.ContentInfo.load(value.dump())
        try:
            imprint = _archive_v3_imprint(signed_data, signer_info, token)
        except (ValueError, KeyError, StopIteration) as exc:
            check = TokenCheck("archive time-stamp (v3)", problem=_short(exc))
        else:
            _, token_certs = _token_certs(token)
            check = await _token_check(
                "archive time-stamp (v3)",
                token,
                imprint,
                anchors,
                Evidence([*evidence.certs, *token_certs], evidence.crls, evidence.ocsps),
            )
        archive.append(check)
        report.timestamps.append(check)
    _settle_level(report, t=t, lt_found=lt_found, lt_ok=lt_ok, archive=archive)
    return VerificationReport(str(path), _cms_label(attached), [report])


def _cms_label(attached: bool) -> str:
    return f"CAdES (CMS SignedData, {'attached' if attached else 'detached'})"


# -- XML (XAdES) --------------------------------------------------------------------------
def _xml_parser() -> Any:
    from signet.formats._xml import safe_parser

    # huge_tree: an enveloping signature over a large document has a text node over 10 MB
    return safe_parser(huge_tree=True)


def _c14n(element: Any, algorithm: str | None) -> bytes:
    from lxml import etree

    algorithm = algorithm or ""
    return etree.tostring(
        element,
        method="c14n",
        exclusive="xml-exc-c14n" in algorithm,
        with_comments=algorithm.endswith("#WithComments"),
    )


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _b64_der(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()))


async def _verify_xml(
    path: Path, detached: Path | None, anchors: list[asn1_x509.Certificate]
) -> VerificationReport:
    from lxml import etree

    from signet.formats._xml import XmlRefused, refuse_doctype

    try:
        root = etree.parse(str(path), parser=_xml_parser()).getroot()
        refuse_doctype(root)
    except (etree.XMLSyntaxError, OSError) as exc:
        raise VerifyError(f"{path}: not well-formed XML: {_short(exc)}") from exc
    except XmlRefused as exc:
        raise VerifyError(f"{path}: {exc}") from exc
    if root.tag == _tag(DS, "Signature"):
        signatures = [root]
    else:
        signatures = root.findall(_tag(DS, "Signature"))
    if not signatures:
        raise VerifyError(f"{path}: no ds:Signature at the top of the XML document")
    notes = []
    if len(signatures) > 1:
        notes.append(
            f"{len(signatures)} signatures found; only the first was checked "
            "(signet verify checks one XML signature per file)"
        )
    report = await _verify_xades(path, root, signatures[0], detached, anchors)
    reports = [report]
    for number in range(2, len(signatures) + 1):
        skipped = SignatureReport(f"signature {number}")
        skipped.problems.append("not checked")
        reports.append(skipped)
    return VerificationReport(str(path), "XAdES (XML)", reports, notes)


async def _verify_xades(
    path: Path,
    root: Any,
    signature: Any,
    detached: Path | None,
    anchors: list[asn1_x509.Certificate],
) -> SignatureReport:
    from cryptography import x509 as pyca_x509
    from signxml.exceptions import InvalidDigest, InvalidInput, SignXMLException
    from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

    report = SignatureReport("signature 1")
    key_info_certs = [
        asn1_x509.Certificate.load(_b64_der(e.text))
        for e in signature.iterfind(
            f"{_tag(DS, 'KeyInfo')}/{_tag(DS, 'X509Data')}/{_tag(DS, 'X509Certificate')}"
        )
    ]
    if not key_info_certs:
        report.problems.append("no X509Certificate in ds:KeyInfo: the signer is unknown")
        return report
    external = [
        r.get("URI")
        for r in signature.iterfind(f"{_tag(DS, 'SignedInfo')}/{_tag(DS, 'Reference')}")
        if r.get("URI") and not r.get("URI").startswith("#")
    ]
    if external and detached is None:
        raise VerifyError(
            f"{path} is a detached XAdES signature over {external[0]!r}: give "
            "the signed file with --detached FILE"
        )
    if len(external) > 1:
        raise VerifyError(
            f"{path} references {len(external)} external files; signet verify checks one"
        )
    if detached is not None and not external:
        raise VerifyError(f"{path} references no external file: drop --detached")

    # signxml checks the SignedInfo signature with the certificate from KeyInfo, every
    # reference and the SigningCertificate(V2) digest; the path is validated below.
    signer_cert = key_info_certs[0]
    signer_pyca = pyca_x509.load_der_x509_certificate(signer_cert.dump())
    config = XAdESSignatureConfiguration(
        expect_references=True, verification_time=signer_pyca.not_valid_before_utc
    )
    signed_data: list[bytes] = []
    try:
        results = XAdESVerifier().verify(
            etree_bytes(root),
            x509_cert=signer_pyca,
            expect_config=config,
            parser=_xml_parser(),
            uri_resolver=(lambda uri: Path(detached).read_bytes()) if detached else None,
        )
        signed_data = [r.signed_data for r in results]
        report.intact = report.valid = True
        report.checked.append(
            "SignedInfo signature, every ds:Reference and the signing certificate digest (signxml)"
        )
    except InvalidDigest as exc:
        if "certificate digest" in str(exc):
            report.intact = True
            report.problems.append(
                f"the signed signing-certificate reference does not match "
                f"the certificate in KeyInfo ({_short(exc)})"
            )
        else:
            report.valid = True
            report.problems.append(f"the signed data changed: {_short(exc)}")
    except (InvalidInput, SignXMLException, ValueError) as exc:
        report.problems.append(f"the XML signature does not verify: {_short(exc)}")
    for cert in key_info_certs:
        if cert.dump() == signer_cert.dump():
            report.signer = cert.subject.human_friendly
    report.claimed_time = signature.findtext(f".//{_tag(XADES, 'SigningTime')}")

    evidence = Evidence(list(key_info_certs))
    unsigned = signature.find(f".//{_tag(XADES, 'UnsignedSignatureProperties')}")
    if unsigned is not None:
        evidence.certs += [
            asn1_x509.Certificate.load(_b64_der(e.text))
            for e in unsigned.iterfind(
                f"{_tag(XADES, 'CertificateValues')}/{_tag(XADES, 'EncapsulatedX509Certificate')}"
            )
        ]
        values = f"{_tag(XADES, 'RevocationValues')}"
        evidence.crls += [
            crl.CertificateList.load(_b64_der(e.text))
            for e in unsigned.iterfind(
                f"{values}/{_tag(XADES, 'CRLValues')}/{_tag(XADES, 'EncapsulatedCRLValue')}"
            )
        ]
        evidence.ocsps += [
            ocsp.OCSPResponse.load(_b64_der(e.text))
            for e in unsigned.iterfind(
                f"{values}/{_tag(XADES, 'OCSPValues')}/{_tag(XADES, 'EncapsulatedOCSPValue')}"
            )
        ]
    ok, detail = await _path_check(
        signer_cert, anchors, evidence, require_revocation=False, key_usage=SIGNER_KEY_USAGES
    )
    _signer_trust(report, ok, detail)

    t = None
    tokens = []
    archive = []
    if unsigned is not None:
        signature_value = signature.find(_tag(DS, "SignatureValue"))
        for stamp in unsigned.findall(_tag(XADES, "SignatureTimeStamp")):
            token = cms.ContentInfo.load(
                _b64_der(stamp.findtext(_tag(XADES, "EncapsulatedTimeStamp")))
            )
            method = stamp.find(_tag(DS, "CanonicalizationMethod"))
            octets = _c14n(signature_value, method.get("Algorithm") if method is not None else None)
            check = await _token_check(
                "signature time-stamp",
                token,
                _hasher([octets]),
                anchors,
                evidence,
            )
            report.timestamps.append(check)
            tokens.append(token)
            t = t if t is not None and t.ok else check
        for stamp in unsigned.findall(_tag(XADES141, "ArchiveTimeStamp")):
            token = cms.ContentInfo.load(
                _b64_der(stamp.findtext(_tag(XADES, "EncapsulatedTimeStamp")))
            )
            if not signed_data:
                check = TokenCheck(
                    "archive time-stamp",
                    problem="its input cannot be computed: the references did not verify",
                )
            else:
                parts = _xades_archive_input(signature, unsigned, stamp, signed_data)
                check = await _token_check(
                    "archive time-stamp",
                    token,
                    _hasher(parts),
                    anchors,
                    evidence,
                )
            archive.append(check)
            report.timestamps.append(check)
    lt_found = evidence.has_revocation_data
    lt_ok = lt_found and await _lt_check(report, signer_cert, anchors, evidence, tokens)
    _settle_level(report, t=t, lt_found=lt_found, lt_ok=lt_ok, archive=archive)
    return report


def etree_bytes(root: Any) -> bytes:
    from lxml import etree

    return bytes(etree.tostring(root.getroottree()))


def _xades_archive_input(
    signature: Any, unsigned: Any, stamp: Any, references: list[bytes]
) -> list[bytes]:
    """xades141:ArchiveTimeStamp input, EN 319 132-1 clause 5.5.2.2: the referenced data
    after transforms (as signxml verified it), SignedInfo, SignatureValue, KeyInfo, the
    unsigned properties before this time-stamp, and the other ds:Objects."""
    method = stamp.find(_tag(DS, "CanonicalizationMethod"))
    algorithm = method.get("Algorithm") if method is not None else None
    parts = list(references)
    for name in ("SignedInfo", "SignatureValue", "KeyInfo"):
        element = signature.find(_tag(DS, name))
        if element is not None:
            parts.append(_c14n(element, algorithm))
    for prop in unsigned:
        if prop is stamp:
            break
        parts.append(_c14n(prop, algorithm))
    for obj in signature.findall(_tag(DS, "Object")):
        if obj.find(_tag(XADES, "QualifyingProperties")) is None:
            parts.append(_c14n(obj, algorithm))
    return parts


# -- JSON (JAdES) -------------------------------------------------------------------------
def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jades_registry() -> dict[str, Any]:
    from jwcrypto.common import JWSEHeaderParameter

    return {
        "sigT": JWSEHeaderParameter("Claimed signing time", True, True, None),
        "sigD": JWSEHeaderParameter("Signed data objects", True, True, None),
    }


async def _verify_jws(
    path: Path, detached: Path | None, anchors: list[asn1_x509.Certificate]
) -> VerificationReport:
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise VerifyError(f"{path}: not JSON: {_short(exc)}") from exc
        if "signatures" in document:
            raise VerifyError(
                f"{path}: general JWS JSON serialisation; signet verify checks "
                "the flattened one JAdES uses"
            )
        if not isinstance(document, dict) or "protected" not in document:
            raise VerifyError(f"{path}: not a JWS (no protected header)")
        serialization = "JSON"
    else:
        pieces = text.split(".")
        if len(pieces) != 3:
            raise VerifyError(f"{path}: not a JWS compact serialisation")
        document = {"protected": pieces[0], "payload": pieces[1], "signature": pieces[2]}
        serialization = "compact"
    report = await _verify_jades(path, document, detached, anchors)
    return VerificationReport(str(path), f"JAdES (JWS {serialization})", [report])


async def _verify_jades(
    path: Path,
    document: dict[str, Any],
    detached: Path | None,
    anchors: list[asn1_x509.Certificate],
) -> SignatureReport:
    from jwcrypto.common import JWException
    from jwcrypto.jwk import JWK
    from jwcrypto.jws import JWS

    report = SignatureReport("signature 1")
    try:
        header = json.loads(_b64url_decode(document["protected"]))
        certs = [asn1_x509.Certificate.load(base64.b64decode(c)) for c in header["x5c"]]
        certs[0].native  # noqa: B018 - a full parse
    except (KeyError, IndexError, ValueError, TypeError, binascii.Error) as exc:
        report.problems.append(f"no usable protected header with x5c: {_short(exc)}")
        return report
    signer_cert = certs[0]
    report.signer = signer_cert.subject.human_friendly
    report.claimed_time = header.get("sigT")
    sig_d = header.get("sigD")
    payload_present = "payload" in document and document["payload"] != ""
    if sig_d is not None and detached is None:
        raise VerifyError(
            f"{path} is a detached JAdES signature over "
            f"{', '.join(sig_d.get('pars') or ['?'])}: give the signed file "
            "with --detached FILE"
        )
    if sig_d is None and detached is not None:
        raise VerifyError(f"{path} carries its payload: drop --detached")

    if header.get("x5t#S256") not in (None, _b64url(hashlib.sha256(signer_cert.dump()).digest())):
        report.problems.append("x5t#S256 does not match the first x5c certificate")
    serialised = dict(document)
    serialised.setdefault("payload", "")
    try:
        from cryptography import x509 as pyca_x509

        public = JWK.from_pyca(pyca_x509.load_der_x509_certificate(signer_cert.dump()).public_key())
        jws = JWS(header_registry=_jades_registry())
        jws.deserialize(json.dumps({k: v for k, v in serialised.items() if k != "header"}))
        jws.verify(public, alg=header.get("alg"))
        report.valid = True
        report.checked.append(f"JWS signature ({header.get('alg')}, jwcrypto)")
    except (JWException, ValueError, TypeError) as exc:
        report.problems.append(f"the JWS signature does not verify: {_short(exc)}")
    if sig_d is None:
        report.intact = report.valid and payload_present
        if report.valid and not payload_present:
            report.problems.append("the JWS has an empty payload and no sigD: nothing signed")
    else:
        assert detached is not None
        report.intact = _sig_d_matches(report, sig_d, detached)
    if (
        report.intact
        and report.valid
        and header.get("x5t#S256")
        not in (None, _b64url(hashlib.sha256(signer_cert.dump()).digest()))
    ):
        report.valid = False

    components = []
    for raw in (document.get("header") or {}).get("etsiU") or []:
        try:
            ((name, value),) = json.loads(_b64url_decode(raw)).items()
        except (ValueError, binascii.Error) as exc:
            report.problems.append(f"an etsiU entry is not base64url JSON: {_short(exc)}")
            continue
        components.append((name, value, raw))
    evidence = Evidence(list(certs))
    for name, value, _ in components:
        if name == "xVals":
            evidence.certs += [
                asn1_x509.Certificate.load(base64.b64decode(v["x509Cert"]["val"]))
                for v in value
                if "x509Cert" in v
            ]
        elif name == "rVals":
            evidence.crls += [
                crl.CertificateList.load(base64.b64decode(v["val"]))
                for v in value.get("crlVals", [])
            ]
            evidence.ocsps += [
                ocsp.OCSPResponse.load(base64.b64decode(v["val"]))
                for v in value.get("ocspVals", [])
            ]
    ok, detail = await _path_check(
        signer_cert, anchors, evidence, require_revocation=False, key_usage=SIGNER_KEY_USAGES
    )
    _signer_trust(report, ok, detail)

    t = None
    tokens = []
    archive = []
    signature_b64 = str(document.get("signature", ""))
    for position, (name, value, _) in enumerate(components):
        if name not in ("sigTst", "arcTst"):
            continue
        for entry in value.get("tstTokens", []):
            token = cms.ContentInfo.load(base64.b64decode(entry["val"]))
            if name == "sigTst":
                check = await _token_check(
                    "signature time-stamp",
                    token,
                    _hasher([signature_b64.encode("ascii")]),
                    anchors,
                    evidence,
                )
                report.timestamps.append(check)
                tokens.append(token)
                t = t if t is not None and t.ok else check
            else:
                earlier = [raw.encode("ascii") for _, _, raw in components[:position]]
                parts = _jades_archive_input(document, detached, earlier)
                check = await _token_check(
                    "archive time-stamp",
                    token,
                    _hasher(parts),
                    anchors,
                    evidence,
                )
                archive.append(check)
                report.timestamps.append(check)
    lt_found = evidence.has_revocation_data
    lt_ok = lt_found and await _lt_check(report, signer_cert, anchors, evidence, tokens)
    _settle_level(report, t=t, lt_found=lt_found, lt_ok=lt_ok, archive=archive)
    return report


def _sig_d_matches(report: SignatureReport, sig_d: dict[str, Any], detached: Path) -> bool:
    hash_name = JWS_HASHES.get(str(sig_d.get("hashM")))
    values = sig_d.get("hashV") or []
    if sig_d.get("mId") != "http://uri.etsi.org/19182/ObjectIdByURIHash" or hash_name is None:
        report.problems.append(
            f"sigD mechanism {sig_d.get('mId')!r} / {sig_d.get('hashM')!r} "
            "is not one signet verify knows"
        )
        return False
    if len(values) != 1:
        report.problems.append(f"sigD names {len(values)} documents; signet verify checks one")
        return False
    digest = hashlib.new(hash_name)
    with open(detached, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if _b64url(digest.digest()) != values[0]:
        report.problems.append(
            f"--detached {detached.name} does not match the signed hash "
            f"of {', '.join(sig_d.get('pars') or ['?'])}"
        )
        return False
    report.checked.append(f"sigD {hash_name} of the detached file")
    return True


def _jades_archive_input(
    document: dict[str, Any], detached: Path | None, earlier: list[bytes]
) -> list[bytes]:
    """arcTst input: payload (base64url of the detached file), protected header, signature,
    each followed by '.', then the etsiU components before the archive time-stamp."""
    if detached is not None:
        payload = _b64url(detached.read_bytes()).encode("ascii")
    else:
        payload = str(document.get("payload", "")).encode("ascii")
    return [
        payload,
        b".",
        str(document["protected"]).encode("ascii"),
        b".",
        str(document["signature"]).encode("ascii"),
        b".",
        *earlier,
    ]
