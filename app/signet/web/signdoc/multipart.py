"""signDoc without base64: documents as raw parts of a multipart/form-data request, signed
outputs as raw parts of a multipart/mixed answer.

A request has one part named ``request``, signDoc's JSON, whose ``documents`` entries leave
``document`` out; the parts named ``document`` are those entries' bytes, in order (a part's
filename names the document a detached XAdES or JAdES signature references). The request
part may come first, last or anywhere between: last, it lets a client hash its documents while
it sends them and authorize (which needs their hashes) before it sends the SAD. Document parts
are written to temporary files as they arrive and hashed on the way, exactly as long base64
strings are (:class:`signet.web.signdoc.spool.SpooledString`), so the rest of signDoc cannot
tell the two transports apart.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.http import parse_options_header

from signet.errors import InvalidRequest, PayloadTooLarge
from signet.signing.sign_doc import DOCUMENT_NAME
from signet.web.jsonbody import parse_json
from signet.web.signdoc.spool import (
    JSON_SLACK,
    MAX_SPOOLED,
    SpooledJson,
    SpooledString,
    too_many_documents,
)

FORM = "multipart/form-data"
MIXED = "multipart/mixed"
_HEADERS_LIMIT = 16 * 1024
# RFC 2046 section 5.1.1: 1 to 70 characters, no trailing space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def form_boundary(content_type: str | None) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type; None for any other type."""
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != FORM:
        return None
    boundary = options.get("boundary", "")
    if not _BOUNDARY.fullmatch(boundary):
        raise InvalidRequest("Invalid multipart/form-data boundary (1 to 70 characters, RFC 2046)")
    return boundary.encode("ascii")


def _malformed(what: str) -> InvalidRequest:
    return InvalidRequest(f"Malformed multipart/form-data body: {what}")


