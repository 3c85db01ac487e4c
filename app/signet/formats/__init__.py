"""Document-signature formats: PAdES, XAdES, CAdES, JAdES at B-B..B-LTA, given a sign callable.

formats imports no other signet package but the algorithm registry. It computes the
to-be-signed hash of a document, hands exactly that hash to ``RemoteKey.sign_digest`` (the
SAM/HSM path lives behind that callable), and embeds the signature together with
time-stamps and validation data.
"""

from signet.formats._io import Source, compute_document_digest
from signet.formats.cades import async_sign_cades
from signet.formats.dispatch import async_sign_document, normalise_format, sign_document
from signet.formats.errors import FormatError, ServiceError
from signet.formats.jades import async_sign_jades
from signet.formats.keys import PSS_SALT_LENGTH, RemoteKey, SignDigest
from signet.formats.levels import Level, parse_level
from signet.formats.names import document_uri
from signet.formats.pades import async_sign_pades
from signet.formats.services import RevocationConfig, ServicesConfig, TsaConfig
from signet.formats.xades import async_sign_xades

__all__ = [
    "PSS_SALT_LENGTH",
    "FormatError",
    "Level",
    "RemoteKey",
    "RevocationConfig",
    "ServiceError",
    "ServicesConfig",
    "SignDigest",
    "Source",
    "TsaConfig",
    "async_sign_cades",
    "async_sign_document",
    "async_sign_jades",
    "async_sign_pades",
    "async_sign_xades",
    "compute_document_digest",
    "document_uri",
    "normalise_format",
    "parse_level",
    "sign_document",
]
from signet.formats.timestamp import async_timestamp_token, check_tsa, timestamp_token

__all__ += ["async_timestamp_token", "check_tsa", "timestamp_token"]
