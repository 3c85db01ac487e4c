"""How a detached signature names the document it covers: a file name made a relative URI."""

from __future__ import annotations

from urllib.parse import quote

from signet.formats.errors import FormatError

MAX_NAME = 255


def document_uri(name: str) -> str:
    """The relative URI a detached XAdES ``ds:Reference`` or JAdES ``sigD`` gives ``name``.

    ``name`` is a file name (no folder): a verifier resolves the URI beside the signature,
    where the document is expected. Everything outside URI's unreserved characters is
    percent-encoded (UTF-8), so a space or a ``#`` cannot turn it into another reference."""
    if not isinstance(name, str) or not name:
        raise FormatError("a detached signature needs the document's file name")
    if len(name) > MAX_NAME:
        raise FormatError(f"the document name is longer than {MAX_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise FormatError("the document name contains a control character")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise FormatError(
            f"the document name {name!r} is not a file name: give it without a folder"
        )
    return quote(name, safe="")