class _Parts:
    """Reads a multipart body from chunks: what lies before each delimiter goes to a sink."""

    def __init__(self, chunks: Iterable[bytes], boundary: bytes) -> None:
        self._chunks = iter(chunks)
        self._delimiter = b"\r\n--" + boundary
        self._data = b"\r\n"  # the first delimiter has no line break of its own before it

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._data = self._data + chunk if self._data else chunk
        return True

    def until_delimiter(self, sink: Callable[[memoryview], None] | None) -> None:
        """Everything up to the next delimiter, which is consumed. The data is kept as
        immutable bytes so that the sink may hand views of it to a hashing thread, and a
        chunk is not copied unless a delimiter starts before it."""
        keep = len(self._delimiter) - 1  # a delimiter may straddle two chunks
        while (found := self._data.find(self._delimiter)) < 0:
            if len(self._data) > keep:
                if sink is not None:
                    sink(memoryview(self._data)[:-keep])
                self._data = self._data[-keep:]
            chunk = next(self._chunks, None)
            if chunk is None:
                raise _malformed("it ends before the closing boundary")
            # A delimiter that starts in the kept bytes ends within the chunk's first `keep`
            # (if the chunk has that many).
            if len(chunk) <= keep or (self._data + chunk[:keep]).find(self._delimiter) >= 0:
                self._data += chunk
            else:
                if sink is not None and self._data:
                    sink(memoryview(self._data))
                self._data = chunk
        if sink is not None and found:
            sink(memoryview(self._data)[:found])
        self._data = self._data[found + len(self._delimiter) :]

    def next_part(self) -> dict[str, str] | None:
        """After a delimiter: a part's headers (lower-case names), or None after the last."""
        while len(self._data) < 2:
            if not self._more():
                raise _malformed("it ends after a boundary")
        if self._data.startswith(b"--"):
            return None
        while (end := self._data.find(b"\r\n\r\n")) < 0:
            if len(self._data) > _HEADERS_LIMIT or not self._more():
                raise _malformed("a part's headers do not end")
        first, *lines = self._data[:end].decode("latin-1").split("\r\n")
        if first.strip(" \t"):  # only transport padding may follow a boundary
            raise _malformed("text after a boundary")
        self._data = self._data[end + 4 :]
        headers = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise _malformed(f"a part header without a colon: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return headers


def read_form(
    chunks: Iterable[bytes], boundary: bytes, *, max_document: int, directory: str | None = None
) -> SpooledJson:
    """Parse a multipart signDoc request into the same shape the JSON transport gives.

    Raises InvalidRequest: 400 for a malformed body or misnamed parts, 413 for a document over
    ``max_document`` bytes or a request part over 1 MiB."""
    parts = _Parts(chunks, boundary)
    strings: dict[str, SpooledString] = {}
    nonce = secrets.token_hex(16)
    request = bytearray()

    def take_request(data: memoryview) -> None:
        request.extend(data)
        if len(request) > JSON_SLACK:
            raise PayloadTooLarge(
                f"The request part is larger than {JSON_SLACK // 2**20} MiB: "
                "send fewer documents per request"
            )

    filenames: dict[str, str | None] = {}
    seen_request = False
    try:
        parts.until_delimiter(None)  # the preamble
        while (headers := parts.next_part()) is not None:
            disposition, options = parse_options_header(headers.get("content-disposition", ""))
            name = options.get("name") if disposition == "form-data" else None
            if name == "request":
                if seen_request:
                    raise InvalidRequest(
                        "More than one part named request in a multipart/form-data signDoc"
                    )
                seen_request = True
                parts.until_delimiter(take_request)
            elif name == "document":
                if len(strings) >= MAX_SPOOLED:
                    raise too_many_documents()
                spooled = SpooledString(max_document, directory)
                marker = f"\0signet-part-{nonce}-{len(strings)}"
                strings[marker] = spooled
                filenames[marker] = _filename(options)
                parts.until_delimiter(spooled.write)
                spooled.finish()
            else:
                raise InvalidRequest(
                    f"Unexpected part {name!r}: a multipart/form-data signDoc "
                    "has form-data parts named request and document only"
                )
        if not seen_request:
            raise InvalidRequest(
                "A multipart/form-data signDoc needs a form-data part named request: signDoc's JSON"
            )
        value = _request_json(bytes(request))
        _place(value, filenames)
    except BaseException:
        for spooled in strings.values():
            spooled.close()
        raise
    return SpooledJson(value, strings)


def _request_json(text: bytes) -> dict[str, Any]:
    value = parse_json(text, what="The request part")
    if not isinstance(value, dict):
        raise InvalidRequest("The request part must be a JSON object")
    return value


def _filename(options: dict[str, str]) -> str | None:
    """A part's filename. Headers are read as latin-1, but clients send a name's UTF-8 bytes
    as they are (RFC 7578 section 4.2): decoded again, when they are UTF-8."""
    name = options.get("filename")
    if not name:
        return None
    try:
        return name.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not UTF-8, or already decoded from filename*= (RFC 2231)
        return name


def _place(value: dict[str, Any], filenames: dict[str, str | None]) -> None:
    """Put the document parts, in order, where the documents entries' ``document`` goes;
    a part's filename names its document for a detached signature, unless the entry's
    signet_document_name does."""
    markers = list(filenames)
    entries = value.get("documents")
    if entries is None and not markers:
        return
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidRequest(
            "Invalid parameter documents: an array of objects, one for each document part"
        )
    if any("document" in entry for entry in entries):
        raise InvalidRequest(
            "Invalid parameter document: in a multipart/form-data request "
            "each document is a part named document, not a JSON string"
        )
    if len(entries) != len(markers):
        raise InvalidRequest(
            f"Invalid parameter documents: {len(entries)} entries for {len(markers)} document parts"
        )
    for entry, marker in zip(entries, markers, strict=True):
        entry["document"] = marker
        if filenames[marker] is not None:
            entry.setdefault(DOCUMENT_NAME, filenames[marker])


def mixed(parts: list[Any], *, read_size: int) -> tuple[str, int, Iterator[bytes]]:
    """A multipart/mixed body of parts (each with ``headers``, and ``size`` bytes of ``file``
    from ``start``): its Content-Type, its length and its bytes, each part read from its file
    as it is sent. The boundary is 128 random bits, which no signed output is going to
    contain."""
    boundary = f"signet-{secrets.token_hex(16)}"
    heads = []
    for index, part in enumerate(parts):
        lines = [
            f"--{boundary}",
            *(f"{k}: {v}" for k, v in part.headers.items()),
            f"Content-Length: {part.size}",
            "",
            "",
        ]
        heads.append(("\r\n" if index else "").encode() + "\r\n".join(lines).encode("latin-1"))
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = sum(map(len, heads)) + sum(part.size for part in parts) + len(tail)

    def generate() -> Iterator[bytes]:
        for head, part in zip(heads, parts, strict=True):
            yield head
            part.file.seek(part.start)
            left = part.size
            while left and (chunk := part.file.read(min(read_size, left))):
                left -= len(chunk)
                yield chunk
        yield tail

    return f'{MIXED}; boundary="{boundary}"', length, generate()
