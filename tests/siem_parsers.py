"""Parsers for what a SIEM receives, written from the standards and sharing nothing with
signet.events.messages: RFC 5424 (section 6's ABNF), and CEF (ArcSight's "Implementing
ArcSight CEF": header fields split on unescaped pipes, extension keys before unescaped '=')."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) "
    r"(?P<timestamp>-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) "
    r"(?P<hostname>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) "
)
_SD_NAME = re.compile(r"[!#-<>-\\^-~]{1,32}")  # PRINTUSASCII but '=', ' ', ']', '"'


@dataclass
class Syslog:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]] = field(default_factory=dict)
    msg: str = ""

    @property
    def facility(self) -> int:
        return self.pri // 8

    @property
    def severity(self) -> int:
        return self.pri % 8


def parse_rfc5424(line: str) -> Syslog:
    """Parse one RFC 5424 message; raise ValueError where it breaks the grammar."""
    head = _HEADER.match(line)
    if head is None:
        raise ValueError(f"not an RFC 5424 header: {line[:80]!r}")
    pri = int(head["pri"])
    if pri > 191:
        raise ValueError("PRI out of range")
    out = Syslog(
        pri,
        int(head["version"]),
        head["timestamp"],
        head["hostname"],
        head["app"],
        head["procid"],
        head["msgid"],
    )
    rest = line[head.end() :]
    if rest.startswith("-"):
        rest = rest[1:]
    else:
        while rest.startswith("["):
            name = _SD_NAME.match(rest, 1)
            if name is None:
                raise ValueError("bad SD-ID")
            params: dict[str, str] = {}
            pos = name.end()
            while rest[pos] == " ":
                key = _SD_NAME.match(rest, pos + 1)
                if key is None or rest[key.end() : key.end() + 2] != '="':
                    raise ValueError("bad SD-PARAM")
                pos, value = key.end() + 2, []
                while rest[pos] != '"':
                    if rest[pos] == "\\" and rest[pos + 1] in '"\\]':
                        pos += 1
                    elif rest[pos] == "]":
                        raise ValueError("unescaped ']' in PARAM-VALUE")
                    value.append(rest[pos])
                    pos += 1
                params[key.group()] = "".join(value)
                pos += 1
            if rest[pos] != "]":
                raise ValueError("SD-ELEMENT not closed")
            out.sd[name.group()] = params
            rest = rest[pos + 1 :]
    if rest and not rest.startswith(" "):
        raise ValueError("no space before MSG")
    out.msg = rest[1:].removeprefix("\ufeff")
    return out


@dataclass
class Cef:
    version: str
    vendor: str
    product: str
    product_version: str
    signature_id: str
    name: str
    severity: str
    extension: dict[str, str]


def _split_header(text: str) -> tuple[list[str], str]:
    fields, current, pos = [], [], 0
    while len(fields) < 7:
        char = text[pos]
        if char == "\\" and text[pos + 1] in "|\\":
            current.append(text[pos + 1])
            pos += 2
            continue
        if char == "|":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
        pos += 1
    return fields, text[pos:]


_KEY = re.compile(r"(?:^| )([A-Za-z0-9_.]+)=")
_UNESCAPE = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}


def parse_cef(text: str) -> Cef:
    """Parse one CEF event (CEF:0); raise ValueError where it breaks the format."""
    if not text.startswith("CEF:"):
        raise ValueError("not CEF")
    header, ext = _split_header(text[4:])
    # Keys begin where a space is followed by key= with the '=' unescaped.
    starts = []
    for match in _KEY.finditer(ext):
        backslashes = len(ext[: match.start(1)]) - len(ext[: match.start(1)].rstrip("\\"))
        if backslashes % 2 == 0:
            starts.append(match)
    extension: dict[str, str] = {}
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(ext)
        raw, value, pos = ext[match.end() : end], [], 0
        while pos < len(raw):
            if raw[pos] == "\\":
                if raw[pos + 1] not in _UNESCAPE:
                    raise ValueError(f"bad escape in {match.group(1)}")
                value.append(_UNESCAPE[raw[pos + 1]])
                pos += 2
            elif raw[pos] == "=":
                raise ValueError(f"unescaped '=' in the value of {match.group(1)}")
            else:
                value.append(raw[pos])
                pos += 1
        extension[match.group(1)] = "".join(value)
    return Cef(*header, extension=extension)  # type: ignore[arg-type]
