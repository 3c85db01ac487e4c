"""signDoc and timestamp: whole documents signed as PAdES/XAdES/CAdES/JAdES through the SAM.

The SAD was bound to the documents' digests; it is spent for them before any signing, and
formats then gets a sign callable that can make exactly one HSM signature per document.
Documents may arrive as files (spooled by the web layer) and every output is written to an
anonymous temporary file, so a large PDF is never held in memory whole."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from asn1crypto import x509 as asn1_x509
from sqlalchemy import select

from signet.algorithms import HASH_BY_OID, HASHES
from signet.auth.tokens import Principal
from signet.errors import (
    InvalidRequest,
    MethodNotImplemented,
    PayloadTooLarge,
    ServiceUnavailable,
)
from signet.events import Event, append_event, append_events
from signet.formats import (
    FormatError,
    Level,
    RemoteKey,
    RevocationConfig,
    ServiceError,
    ServicesConfig,
    TsaConfig,
    async_sign_cades,
    check_tsa,
    compute_document_digest,
    document_uri,
    normalise_format,
    parse_level,
    sign_document,
    timestamp_token,
)
from signet.sam import open_permit, refund, sad_binding
from signet.signing.context import Services
from signet.signing.csc import (
    resolve_algorithm,
    signing_credential,
)
from signet.signing.sign_hash import failed_event, refusals_recorded, spent_event
from signet.store import Certificate

# Outputs up to SMALL_OUTPUT bytes are held in memory, SMALL_OUTPUTS_KEPT bytes of them at the
# most per request; larger ones (and the rest) stay in their temporary files.
SMALL_OUTPUT = 256 * 1024
SMALL_OUTPUTS_KEPT = 32 * 1024 * 1024
# The signDoc parameter (a Signet extension) asking for only what signing appended.
APPENDED = "signet_appended"
# What a document's signature comes back as: the document itself, or a separate object.
DETACHED = {("cades", "detached"), ("xades", "detached"), ("jades", "detached")}
# The documents[] field (a Signet extension) naming the file a detached XAdES or JAdES
# signature references; a multipart/form-data document part's filename stands in for it.
DOCUMENT_NAME = "signet_document_name"
NAMED = {("xades", "detached"), ("jades", "detached")}


@dataclass(frozen=True)
class DocumentFile:
    """A document already in a seekable binary file (the caller keeps and closes it).

    ``give_up``, when set, hands the (readable and writable) file over for good: PAdES then
    appends the signature to it in place instead of copying the whole document to a new
    file, and the signed output owns it.

    ``hash_states``, by hash name, gives a copy of a hash object (``update``, ``digest``,
    ``copy``, as hashlib's) that has taken in exactly the file's ``size`` bytes, when the
    file was hashed while it was written: its digest then needs no second pass, nor does
    PAdES's signature in place."""

    stream: IO[bytes]
    size: int
    give_up: Callable[[], IO[bytes]] | None = None
    hash_states: Mapping[str, Callable[[], Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentJob:
    """One entry of documents[] or documentDigests[]."""

    format: str
    level: str
    packaging: str | None
    sign_algo: str
    sign_algo_params: str | None
    document: bytes | DocumentFile | None = None  # documents[]
    digest: bytes | None = None  # documentDigests[]: CAdES detached over the digest
    hash_oid: str | None = None
    document_name: str | None = None  # what a detached XAdES/JAdES signature references


@dataclass(frozen=True)
class SignedOutput:
    """A signed document or signature object in an anonymous temporary file (closing it
    deletes it), or in memory when it is small. ``unchanged``: how many of its first bytes
    are the document as it was sent (PAdES appends to the document and changes none of it):
    a client that has the document needs only the rest."""

    detached: bool
    file: IO[bytes]
    size: int
    unchanged: int = 0

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def _document_size(document: bytes | DocumentFile) -> int:
    return document.size if isinstance(document, DocumentFile) else len(document)


def _document_digest(document: bytes | DocumentFile, hash_name: str) -> bytes:
    if isinstance(document, DocumentFile):
        state = document.hash_states.get(hash_name)
        return (
            state().digest()
            if state is not None
            else compute_document_digest(document.stream, hash_name)
        )
    return compute_document_digest(document, hash_name)


def services_config(services: Services) -> ServicesConfig:
    settings = services.settings.formats
    tsa = None
    if settings.tsa_url:
        tsa = TsaConfig(
            url=settings.tsa_url,
            username=settings.tsa_username,
            password=_read(settings.tsa_password_file),
            timeout=settings.tsa_timeout_seconds,
            bearer_token=_read(settings.tsa_bearer_token_file),
            retries=settings.tsa_retries,
        )
    roots = [Path(path).read_bytes() for path in settings.trust_roots]
    return ServicesConfig(
        tsa=tsa,
        revocation=RevocationConfig(
            ocsp_timeout=settings.ocsp_timeout_seconds,
            crl_timeout=settings.crl_timeout_seconds,
            retries=settings.revocation_retries,
            grace=settings.revocation_grace_seconds,
        ),
        trust_roots=tuple(roots),
    )  # type: ignore[arg-type]


def _read(path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else None


def offered_levels(services: Services) -> list[str]:
    """Conformance levels really offered: B-T and up need a TSA."""
    if services.settings.formats.tsa_url:
        return ["Ades-B-B", "Ades-B-T", "Ades-B-LT", "Ades-B-LTA"]
    return ["Ades-B-B"]


def _check_job(job: DocumentJob, offered: list[str]) -> tuple[str, str, Level]:
    try:
        fmt, packaging = normalise_format(job.format, job.packaging)
        level = parse_level(job.level)
    except FormatError as exc:
        raise InvalidRequest(
            f"Invalid parameter signature_format, conformance_level or "
            f"signed_envelope_property: {exc}"
        ) from exc
    if f"Ades-{level.value}" not in offered:
        raise InvalidRequest(
            f"Invalid parameter conformance_level: {level.value} is not "
            f"offered here (offered: {', '.join(offered)})"
        )
    if job.digest is not None and (fmt, packaging) != ("cades", "detached"):
        raise InvalidRequest(
            "documentDigests can be signed as CAdES detached (signature_format "
            "C) only; send the documents themselves for PAdES, XAdES or JAdES"
        )
    if (fmt, packaging) in NAMED:
        if not job.document_name:
            raise InvalidRequest(
                f"Missing parameter {DOCUMENT_NAME}: a detached {fmt} "
                "signature references its document by file name; give it in "
                f"{DOCUMENT_NAME} (or as the multipart/form-data document "
                "part's filename)"
            )
        try:
            document_uri(job.document_name)
        except FormatError as exc:
            raise InvalidRequest(f"Invalid parameter {DOCUMENT_NAME}: {exc}") from exc
    return fmt, packaging, level


def _check_appendable(checked: list[tuple[str, str, Level]], jobs: list[DocumentJob]) -> None:
    for (fmt, packaging, _), job in zip(checked, jobs, strict=True):
        if job.document is not None and fmt != "pades" and (fmt, packaging) not in DETACHED:
            raise InvalidRequest(
                f"Invalid parameter {APPENDED}: only PAdES signs by appending "
                f"to the document, not {fmt} {packaging}"
            )


def sign_documents(
    services: Services,
    principal: Principal,
    *,
    credential_id: Any,
    sad: Any,
    jobs: list[DocumentJob],
    spool_dir: str | None = None,
    appended: bool = False,
) -> list[SignedOutput]:
    """Sign every job. The caller closes the outputs returned (temporary files in
    ``spool_dir``, default $TMPDIR, or small ones in memory); on an error, those already
    written are deleted. ``appended``: the caller will send back only what signing appended
    to each document (``SignedOutput.unchanged``), so every document must be PAdES (or signed
    detached); checked before anything is spent.

    PAdES and detached CAdES stream from the document's file; XAdES, JAdES and attached
    CAdES read the document into memory once (their libraries need it whole)."""
    if not isinstance(sad, str) or not sad:
        raise InvalidRequest("Missing (or invalid type) string parameter SAD")
    if not jobs:
        raise InvalidRequest("Missing parameter documents or documentDigests")
    limit = services.settings.formats.max_document_mb * 1024 * 1024
    offered = offered_levels(services)
    checked = [_check_job(job, offered) for job in jobs]
    if appended:
        _check_appendable(checked, jobs)
    with (
        refusals_recorded(services, principal, credential_id),
        services.database.transaction(read_only=True) as session,
    ):
        credential = signing_credential(
            session.connection(), services.hsm, principal, credential_id
        )
        algorithms = [
            resolve_algorithm(credential, job.sign_algo, job.hash_oid, job.sign_algo_params)
            for job in jobs
        ]
        certs = [
            asn1_x509.Certificate.load(der)
            for der in session.execute(
                select(Certificate.der)
                .where(Certificate.credential_id == credential.id)
                .order_by(Certificate.position)
            ).scalars()
        ]
        # The SAD is bound to the document digests, in the hash algorithm it was authorized
        # with: checked now, before any document is hashed.
        binding = sad_binding(services.hsm, sad, user_id=principal.user_id, credential=credential)
    for (hash_name, scheme, salt), _ in zip(algorithms, jobs, strict=True):
        if scheme == "pss" and salt != HASHES[hash_name].length:
            raise InvalidRequest(
                "Invalid parameter signAlgoParams: signDoc makes RSASSA-PSS "
                f"with a salt as long as the hash ({HASHES[hash_name].length})"
            )
    sad_oid = binding.hash_oid or HASHES["sha256"].oid
    doc_hash = HASH_BY_OID[sad_oid].name
    digests: list[bytes] = []
    for job in jobs:
        if job.document is not None:
            if _document_size(job.document) > limit:
                raise PayloadTooLarge(
                    f"document larger than {limit // 2**20} MiB (formats.max_document_mb)"
                )
            digests.append(_document_digest(job.document, doc_hash))
        else:
            assert job.digest is not None
            if job.hash_oid and job.hash_oid != sad_oid:
                raise InvalidRequest(
                    "The hash algorithm differs from the one the SAD was authorized for"
                )
            if len(job.digest) != HASHES[doc_hash].length:
                raise InvalidRequest(
                    f"Invalid documentDigests hash: {doc_hash} has {HASHES[doc_hash].length} bytes"
                )
            digests.append(job.digest)
    config = services_config(services)
    if config.tsa is not None and any(level.at_least(Level.B_T) for _, _, level in checked):
        # The time-stamp comes after the HSM signature: a TSA that is down would waste it.
        with refusals_recorded(services, principal, credential_id):
            try:
                check_tsa(config.tsa)
            except ServiceError as exc:
                raise ServiceUnavailable(
                    f"{exc}; nothing was signed and the SAD was not spent"
                ) from exc
    with (
        refusals_recorded(services, principal, credential_id),
        services.database.transaction() as session,
    ):
        credential = signing_credential(
            session.connection(), services.hsm, principal, credential_id
        )
        permit = open_permit(
            session.connection(),
            services.hsm,
            sad=sad,
            user_id=principal.user_id,
            credential=credential,
            hash_oid=sad_oid,
            digests=digests,
            exact=False,
        )
    records: list[Event] = []
    failure: str | None = None
    outputs: list[SignedOutput] = []
    files: list[IO[bytes]] = []
    kept = 0  # bytes of outputs held in memory
    try:
        for job, (fmt, packaging, level), (hash_name, scheme, _), digest in zip(
            jobs, checked, algorithms, digests, strict=True
        ):
            key = RemoteKey(certificate=certs[0], chain=tuple(certs[1:]), sign_digest=permit.sign)
            document = job.document
            # A PAdES document file given up is signed in place: one pass over it less.
            give_up = (
                document.give_up if fmt == "pades" and isinstance(document, DocumentFile) else None
            )
            # Another one less if the hash taken while it was spooled goes on into the signature's.
            resume = None
            if give_up is not None:
                assert isinstance(document, DocumentFile)
                state = document.hash_states.get(hash_name)
                resume = (state(), document.size) if state is not None else None
            out = give_up() if give_up is not None else tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 caller closes
            files.append(out)
            try:
                if job.digest is not None:
                    asyncio.run(
                        async_sign_cades(
                            b"",
                            out,
                            level=level,
                            key=key,
                            services=config,
                            hash_algorithm=hash_name,
                            scheme=scheme,
                            document_digest=digest,
                        )
                    )
                else:
                    assert document is not None
                    source: IO[bytes] | bytes = (
                        out
                        if give_up is not None
                        else (document.stream if isinstance(document, DocumentFile) else document)
                    )
                    sign_document(
                        source,
                        out,
                        format=fmt,
                        level=level,
                        key=key,
                        packaging=packaging,
                        services=config,
                        hash_algorithm=hash_name,
                        scheme=scheme,
                        resume_digest=resume,
                        document_name=job.document_name,
                    )
            except ServiceError as exc:
                raise ServiceUnavailable(f"{exc}") from exc
            except FormatError as exc:
                raise InvalidRequest(
                    f"The document cannot be signed as {fmt} {packaging}: {exc}"
                ) from exc
            out.flush()
            size = out.seek(0, io.SEEK_END)
            if give_up is None and size <= SMALL_OUTPUT and kept + size <= SMALL_OUTPUTS_KEPT:
                # A small output is kept in memory and its file closed at once: a bulk request
                # of a thousand documents then holds no thousand file descriptors.
                out.seek(0)
                data = out.read()
                out.close()
                out, kept = io.BytesIO(data), kept + size
            unchanged = _document_size(document) if fmt == "pades" and document is not None else 0
            outputs.append(
                SignedOutput(
                    (fmt, packaging) in DETACHED or job.digest is not None, out, size, unchanged
                )
            )
            records.append(
                Event(
                    "signature.created",
                    principal.username,
                    credential_id,
                    details={
                        "format": fmt,
                        "packaging": packaging,
                        "level": level.value,
                        "algorithm": job.sign_algo,
                        "document_digest": base64.b64encode(digest).decode(),
                        "hash_algorithm": sad_oid,
                    },
                )
            )
    except BaseException as exc:
        failure = str(exc) or exc.__class__.__name__
        for file in files:
            file.close()
        raise
    finally:
        # The trail is written once: the spend, each signature made, and a failure if any,
        # with whatever the permit did not sign given back to the SAD.
        with services.database.transaction() as session:
            refunded = refund(session.connection(), permit)
            trail = [spent_event(principal, credential_id, permit.used), *records]
            if refunded:
                trail.append(
                    Event(
                        "sad.refunded",
                        principal.username,
                        credential_id,
                        details={"count": refunded},
                    )
                )
            if failure is not None:
                trail.append(failed_event(principal, credential_id, failure))
            append_events(session, trail)
    return outputs


def timestamp(
    services: Services, principal: Principal, *, hash_b64: Any, hash_oid: Any, nonce: Any
) -> bytes:
    """An RFC 3161 token from the configured TSA over the client's hash."""
    if not isinstance(hash_b64, str) or not hash_b64:
        raise InvalidRequest("Missing (or invalid type) string parameter hash")
    if not isinstance(hash_oid, str) or not hash_oid:
        raise InvalidRequest("Missing (or invalid type) string parameter hashAlgorithmOID")
    if hash_oid not in HASH_BY_OID:
        offered = ", ".join(f"{oid} ({known.name})" for oid, known in HASH_BY_OID.items())
        raise InvalidRequest(
            f"Invalid parameter hashAlgorithmOID: {hash_oid[:60]} is not offered; use {offered}"
        )
    try:
        digest = base64.b64decode(hash_b64, validate=True)
    except ValueError:
        raise InvalidRequest("Invalid parameter hash: not base64") from None
    value = None
    if nonce is not None:
        try:
            value = int(str(nonce), 16)
        except ValueError:
            raise InvalidRequest("Invalid parameter nonce: expected a hexadecimal number") from None
    config = services_config(services).tsa
    if config is None:
        raise MethodNotImplemented("No time-stamping service is configured here (formats.tsa_url)")
    try:
        token = timestamp_token(config, digest, HASH_BY_OID[hash_oid].name, value)
    except ServiceError as exc:
        raise ServiceUnavailable(str(exc)) from exc
    except FormatError as exc:
        raise InvalidRequest(f"Invalid parameter hash: {exc}") from exc
    with services.database.transaction() as session:
        append_event(
            session,
            "timestamp.issued",
            actor=principal.username,
            subject=principal.username,
            hash=hash_b64,
            hash_algorithm=hash_oid,
            digest=hashlib.sha256(token).hexdigest(),
        )
    return token
