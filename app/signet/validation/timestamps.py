"""RFC 3161 time-stamps: a token checked against the imprint recomputed from the signature,
and the B-LT check that the embedded data alone validate the signer and the TSA."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509

from signet.validation.errors import short
from signet.validation.report import SignatureReport, TokenCheck, settle_level
from signet.validation.trust import NO_ANCHOR, Evidence, path_check, validation_context

TSA_UNTRUSTED = "TSA not trusted: its root is not among the trust anchors"


async def token_check(
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
        context = validation_context(anchors, evidence, require_revocation=False)
        kwargs = await validate_tst_signed_data(signed_data, context, imprint)
        status = TimestampSignatureStatus(**kwargs)
    except (SignatureValidationError, ValueError, KeyError, TypeError) as exc:
        check.problem = f"unusable token: {short(exc)}"
        return check
    check.intact, check.valid, check.trusted = status.intact, status.valid, status.trusted
    check.time = status.timestamp
    if not status.intact:
        check.problem = "its imprint does not match what it should time-stamp"
    elif not status.valid:
        check.problem = "its signature does not verify"
    elif not status.trusted:
        check.problem = TSA_UNTRUSTED if anchors else NO_ANCHOR
    return check


def hasher(parts: Sequence[bytes]) -> Callable[[str], bytes]:
    """The imprint a time-stamp should carry: the hash of ``parts`` with the token's hash."""

    def imprint(hash_name: str) -> bytes:
        h = hashlib.new(hash_name)
        for part in parts:
            h.update(part)
        return h.digest()

    return imprint


async def lt_check(
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
    ok, detail = await path_check(signer, anchors, evidence, require_revocation=True)
    if not ok:
        report.problems.append(f"B-LT data do not validate the signer offline: {detail}")
        return False
    for token in signature_tokens:
        tsa, others = token_certs(token)
        if tsa is None:
            report.problems.append("B-LT: the time-stamp carries no TSA certificate")
            return False
        extended = Evidence([*evidence.certs, *others], evidence.crls, evidence.ocsps)
        ok, detail = await path_check(tsa, anchors, extended, require_revocation=True)
        if not ok:
            report.problems.append(f"B-LT data do not validate the TSA offline: {detail}")
            return False
    report.checked.append("revocation of signer and TSA against the embedded data")
    return True


def token_certs(
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


def status_token_check(kind: str, status: Any) -> TokenCheck:
    """A token pyHanko validated itself (a ``TimestampSignatureStatus``), as a TokenCheck."""
    check = TokenCheck(
        kind,
        status.intact,
        status.valid,
        status.trusted,
        status.timestamp,
        status.signing_cert.subject.human_friendly,
    )
    if check.intact and check.valid and not check.trusted:
        check.problem = TSA_UNTRUSTED
    return check


@dataclass
class Stamps:
    """One signature's time-stamps as they are checked, and the level they let it reach."""

    report: SignatureReport
    anchors: Sequence[asn1_x509.Certificate]
    evidence: Evidence
    # the first signature time-stamp that holds, else the last one checked
    t: TokenCheck | None = None
    tokens: list[cms.ContentInfo] = field(default_factory=list)
    archive: list[TokenCheck] = field(default_factory=list)

    async def check_signature_stamp(self, token: cms.ContentInfo, parts: list[bytes]) -> None:
        """A signature time-stamp over ``parts`` (the signature value as the format has it)."""
        kind = "signature time-stamp"
        check = await token_check(kind, token, hasher(parts), self.anchors, self.evidence)
        self.report.timestamps.append(check)
        self.tokens.append(token)
        self.t = self.t if self.t is not None and self.t.ok else check

    async def check_archive_stamp(
        self,
        token: cms.ContentInfo,
        imprint: Callable[[str], bytes],
        *,
        kind: str = "archive time-stamp",
        evidence: Evidence | None = None,
    ) -> None:
        evidence = evidence or self.evidence
        self.add_archive(await token_check(kind, token, imprint, self.anchors, evidence))

    def add_archive(self, check: TokenCheck) -> None:
        self.archive.append(check)
        self.report.timestamps.append(check)

    async def settle(self, signer: asn1_x509.Certificate) -> None:
        """The level reached, B-LT judged on the revocation data the signature carries."""
        anchors, evidence = self.anchors, self.evidence
        lt_found = evidence.has_revocation_data
        lt_ok = lt_found and await lt_check(self.report, signer, anchors, evidence, self.tokens)
        settle_level(self.report, t=self.t, lt_found=lt_found, lt_ok=lt_ok, archive=self.archive)
