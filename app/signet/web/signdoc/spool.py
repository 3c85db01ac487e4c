"""signDoc request bodies read as a stream: long JSON strings are base64-decoded to disk.

The JSON around them (the skeleton) stays in memory; each string longer than
``SPOOL_THRESHOLD`` is decoded, while it arrives, into an anonymous temporary file (hashed with
SHA-256 on the way) and replaced in the skeleton by a marker that names it. Inside such a string
only base64 and the ``\\/`` escape are accepted; anything else makes it "not base64" and the rest
of it is only scanned for its end. Strings up to the threshold reach ``json.loads`` untouched, so
small bodies parse exactly as ``request.get_json`` would parse them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import IO, Any

import pybase64
from werkzeug.wsgi import get_content_length, get_input_stream

from signet.errors import InvalidRequest, PayloadTooLarge
from signet.web.jsonbody import check_complete, parse_json

READ_SIZE = 1024 * 1024
SPOOL_THRESHOLD = 64 * 1024
SKELETON_LIMIT = 16 * 1024 * 1024
MAX_SPOOLED = 100  # documents on disk per request: each holds a file descriptor until the end
_HASH_ASIDE = 64 * 1024  # pieces this large are hashed on a hashing thread
JSON_SLACK = 1024 * 1024  # room for the JSON around one maximal document
NOT_JSON = "The request body is not JSON: it ends inside a string"

# A JSON string's content up to its closing quote (or the end of the data); escapes are skipped
# whole, so the match stops at a quote only if it is unescaped.
_STRING_CONTENT = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)


def body_limit(max_document: int) -> int:
    """The largest signDoc body: one maximal document in base64, plus the JSON around it."""
    return -(-max_document // 3) * 4 + JSON_SLACK


def too_many_documents() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"More than {MAX_SPOOLED} documents over "
        f"{SPOOL_THRESHOLD // 1024} KiB in one request: send fewer documents "
        "per request"
    )


def _too_large_document(max_document: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"document larger than {max_document // 2**20} MiB (formats.max_document_mb)"
    )


_hashers: tuple[int, ThreadPoolExecutor] | None = None
_hashers_lock = threading.Lock()


def _hasher_pool() -> ThreadPoolExecutor:
    """Threads that hash spooled documents while the request thread goes on reading, decoding
    and writing the next piece (hashlib lets go of the GIL on large updates). Made on first
    use in each process: threads do not survive gunicorn's fork."""
    global _hashers
    with _hashers_lock:
        if _hashers is None or _hashers[0] != os.getpid():
            _hashers = (
                os.getpid(),
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="signet-hash"),
            )
        return _hashers[1]


class SpooledString:
    """One long JSON string, base64-decoded into an anonymous temporary file as it arrives,
    and hashed beside (one piece at a time on a hashing thread, so in order)."""

    def __init__(self, max_bytes: int, directory: str | None) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 close()
        self.size = 0
        self.valid = True  # base64 so far
        self._hash = hashlib.sha256()
        self._hashing: Future[None] | None = None  # the piece being hashed
        self._max = max_bytes
        self._carry = b""  # undecoded: the last whole quad (see finish) and a partial one
        self._padding = 0
        self._given_up = False

    def hash_state(self) -> Any:
        """A copy of the SHA-256 object that has taken in exactly the bytes written so far
        (the whole document once finished): a signer may go on hashing what it appends."""
        self._hashed()
        return self._hash.copy()

    def _hashed(self) -> None:
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    def feed(self, text: bytes) -> None:
        """Unescaped content of the string, in order."""
        if not self.valid or not text:
            return
        if self._padding:  # only more '=' may follow padding
            if text.count(b"=") != len(text):
                self.invalidate()
            self._padding += len(text)
            return
        equals = text.find(b"=")
        if equals >= 0:
            if text.count(b"=", equals) != len(text) - equals:
                self.invalidate()
                return
            self._padding = len(text) - equals
            text = text[:equals]
        data = self._carry + text if self._carry else text
        # Hold the last whole quad back so that finish() decodes it together with any
        # padding: base64.b64decode then judges the end exactly as it judges a whole string.
        keep = len(data) % 4 + 4 if len(data) >= 4 else len(data)
        cut = len(data) - keep
        if cut:
            try:
                # Whole quads without '=': pybase64 (SIMD) refuses exactly what
                # binascii.a2b_base64(strict_mode=True) refuses, four to eight times faster.
                self._write(pybase64.b64decode(memoryview(data)[:cut], validate=True))
            except binascii.Error:
                self.invalidate()
                return
        self._carry = data[cut:]

    def write(self, data: bytes | memoryview) -> None:
        """Raw bytes, not base64 (a multipart part). Kept as given until hashed: pass
        immutable data."""
        self._write(data)

    def finish(self) -> None:
        if self.valid:
            tail = self._carry + b"=" * min(self._padding, 8)
            # Not pybase64 for these few bytes: it refuses '=' after a whole quad ("QUJD="),
            # which base64.b64decode(validate=True) accepts.
            try:
                self._write(base64.b64decode(tail, validate=True))
            except binascii.Error:
                self.invalidate()
                return
            self.file.flush()

    def invalidate(self) -> None:
        """Not base64: nothing of it will be used, so give its disk space back at once."""
        self.valid = False
        self.file.truncate(0)

    def give_up(self) -> IO[bytes]:
        """Hand the file over (it is readable and writable): close() leaves it open."""
        self._given_up = True
        return self.file

    def close(self) -> None:
        self._hashed()
        if not self._given_up:
            self.file.close()

    def _write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self._max:
            raise _too_large_document(self._max)
        self._hashed()
        if len(data) >= _HASH_ASIDE:
            self._hashing = _hasher_pool().submit(self._hash.update, data)
        else:
            self._hash.update(data)
        self.file.write(data)


