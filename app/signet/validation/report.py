"""The verification report: per signature what holds, the level reached, what was not checked.

Per signature: *intact* (the signed data hashes to what was signed), *valid* (the signature
value verifies with the signer's key and its signed properties hold), *trusted* (a path from
the signer's certificate to a trust anchor validates now), and the *level* reached: B-B, then
B-T (a signature time-stamp from a trusted TSA over this signature), B-LT (the embedded
certificates, CRLs and OCSP responses alone validate the signer and the TSA), B-LTA (an
archive / document time-stamp over all that, from a trusted TSA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NOT_CHECKED = (
    "signature policy, qualified status (no EU trusted list), certificates at the signing "
    "or time-stamp time (they are validated now), online revocation (only data embedded in "
    "the file is used)"
)


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


def format_time(value: Any) -> str | None:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S %Z}".rstrip()
    return str(value) if value else None


def settle_level(
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
