"""Which verifier a file needs, and ``verify_file``, the one way in."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from asn1crypto import x509 as asn1_x509

from signet.validation.cms import verify_cms
from signet.validation.errors import ContentFault, VerifyError, short
from signet.validation.jws import verify_jws
from signet.validation.pdf import verify_pdf
from signet.validation.report import VerificationReport
from signet.validation.trust import NO_ANCHOR
from signet.validation.xml import verify_xml


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
        raise VerifyError(f"{detached}: no such file", ContentFault.NOT_FOUND)
    kind = detect_format(head)
    verifier = {
        "pades": verify_pdf,
        "cades": verify_cms,
        "xades": verify_xml,
        "jades": verify_jws,
    }[kind]
    anchors = list(trust)
    try:
        report = asyncio.run(verifier(path, Path(detached) if detached else None, anchors))
    except ValueError as exc:
        # a structure the file embeds (a certificate, CRL, OCSP response, token, base64 or
        # JSON text) does not parse: the file is damaged, and no verdict can be given
        raise VerifyError(f"{path}: part of it cannot be read: {short(exc)}") from exc
    if not anchors:
        report.notes.append(f"{NO_ANCHOR}: no signature can be trusted")
    return report