class _Scanner:
    """Copies JSON text to the skeleton, diverting strings longer than the threshold."""

    def __init__(
        self, *, max_document: int, threshold: int, skeleton_limit: int, directory: str | None
    ) -> None:
        self.skeleton = bytearray()
        self.strings: dict[str, SpooledString] = {}
        self._max_document, self._threshold = max_document, threshold
        self._skeleton_limit, self._directory = skeleton_limit, directory
        self._nonce = secrets.token_hex(16)
        self._in_string = False
        self._buffer = bytearray()  # a string's raw content while it is short
        self._spool: SpooledString | None = None
        self._escaped = False  # the last chunk ended in a lone backslash (raw scanning)
        self._pending = b""  # the same, held back for decoding (spooling)

    def feed(self, chunk: bytes) -> None:
        pos, size = 0, len(chunk)
        while pos < size:
            if not self._in_string:
                quote = chunk.find(b'"', pos)
                self._skeleton(chunk[pos:] if quote < 0 else chunk[pos:quote])
                if quote < 0:
                    return
                self._in_string, pos = True, quote + 1
            elif self._spool is None:
                pos = self._short(chunk, pos)
            else:
                pos = self._long(chunk, pos)

    def finish(self) -> bytes:
        if self._in_string:
            raise InvalidRequest(NOT_JSON)  # the body ended inside a string
        return bytes(self.skeleton)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
        for spooled in self.strings.values():
            spooled.close()

    def _skeleton(self, text: bytes | bytearray) -> None:
        self.skeleton += text
        if len(self.skeleton) > self._skeleton_limit:
            raise PayloadTooLarge(
                f"More than {self._skeleton_limit // 2**20} MiB of JSON besides the documents "
                f"(strings over {self._threshold // 1024} KiB): send fewer documents per "
                "request"
            )

    def _raw_end(self, data: bytes, pos: int) -> tuple[int, bool]:
        """Where the string's content ends in data[pos:]: (index of the closing quote, True),
        or (len(data), False) when it goes on in the next chunk."""
        if self._escaped:
            if pos >= len(data):
                return pos, False
            pos, self._escaped = pos + 1, False
        end = _STRING_CONTENT.match(data, pos).end()  # type: ignore[union-attr]
        if end == len(data):
            return end, False
        if data[end] == 0x22:
            return end, True
        self._escaped = True  # a backslash as the last byte: it escapes the next chunk's first
        return len(data), False

    def _short(self, chunk: bytes, pos: int) -> int:
        end, closed = self._raw_end(chunk, pos)
        self._buffer += chunk[pos:end]
        if len(self._buffer) > self._threshold:
            self._start_spool()
        if not closed:
            return len(chunk)
        if self._spool is not None:
            self._end_spool()
        else:
            self._skeleton(b'"' + self._buffer + b'"')
            self._buffer.clear()
            self._in_string = False
        return end + 1

    def _start_spool(self) -> None:
        if len(self.strings) >= MAX_SPOOLED:
            raise too_many_documents()
        self._spool = SpooledString(self._max_document, self._directory)
        content = bytes(self._buffer)
        self._buffer.clear()
        self._escaped = False  # _decode sees that trailing backslash itself
        self._decode(content)

    def _long(self, chunk: bytes, pos: int) -> int:
        data = self._pending + chunk[pos:] if self._pending else chunk[pos:]
        offset = pos - len(self._pending)  # data[i] is chunk[offset + i]
        self._pending = b""
        end = self._decode(data)
        if end is None:
            return len(chunk)
        self._end_spool()
        return offset + end + 1

    def _decode(self, data: bytes) -> int | None:
        """Feed string content to the spool; the index of the closing quote, or None."""
        spool = self._spool
        assert spool is not None
        if spool.valid:
            quote = data.find(b'"')
            region = data if quote < 0 else data[:quote]
            hold = b""
            if quote < 0 and region.endswith(b"\\") and _odd_backslashes(region):
                region, hold = region[:-1], b"\\"  # an escape cut by the chunk's end
            plain = region.replace(b"\\/", b"/") if b"\\" in region else region
            if b"\\" not in plain:
                # Every backslash was a \/ pair, so the quote (if any) closes the string.
                spool.feed(plain)
                if spool.valid:
                    self._pending = hold
                    return None if quote < 0 else quote
            spool.invalidate()
        end, closed = self._raw_end(data, 0)
        return end if closed else None

    def _end_spool(self) -> None:
        spool = self._spool
        assert spool is not None
        spool.finish()
        marker = f"\0signet-spooled-{self._nonce}-{len(self.strings)}"
        self.strings[marker] = spool
        self._spool = None
        self._skeleton(json.dumps(marker).encode())
        self._in_string = False


