"""PAdES baseline signatures (B-B..B-LTA) with pyHanko, streaming from and to files."""

from __future__ import annotations

from contextlib import nullcontext
from typing import IO

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from signet.formats._io import CHUNK_SIZE, Source, open_source, rw_output
from signet.formats.cms_signer import RemoteCMSSigner
from signet.formats.errors import FormatError, ServiceError
from signet.formats.keys import RemoteKey
from signet.formats.levels import Level, parse_level
from signet.formats.services import (
    ServicesConfig,
    SignetFetcherBackend,
    build_validation_context,
    make_timestamper,
)


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
) -> None:
    """Sign a PDF as an incremental update written to ``out``.

    The input is read through a file object (a path is opened, never slurped); the output is
    written once and updated in place for the DSS and the document time-stamp, so memory
    stays flat whatever the PDF's size. pyHanko copies and hashes in 1 MiB steps (its default
    is 4 KiB). When ``out`` is ``source`` itself (a readable, writable, seekable stream), the
    update is appended to it and the document is not copied at all. ``key.sign_digest`` is
    called exactly once.
    """
    level = parse_level(level)
    services = services or ServicesConfig()
    signer = RemoteCMSSigner(key, hash_algorithm, key.resolve_scheme(scheme))
    timestamper = make_timestamper(services, level.value) if level.at_least(Level.B_T) else None
    backend = SignetFetcherBackend(services.revocation)
    validation_context = None
    if level.at_least(Level.B_LT):
        validation_context = build_validation_context(key, services, backend)
    in_place = out is source
    if in_place:
        out.seek(0)
    with (nullcontext(out) if in_place else open_source(source)) as pdf_in, \
            (nullcontext(out) if in_place else rw_output(out)) as pdf_out:
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
                embed_validation_info=validation_context is not None,
                validation_context=validation_context,
                use_pades_lta=level is Level.B_LTA,
                # key-usage policy belongs to the credential's issuer, not to the format layer
                signer_key_usage=set(),
            )
            pdf_signer = signers.PdfSigner(metadata, signer=signer, timestamper=timestamper)
            if in_place:
                await pdf_signer.async_sign_pdf(writer, in_place=True, chunk_size=CHUNK_SIZE)
                out.flush()
            else:
                await pdf_signer.async_sign_pdf(writer, output=pdf_out, chunk_size=CHUNK_SIZE)
        except ServiceError:
            raise
        except (PathValidationError, PathBuildingError) as exc:
            raise backend.service_error(exc) from exc
        except SigningError as exc:
            cause = exc.__cause__
            if isinstance(cause, ServiceError):
                raise cause from exc
            if isinstance(cause, PathValidationError | PathBuildingError) or backend.failures:
                raise backend.service_error(exc) from exc
            raise FormatError(f"PAdES signing failed: {exc}") from exc
        except PdfError as exc:
            raise FormatError(f"the input is not a PDF pyHanko can update: {exc}") from exc


def _free_field_name(writer: IncrementalPdfFileWriter) -> str:
    """``SignatureN`` not yet taken: pyHanko wants a name to create a new (invisible) field."""
    taken = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=None)}
    number = 1
    while f"Signature{number}" in taken:
        number += 1
    return f"Signature{number}"
