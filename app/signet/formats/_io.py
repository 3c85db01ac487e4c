"""Input and output plumbing shared by the formats: paths, bytes and streams, chunked hashing."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Union

from signet.formats.errors import FormatError
from signet.formats.keys import pyca_hash

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes]]
"""A document to sign: bytes, a file path, or a binary stream (read from its start)."""

CHUNK_SIZE = 1024 * 1024


def _is_path(source: Any) -> bool:
    return isinstance(source, str | os.PathLike)


@contextmanager
def open_source(source: Source) -> Iterator[IO[bytes]]:
    """A seekable binary stream over ``source``, positioned at 0.

    Paths are opened (and closed again); a non-seekable stream is spooled to a temporary
    file so that large documents never have to sit in memory.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(source))
    elif _is_path(source):
        with open(source, "rb") as handle:  # type: ignore[arg-type]
            yield handle
    elif hasattr(source, "read"):
        stream: Any = source
        if getattr(stream, "seekable", lambda: False)():
            stream.seek(0)
            yield stream
        else:
            with tempfile.TemporaryFile() as spool:
                shutil.copyfileobj(stream, spool, CHUNK_SIZE)
                spool.seek(0)
                yield spool
    else:
        raise FormatError(f"cannot read a document from {type(source).__name__}")


def read_source(source: Source) -> bytes:
    """The whole document in memory, for formats whose output embeds or parses it anyway."""
    if isinstance(source, bytes):
        return source
    with open_source(source) as stream:
        return stream.read()


def stream_digest(stream: IO[bytes], hash_name: str) -> bytes:
    pyca_hash(hash_name)
    hasher = hashlib.new(hash_name)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    while True:
        count = stream.readinto(view)  # type: ignore[attr-defined]
        if not count:
            break
        hasher.update(view[:count])
    return hasher.digest()


def compute_document_digest(data: Source, hash_algorithm: str = "sha256") -> bytes:
    """The hash of a whole document, as CSC ``documentDigests`` carries it (chunked read)."""
    with open_source(data) as stream:
        return stream_digest(stream, hash_algorithm)


def _usable_in_place(out: Any) -> bool:
    try:
        if not (out.readable() and out.writable() and out.seekable()):
            return False
        position = out.tell()
        end = out.seek(0, io.SEEK_END)
        out.seek(position)
        return position == 0 and end == 0
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def rw_output(out: IO[bytes]) -> Iterator[IO[bytes]]:
    """A readable, writable, seekable, empty stream whose content ends up in ``out``.

    pyHanko appends DSS updates and document time-stamps by reading back what it wrote, so
    when ``out`` cannot do that a temporary file stands in and is copied over at the end.
    """
    if _usable_in_place(out):
        yield out
        out.flush()
        return
    with tempfile.TemporaryFile() as scratch:
        yield scratch
        scratch.seek(0)
        shutil.copyfileobj(scratch, out, CHUNK_SIZE)
        out.flush()