def _odd_backslashes(data: bytes) -> bool:
    return (len(data) - len(data.rstrip(b"\\"))) % 2 == 1


class SpooledJson:
    """A parsed signDoc body; its spooled strings are deleted by close()."""

    def __init__(self, value: Any, strings: dict[str, SpooledString]) -> None:
        self.value = value
        self.strings = strings

    def __enter__(self) -> SpooledJson:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spooled(self, value: Any) -> SpooledString | None:
        """The spooled string a parsed value stands for, if it is a marker."""
        return self.strings.get(value) if isinstance(value, str) else None

    def misplaced(self, value: Any, allowed: tuple[str, str]) -> str | None:
        """The name of the first parameter holding a spooled string anywhere but where
        ``allowed`` = (array, field) says, e.g. ("documents", "document"); else None."""
        array, field = allowed
        if isinstance(value, dict) and isinstance(value.get(array), list):
            value = {
                **value,
                array: [
                    {k: v for k, v in entry.items() if k != field}
                    if isinstance(entry, dict)
                    else entry
                    for entry in value[array]
                ],
            }
        return self._misplaced(value, "(the body)")

    def _misplaced(self, value: Any, name: str) -> str | None:
        if isinstance(value, str):
            return name if value in self.strings else None
        if isinstance(value, dict):
            if any(key in self.strings for key in value):
                return "(a JSON key)"
            items: Iterable[tuple[str, Any]] = value.items()
        elif isinstance(value, list):
            items = ((name, item) for item in value)
        else:
            return None
        for key, item in items:
            if found := self._misplaced(item, key):
                return found
        return None

    def close(self) -> None:
        for spooled in self.strings.values():
            spooled.close()


def scan(
    chunks: Iterable[bytes],
    *,
    max_document: int,
    threshold: int = SPOOL_THRESHOLD,
    skeleton_limit: int = SKELETON_LIMIT,
    directory: str | None = None,
) -> SpooledJson:
    """Parse JSON text arriving in chunks; an empty body gives the value None.

    Raises InvalidRequest: 400 for a body that is not JSON, 413 for a document over
    ``max_document`` bytes or too much JSON besides the spooled strings."""
    scanner = _Scanner(
        max_document=max_document,
        threshold=threshold,
        skeleton_limit=skeleton_limit,
        directory=directory,
    )
    try:
        empty = True
        for chunk in chunks:
            empty = empty and not chunk
            scanner.feed(chunk)
        skeleton = scanner.finish()
        value = None if empty else parse_json(skeleton)
    except BaseException:
        scanner.close()
        raise
    return SpooledJson(value, scanner.strings)


def request_chunks(environ: dict[str, Any], limit: int) -> Generator[bytes, None, None]:
    """The WSGI request body in chunks, refused (413) beyond ``limit`` bytes. Closed before
    the end (the body was refused), it reads and drops the rest of a body it would have
    accepted, so that the client, still sending, gets to read the error."""
    too_large = PayloadTooLarge(
        f"Request body larger than {limit} bytes, the most signDoc takes: one document of "
        "formats.max_document_mb in base64, and 1 MiB of JSON"
    )
    length = get_content_length(environ)
    if length is not None and length > limit:
        raise too_large
    stream = get_input_stream(environ)
    total = 0
    try:
        while chunk := stream.read(READ_SIZE):
            total += len(chunk)
            if total > limit:
                raise too_large
            yield chunk
        check_complete(total, length)
    finally:
        with suppress(Exception):  # a client that went away has no answer to read
            while total <= limit and (chunk := stream.read(READ_SIZE)):
                total += len(chunk)
