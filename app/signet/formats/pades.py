"""PAdES baseline signatures (B-B..B-LTA) with pyHanko, streaming from and to files.

A document signed in place may come with ``resume_digest``: a hash state that has already
taken in its first bytes (the web layer hashes an upload while spooling it). pyHanko only
appends in place, so the signature's /ByteRange digest starts with exactly those bytes, and
hashing them a second time (SHA-256: about 0.05 s per 100 MB, on the request's critical
path) is avoidable. pyHanko has no hook for it; this module relies on pyhanko 0.38 internals:

* ``PdfByteRangeDigest.fill`` (``pyhanko.sign.signers.pdf_byterange``) makes its digest with
  ``hashes.Hash(spec)`` through that module's global ``hashes`` (cryptography's module), feeds
  the ranges to ``update`` in file order from offset 0, then calls ``finalize``;
* ``IncrementalPdfFileWriter.write_in_place`` appends after the end of the stream;
* the signature's fill is the first byte-range digest of a signing (a B-LTA document
  time-stamp's comes after it, over a file that has grown).

That global is replaced, once, by a stand-in whose ``Hash`` is cryptography's own unless a
signing armed a state in ``_resume`` (a ContextVar, so per thread and per task: gunicorn's
threads sign concurrently). The first ``Hash`` made while armed disarms it, and resumes only
for the same algorithm; every later digest (the document time-stamp's) is computed in full.
tests/unit/test_pades_resumed_digest.py fails when pyHanko stops going through the global.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import IO, Any, Protocol

from cryptography.hazmat.primitives import hashes
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import pdf_byterange
from pyhanko.sign.validation.dss import DocumentSecurityStore

from signet.formats._io import CHUNK_SIZE, Source, open_source, rw_output
from signet.formats.cms_signer import RemoteCMSSigner
from signet.formats.errors import FormatError, ServiceError
from signet.formats.keys import RemoteKey
from signet.formats.levels import Level, parse_level
from signet.formats.services import (
    ServicesConfig,
    SignetTimeStamper,
    ValidationDataCollector,
    make_timestamper,
)


class HashState(Protocol):
    """What is used of a hashlib object."""

    @property
    def name(self) -> str: ...

    def update(self, data: Any, /) -> None: ...

    def digest(self) -> bytes: ...

    def copy(self) -> HashState: ...


# A hash state and the number of leading bytes of the document it has taken in.
ResumeDigest = tuple[HashState, int]

# A one-element list while a state is armed: popping it disarms every copy of the context
# (pyHanko's tasks run in copies of it).
_resume: ContextVar[list[ResumeDigest] | None] = ContextVar("signet_pades_resume", default=None)


class _ResumedHash:
    """cryptography's ``Hash`` as pyHanko uses it, over a state that already holds the first
    ``skip`` bytes it is going to be fed."""

    def __init__(self, algorithm: hashes.HashAlgorithm, state: HashState, skip: int) -> None:
        self.algorithm = algorithm
        self._state = state
        self._skip = skip

    def update(self, data: Any) -> None:
        if self._skip:
            view = memoryview(data).cast("B")
            taken = min(self._skip, len(view))
            self._skip -= taken
            data = view[taken:]
        self._state.update(data)

    def finalize(self) -> bytes:
        if self._skip:  # the state holds bytes that the range does not: its digest is wrong
            raise RuntimeError("pyHanko hashed less than the resumed document prefix")
        return self._state.digest()

    def copy(self) -> _ResumedHash:
        return _ResumedHash(self.algorithm, self._state.copy(), self._skip)


class _Hashes:
    """Stands in for cryptography's ``hashes`` module inside pyHanko's pdf_byterange."""

    def __getattr__(self, name: str) -> Any:
        return getattr(hashes, name)

    @staticmethod
    def Hash(algorithm: hashes.HashAlgorithm, backend: Any = None) -> Any:
        armed = _resume.get()
        if armed:
            state, skip = armed.pop()
            if state.name == algorithm.name:
                return _ResumedHash(algorithm, state, skip)
        return hashes.Hash(algorithm, backend)


if getattr(pdf_byterange, "hashes", None) is hashes:
    pdf_byterange.hashes = _Hashes()  # type: ignore[assignment]


@contextmanager
def _resuming(resume: ResumeDigest | None) -> Iterator[None]:
    """Arm ``resume`` for the first byte-range digest made inside; nothing outside sees it."""
    token = _resume.set([resume] if resume is not None else None)
    try:
        yield
    finally:
        _resume.reset(token)


# pyHanko sizes the signature's /Contents by building a whole dummy CMS first and, from B-T
# on, by asking the TSA for a dummy token: a third of the CPU of signing a small PDF, and one
# more TSA round trip. The CMS signed last for the same certificates, hash, scheme, level and
# TSA tells the size instead; it is reserved with pyHanko's own margin (half again) plus
# 2 KiB, which a time-stamp token a little larger than the last one fits in.
_RESERVES: OrderedDict[tuple[Any, ...], int] = OrderedDict()
_RESERVES_LOCK = threading.Lock()
_RESERVES_KEPT = 256


def _reserve_key(
    key: RemoteKey, signer: RemoteCMSSigner, level: Level, services: ServicesConfig
) -> tuple[Any, ...]:
    return (
        key.certificate.sha256,
        tuple(c.sha256 for c in key.chain),
        signer.hash_name,
        signer.scheme,
        level,
        services.tsa.url if services.tsa else None,
    )


def _reserved(reserve_key: tuple[Any, ...]) -> int | None:
    """Hex digits to reserve for the CMS (what pyHanko calls bytes_reserved), if known."""
    with _RESERVES_LOCK:
        size = _RESERVES.get(reserve_key)
        if size is not None:
            _RESERVES.move_to_end(reserve_key)
    return None if size is None else 2 * (size + size // 2) + 4096


def _remember(reserve_key: tuple[Any, ...], size: int) -> None:
    with _RESERVES_LOCK:
        _RESERVES[reserve_key] = size
        _RESERVES.move_to_end(reserve_key)
        while len(_RESERVES) > _RESERVES_KEPT:
            _RESERVES.popitem(last=False)


async def async_sign_pades(
    source: Source,
    out: IO[bytes],
    *,
    level: str | Level,
    key: RemoteKey,
    services: ServicesConfig | None = None,
    hash_algorithm: str = "sha256",
    scheme: str | None = None,
    field_name: str | None = None,
    reason: str | None = None,
    location: str | None = None,
    contact_info: str | None = None,
    resume_digest: ResumeDigest | None = None,
) -> None:
    """Sign a PDF as an incremental update written to ``out``.

    The input is read through a file object (a path is opened, never slurped); the output is
    written once and updated in place for the DSS and the document time-stamp, so memory
    stays flat whatever the PDF's size. pyHanko copies and hashes in 1 MiB steps (its default
    is 4 KiB). When ``out`` is ``source`` itself (a readable, writable, seekable stream), the
    update is appended to it and the document is not copied at all; there ``resume_digest``,
    if given, spares hashing again the leading bytes its state holds (see the module's
    docstring; it is ignored elsewhere). ``key.sign_digest`` is called exactly once.
    """
    level = parse_level(level)
    services = services or ServicesConfig()
    signer = RemoteCMSSigner(key, hash_algorithm, key.resolve_scheme(scheme))
    timestamper = make_timestamper(services, level.value) if level.at_least(Level.B_T) else None
    collector = None
    if level.at_least(Level.B_LT):
        # Before the signature, so that a revocation source that is down costs none.
        collector = await ValidationDataCollector.before_signing(key, services, timestamper)
    in_place = out is source
    if in_place:
        if resume_digest is not None and resume_digest[1] > out.seek(0, io.SEEK_END):
            resume_digest = None
        out.seek(0)
    with (
        nullcontext(out) if in_place else open_source(source) as pdf_in,
        nullcontext(out) if in_place else rw_output(out) as pdf_out,
    ):
        try:
            writer = IncrementalPdfFileWriter(pdf_in, strict=False)
            writer.IO_CHUNK_SIZE = CHUNK_SIZE
            metadata = signers.PdfSignatureMetadata(
                field_name=field_name or _free_field_name(writer),
                md_algorithm=hash_algorithm,
                subfilter=fields.SigSeedSubFilter.PADES,
                reason=reason,
                location=location,
                contact_info=contact_info,
                # B-LT's DSS and B-LTA's document time-stamp are added below, after the
                # revocation data is fetched again past the signature time-stamp.
                embed_validation_info=False,
                # key-usage policy belongs to the credential's issuer, not to the format layer
                signer_key_usage=set(),
            )
            pdf_signer = signers.PdfSigner(metadata, signer=signer, timestamper=timestamper)
            reserve_key = _reserve_key(key, signer, level, services)
            reserved = _reserved(reserve_key)
            if in_place:
                with _resuming(resume_digest):
                    await pdf_signer.async_sign_pdf(
                        writer, in_place=True, chunk_size=CHUNK_SIZE, bytes_reserved=reserved
                    )
                out.flush()
            else:
                await pdf_signer.async_sign_pdf(
                    writer, output=pdf_out, chunk_size=CHUNK_SIZE, bytes_reserved=reserved
                )
            if signer.signed_size is not None:
                _remember(reserve_key, signer.signed_size)
            if collector is not None:
                assert isinstance(timestamper, SignetTimeStamper)
                await _add_long_term_data(pdf_out, collector, timestamper, level, hash_algorithm)
        except ServiceError:
            raise
        except SigningError as exc:
            cause = exc.__cause__
            if isinstance(cause, ServiceError):
                raise cause from exc
            raise FormatError(f"PAdES signing failed: {exc}") from exc
        except PdfError as exc:
            raise FormatError(f"the input is not a PDF pyHanko can update: {exc}") from exc


async def _add_long_term_data(
    pdf: IO[bytes],
    collector: ValidationDataCollector,
    timestamper: SignetTimeStamper,
    level: Level,
    hash_algorithm: str,
) -> None:
    """B-LT: a DSS revision with the validation data fetched after the signature
    time-stamp (the last token the TSA gave); B-LTA: then a document time-stamp over it."""
    assert timestamper.last_token is not None
    data = await collector.result_after(timestamper.last_token)
    DocumentSecurityStore.add_dss(
        pdf,
        None,
        certs=data.certificates,
        ocsps=data.ocsp_responses,
        crls=data.crls,
        force_write=True,
        strict=False,
    )
    if level is Level.B_LTA:
        writer = IncrementalPdfFileWriter(pdf, strict=False)
        writer.IO_CHUNK_SIZE = CHUNK_SIZE
        await signers.PdfTimeStamper(timestamper).async_timestamp_pdf(
            writer, hash_algorithm, in_place=True, chunk_size=CHUNK_SIZE
        )


def _free_field_name(writer: IncrementalPdfFileWriter) -> str:
    """``SignatureN`` not yet taken: pyHanko wants a name to create a new (invisible) field."""
    taken = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=None)}
    number = 1
    while f"Signature{number}" in taken:
        number += 1
    return f"Signature{number}"
