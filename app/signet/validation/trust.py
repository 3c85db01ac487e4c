"""Trust: the anchors, the evidence a file embeds, and whether a path from a certificate to an
anchor validates now -- offline, revocation checked only against the embedded data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import crl, ocsp, pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError

from signet.validation.errors import short
from signet.validation.report import SignatureReport

SIGNER_KEY_USAGES = {"digital_signature", "non_repudiation"}
NO_ANCHOR = "no trust anchor given"
NO_PATH = "no path to a trust anchor"


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


@dataclass
class Evidence:
    """Certificates and revocation data a signature carries (for paths and B-LT)."""

    certs: list[asn1_x509.Certificate] = field(default_factory=list)
    crls: list[crl.CertificateList] = field(default_factory=list)
    ocsps: list[ocsp.OCSPResponse] = field(default_factory=list)

    @property
    def has_revocation_data(self) -> bool:
        return bool(self.crls or self.ocsps)


def validation_context(
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


def key_usage_settings() -> Any:
    from pyhanko.sign.validation.settings import KeyUsageConstraints

    return KeyUsageConstraints(key_usage=set(SIGNER_KEY_USAGES), match_all_key_usages=False)


async def path_check(
    cert: asn1_x509.Certificate,
    anchors: Sequence[asn1_x509.Certificate],
    evidence: Evidence,
    *,
    require_revocation: bool,
    key_usage: set[str] | None = None,
) -> tuple[bool, str]:
    """(ok, anchor subject or the reason) for a path from ``cert`` to an anchor."""
    if not anchors:
        return False, NO_ANCHOR
    validator = CertificateValidator(
        cert,
        intermediate_certs=list(evidence.certs),
        validation_context=validation_context(
            anchors, evidence, require_revocation=require_revocation
        ),
    )
    try:
        path = await validator.async_validate_usage(set())
    except PathBuildingError:
        return False, NO_PATH
    except (PathValidationError, ValidationError, ValueError) as exc:
        return False, short(exc)
    usages = cert.key_usage_value
    if key_usage and usages is not None and not key_usage & set(usages.native):
        return False, f"the certificate's key usage allows none of {sorted(key_usage)}"
    return True, f"anchor {path.first.subject.human_friendly}"


def signer_trust(report: SignatureReport, ok: bool, detail: str) -> None:
    report.trusted = ok and report.intact and report.valid
    if ok and not report.trusted:
        detail += ", but the signature itself does not hold"
    report.trust_detail = detail


def status_trust(
    report: SignatureReport, status: Any, anchors: Sequence[asn1_x509.Certificate]
) -> None:
    """Trust as pyHanko judged it (it evaluates paths only for a valid signature)."""
    path = status.validation_path
    if not anchors:
        ok, detail = False, NO_ANCHOR
    elif status.revoked:
        ok, detail = False, "a certificate in the path is revoked"
    elif status.trust_problem_indic is not None:
        ok, detail = False, status.trust_problem_indic.name
    elif path is not None:
        ok, detail = True, f"anchor {path.first.subject.human_friendly}"
    elif not status.valid:
        ok, detail = False, "not evaluated: the signature value does not verify"
    else:
        ok, detail = False, NO_PATH
    signer_trust(report, ok, detail)
