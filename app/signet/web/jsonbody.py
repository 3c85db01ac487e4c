"""Reading a request's JSON: the one parser every API body goes through, and its limits.

A body is refused with a 400 ``invalid_request`` that names the problem when it is not UTF-8
JSON, is nested deeper than ``MAX_DEPTH``, or holds a string (a key or a value) that is not
valid Unicode -- a lone UTF-16 surrogate such as ``"\\ud800"``, which Python's ``json`` lets
through but no database driver, HSM label or log line can encode. Nothing behind this function
ever sees such a string.
"""

from __future__ import annotations

import json
import re
from typing import Any

from signet.errors import InvalidRequest

MAX_DEPTH = 32  # CSC bodies nest four levels at most (signDoc: documents[].…); room to spare
_SURROGATE = re.compile("[\ud800-\udfff]")
# Valid UTF-8 cannot encode a surrogate, so one can only come from a JSON escape \uD800-\uDFFF;
# and a body with fewer brackets than MAX_DEPTH cannot nest deeper. A body with neither (every
# signHash) needs no walk: two scans in C instead of a Python visit of every string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def parse_json(text: bytes, *, what: str = "The request body") -> Any:
    """The JSON value of ``text``; None for empty text. Raises InvalidRequest (400)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidRequest(
            f"{what} is not acceptable JSON: nested deeper than {MAX_DEPTH} levels"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{what} is not JSON: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except ValueError as exc:
        raise InvalidRequest(f"{what} is not JSON: {exc}") from None
    if (
        text.count(b"[") + text.count(b"{") >= MAX_DEPTH
        or _SURROGATE_ESCAPE.search(text) is not None
    ):
        check_json(value, what=what)
    return value


def parse_json_object(text: bytes, *, what: str = "The request body") -> dict[str, Any]:
    """A JSON object (an empty body is ``{}``); anything else is a 400."""
    value = parse_json(text, what=what)
    if value is None and not text:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    return value


def check_complete(received: int, content_length: int | None) -> None:
    """Refuse a body that ended (the client closed its side) before its Content-Length."""
    if content_length is not None and received < content_length:
        raise InvalidRequest(
            f"The request body ended after {received} of the "
            f"{content_length} bytes its Content-Length announces"
        )


def check_json(value: Any, *, what: str = "The request body") -> None:
    """Refuse a parsed value nested deeper than MAX_DEPTH or holding a string that is not
    valid Unicode. Iterative, so that no depth can exhaust Python's stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, name, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item, name or "(the body)", what)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise InvalidRequest(
                f"{what} is not acceptable JSON: nested deeper than {MAX_DEPTH} levels"
            )
        if isinstance(item, dict):
            for key, child in item.items():
                _check_string(key, f"{name or '(the body)'} (a key)", what)
                stack.append((child, key, depth + 1))
        else:
            stack.extend((child, name, depth + 1) for child in item)


def _check_string(text: str, name: str, what: str) -> None:
    found = _SURROGATE.search(text)
    if found:
        raise InvalidRequest(
            f"Invalid parameter {name}: a lone UTF-16 surrogate "
            f"(\\u{ord(found[0]):04x}) is not a Unicode character; "
            f"{what.lower()} must be valid Unicode text"
        )
