"""Verify PAdES, CAdES, XAdES and JAdES signatures, and say what was and was not checked.

The verdict does not rest on the signing code: from ``formats`` this package reads only the
ASN.1 types both share (``formats.asn1``) and the safe XML parser (``formats._xml``).
pyHanko validates PDF and CMS signatures and every RFC 3161 token, signxml XML signatures
(``XAdESVerifier``), jwcrypto JWS; pyhanko-certvalidator builds certificate paths, offline:
revocation is checked only against the data the file embeds, never fetched. Errors and
reports name no command-line option; a front end says in its own terms what to do.
"""

from signet.validation.dispatch import detect_format, verify_file
from signet.validation.errors import ContentFault, VerifyError
from signet.validation.report import SignatureReport, TokenCheck, VerificationReport
from signet.validation.trust import load_certificates

__all__ = [
    "ContentFault",
    "SignatureReport",
    "TokenCheck",
    "VerificationReport",
    "VerifyError",
    "detect_format",
    "load_certificates",
    "verify_file",
]
