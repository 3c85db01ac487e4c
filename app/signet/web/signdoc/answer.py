"""The signDoc answer: JSON with base64, multipart/mixed, or one output's bytes alone, as the
Accept header asks, streamed from the output files and deleting them when it is sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pybase64
from flask import Response, request
from werkzeug.wsgi import ClosingIterator, wrap_file

from signet.errors import NotAcceptable
from signet.signing import sign_doc
from signet.web.signdoc import multipart, spool

OCTETS = "application/octet-stream"
B64_CHUNK = 3 * 256 * 1024  # signDoc answers are base64-encoded this many bytes at a time
# The header that says an answer holds only what signing appended to the document, and after
# how many bytes of it (Signet extension, with the signDoc parameter signet_appended).
APPENDED_TO = "Signet-Appended-To"


def answer_type(jobs: list[sign_doc.DocumentJob], appended: bool) -> str:
    """What the signDoc answer will be, from the Accept header: JSON with base64 (the
    default), multipart/mixed, or (one document only) the output's bytes alone. Decided before
    anything is signed, so that a request that cannot be answered spends no SAD."""
    wanted = request.accept_mimetypes.best_match(["application/json", multipart.MIXED, OCTETS])
    if wanted == OCTETS and len(jobs) > 1:
        raise NotAcceptable(
            f"Accept: {OCTETS} answers one document a request, not "
            f"{len(jobs)}: accept {multipart.MIXED} for several"
        )
    if appended and wanted not in (OCTETS, multipart.MIXED):
        raise NotAcceptable(
            f"{sign_doc.APPENDED} answers raw bytes, each output with a "
            f"{APPENDED_TO} header: accept {OCTETS} or {multipart.MIXED}"
        )
    return wanted or "application/json"


@dataclass(frozen=True)
class _Sent:
    """The part of an output that is sent: ``size`` bytes from ``start``."""

    headers: dict[str, str]
    file: IO[bytes]
    start: int
    size: int


def _sent(output: sign_doc.SignedOutput, appended: bool) -> _Sent:
    kind = "SignatureObject" if output.detached else "DocumentWithSignature"
    headers = {"Content-Disposition": f'attachment; name="{kind}"'}
    start = output.unchanged if appended else 0
    if start:
        headers[APPENDED_TO] = str(start)
    return _Sent(headers, output.file, start, output.size - start)


def _closing(body: Iterator[bytes], outputs: list[sign_doc.SignedOutput]) -> ClosingIterator:
    """`body`, closing the outputs (which deletes their files) when the server closes it.
    The server closes the iterable it was given; with direct_passthrough that is this one, not
    the Response, so Response.call_on_close callbacks would never run."""

    def close() -> None:
        for output in outputs:
            output.close()

    return ClosingIterator(body, close)


def answer(outputs: list[sign_doc.SignedOutput], answer_type: str, appended: bool) -> Response:
    """The answer of the type `answer_type` chose; it closes the outputs when it is sent."""
    if answer_type == OCTETS:
        (sent,) = (_sent(output, appended) for output in outputs)
        sent.file.seek(sent.start)
        # A file wrapper lets gunicorn send the file with sendfile(2), not through Python,
        # from where the file stands; closing it (when the answer is sent) deletes the
        # temporary file.
        response = Response(
            wrap_file(request.environ, sent.file, spool.READ_SIZE),
            mimetype=OCTETS,
            direct_passthrough=True,
        )
        response.headers.update(sent.headers)
        response.content_length = sent.size
        return response
    if answer_type != multipart.MIXED:
        return _streamed(outputs)
    parts = [
        _sent(output, appended)
        for detached in (False, True)
        for output in outputs
        if output.detached is detached
    ]
    for part in parts:
        part.headers["Content-Type"] = OCTETS
    mimetype, length, body = multipart.mixed(parts, read_size=spool.READ_SIZE)
    response = Response(_closing(body, outputs), direct_passthrough=True)
    response.headers["Content-Type"] = mimetype
    response.content_length = length
    return response


def _streamed(outputs: list[sign_doc.SignedOutput]) -> Response:
    """The signDoc answer, base64-encoded from the output files as it is sent; the files are
    deleted when the response closes. Bytes as jsonify would write them."""
    parts: list[bytes | sign_doc.SignedOutput] = [b"{"]
    for name, detached in (("DocumentWithSignature", False), ("SignatureObject", True)):
        group = [o for o in outputs if o.detached is detached]
        if not group:
            continue
        if len(parts) > 1:
            parts.append(b",")
        parts.append(f'"{name}":['.encode())
        for index, output in enumerate(group):
            parts.extend([b',"' if index else b'"', output, b'"'])
        parts.append(b"]")
    parts.append(b"}\n")
    length = sum(len(p) if isinstance(p, bytes) else -(-p.size // 3) * 4 for p in parts)

    def generate() -> Iterator[bytes]:
        for part in parts:
            if isinstance(part, bytes):
                yield part
                continue
            part.file.seek(0)
            while chunk := part.file.read(B64_CHUNK):
                yield pybase64.b64encode(chunk)  # SIMD: about twice binascii's speed

    response = Response(
        _closing(generate(), outputs), mimetype="application/json", direct_passthrough=True
    )
    response.content_length = length
    return response
