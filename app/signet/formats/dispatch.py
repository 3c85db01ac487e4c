"""One entry point for every format: ``sign_document`` picks PAdES, XAdES, CAdES or JAdES."""

from __future__ import annotations

import asyncio
from typing import IO

from signet.formats._io import Source
from signet.formats.cades import async_sign_cades
from signet.formats.errors import FormatError
from signet.formats.jades import async_sign_jades
from signet.formats.keys import RemoteKey
from signet.formats.levels import Level
from signet.formats.pades import ResumeDigest, async_sign_pades
from signet.formats.services import ServicesConfig
from signet.formats.xades import async_sign_xades

# CSC v2 signDoc names formats by letter (signature_format) and packagings by word
# (signed_envelope_property); both spellings are accepted.
_FORMAT_ALIASES = {
    "p": "pades", "pades": "pades",
    "x": "xades", "xades": "xades",
    "c": "cades", "cades": "cades",
    "j": "jades", "jades": "jades",
}  # fmt: skip
_PACKAGINGS = {
    "pades": {"enveloped": "enveloped", "revision": "enveloped"},
    "xades": {"enveloped": "enveloped", "enveloping": "enveloping", "detached": "detached"},
    "cades": {"detached": "detached", "attached": "attached", "enveloping": "attached"},
    "jades": {"attached": "attached", "detached": "detached"},
}
DEFAULT_PACKAGING = {
    "pades": "enveloped",
    "xades": "enveloped",
    "cades": "detached",
    "jades": "attached",
}


def normalise_format(format: str, packaging: str | None) -> tuple[str, str]:
    fmt = _FORMAT_ALIASES.get(format.strip().lower())
    if fmt is None:
        raise FormatError(f"unknown signature format {format!r}; use PAdES, XAdES, CAdES or JAdES")
    if packaging is None:
        return fmt, DEFAULT_PACKAGING[fmt]
    resolved = _PACKAGINGS[fmt].get(packaging.strip().lower())
    if resolved is None:
        allowed = ", ".join(sorted(_PACKAGINGS[fmt]))
        raise FormatError(f"{fmt} cannot be packaged {packaging!r}; use one of: {allowed}")
    return fmt, resolved


async def async_sign_document(
    data: Source,
    out: IO[bytes],
    *,
    format: str,
    level: str | Level,
    key: RemoteKey,
    packaging: str | None = None,
    services: ServicesConfig | None = None,
    hash_algorithm: str = "sha256",
    scheme: str | None = None,
    document_name: str | None = None,
    mime_type: str | None = None,
    serialization: str = "json",
    field_name: str | None = None,
    reason: str | None = None,
    location: str | None = None,
    resume_digest: ResumeDigest | None = None,
) -> None:
    """Async twin of :func:`sign_document`, for callers that already run an event loop."""
    fmt, packaging = normalise_format(format, packaging)
    hash_algorithm = hash_algorithm.lower()
    if out is data and fmt != "pades":
        raise FormatError(f"{fmt} cannot sign in place: give it an output apart from the input")
    if fmt == "pades":
        await async_sign_pades(
            data,
            out,
            level=level,
            key=key,
            services=services,
            hash_algorithm=hash_algorithm,
            scheme=scheme,
            field_name=field_name,
            reason=reason,
            location=location,
            resume_digest=resume_digest,
        )
    elif fmt == "xades":
        await async_sign_xades(
            data,
            out,
            level=level,
            key=key,
            services=services,
            hash_algorithm=hash_algorithm,
            scheme=scheme,
            packaging=packaging,
            document_name=document_name,
            mime_type=mime_type,
        )
    elif fmt == "cades":
        await async_sign_cades(
            data,
            out,
            level=level,
            key=key,
            services=services,
            hash_algorithm=hash_algorithm,
            scheme=scheme,
            packaging=packaging,
        )
    else:
        await async_sign_jades(
            data,
            out,
            level=level,
            key=key,
            services=services,
            hash_algorithm=hash_algorithm,
            scheme=scheme,
            packaging=packaging,
            serialization=serialization,
            document_name=document_name,
            mime_type=mime_type,
        )


def sign_document(
    data: Source,
    out: IO[bytes],
    *,
    format: str,
    level: str | Level,
    key: RemoteKey,
    packaging: str | None = None,
    services: ServicesConfig | None = None,
    hash_algorithm: str = "sha256",
    scheme: str | None = None,
    document_name: str | None = None,
    mime_type: str | None = None,
    serialization: str = "json",
    field_name: str | None = None,
    reason: str | None = None,
    location: str | None = None,
    resume_digest: ResumeDigest | None = None,
) -> None:
    """Sign ``data`` (bytes, path or binary stream) and write the result to ``out``.

    * ``format``: ``pades`` | ``xades`` | ``cades`` | ``jades`` (or CSC's ``P``/``X``/``C``/``J``)
    * ``level``: ``B-B`` | ``B-T`` | ``B-LT`` | ``B-LTA`` (``Ades-B-LT`` etc. accepted)
    * ``packaging``: PAdES ``enveloped``; XAdES ``enveloped``/``enveloping``/``detached``;
      CAdES ``detached``/``attached``; JAdES ``attached``/``detached`` (default per format).
    * ``scheme``: ``pkcs1v15`` (RSA default), ``pss``, or ``ecdsa`` (EC keys).
    * ``document_name``: the file name detached XAdES/JAdES reference (required there),
      percent-encoded into a relative URI.
    * ``serialization``: JAdES ``json`` (any level) or ``compact`` (B-B only).

    ``out`` may be ``data`` itself for PAdES only: a readable, writable, seekable stream that
    the signature is then appended to, without a copy of the document. ``resume_digest``, a
    hash state in ``hash_algorithm`` and the number of the document's leading bytes it has
    taken in, then spares hashing those again (PAdES in place only; ignored otherwise).

    ``key.sign_digest`` is called exactly once, with a to-be-signed hash. Raises
    :class:`FormatError` (bad input or combination) or :class:`ServiceError` (TSA/OCSP/CRL
    failure, naming the URL). Must not be called from a running event loop -- use
    :func:`async_sign_document` there.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise FormatError(
            "sign_document() was called inside an event loop; await async_sign_document()"
        )
    asyncio.run(
        async_sign_document(
            data,
            out,
            format=format,
            level=level,
            key=key,
            packaging=packaging,
            services=services,
            hash_algorithm=hash_algorithm,
            scheme=scheme,
            document_name=document_name,
            mime_type=mime_type,
            serialization=serialization,
            field_name=field_name,
            reason=reason,
            location=location,
            resume_digest=resume_digest,
        )
    )
