"""SMS gateway settings, `[notify.sms]`: an HTTP gateway or an SMPP 3.4 SMSC, told apart by
`type`. Secrets (API keys, SMPP passwords) are named, never written here: "file:/path" or
"env:NAME"."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signet.config.snmp import _secret_reference

# The placeholders a body template may use; any other {name} is refused when settings load.
PLACEHOLDERS = ("to", "to_digits", "sender", "text", "reference")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What a sender ID may be: an international number, a short code, or at most 11 GSM letters.
_SENDER = re.compile(r"^(\+?[0-9]{1,15}|[A-Za-z0-9 ._-]{1,11})$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_placeholders(template: str) -> None:
    for name in _PLACEHOLDER.findall(template):
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}; use {known}")


class _Gateway(_Section):
    # Sender ID shown on the phone: an international number (+…), a short code, or up to
    # 11 letters and digits (an alphanumeric sender, which many networks require registered).
    sender: str = "Signet"
    # Bound on each network step (connect, TLS, bind, each answer); a send never waits longer
    # than a few of these.
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # TLS: CA bundle that verifies the gateway (None: the system store); verify_tls = false
    # only for a test gateway, never in production.
    ca_file: str | None = None
    verify_tls: bool = True

    @field_validator("sender")
    @classmethod
    def _sender(cls, sender: str) -> str:
        if not _SENDER.fullmatch(sender):
            raise ValueError(
                "expected an international number (+…), a short code, or at most 11 "
                "letters, digits, spaces, '.', '_' or '-'"
            )
        return sender


class HttpSmsSettings(_Gateway):
    """A REST gateway: one request per message, the body built from a template."""

    type: Literal["http"]
    url: str
    method: Literal["POST", "PUT", "GET"] = "POST"
    # "json": the template is a JSON document whose strings may hold placeholders (each
    # value is inserted JSON-escaped); "form": the template is `key={to}&…`, sent as
    # application/x-www-form-urlencoded (or as the query string for GET).
    body_format: Literal["json", "form"] = "json"
    body: str = '{"to": "{to}", "from": "{sender}", "text": "{text}"}'
    headers: dict[str, str] = Field(default_factory=dict)
    # basic: username and secret; bearer: Authorization: Bearer <secret>; header: the secret
    # in the header named auth_header (an API key).
    auth: Literal["none", "basic", "bearer", "header"] = "none"
    username: str | None = None
    secret: str | None = None
    auth_header: str | None = None
    # Success: the status is one of these, and (if set) the JSON answer's field (a dotted
    # path, e.g. "messages.0.status") exists and, if success_pattern is set, matches it in full.
    # Without success_field, success_pattern is searched in the whole answer's text.
    success_status: list[int] = Field(default_factory=lambda: [200, 201, 202])
    success_field: str | None = None
    success_pattern: str | None = None
    # The gateway's message ID in its JSON answer (a dotted path), recorded in the audit trail.
    message_id_field: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an https:// (or http://) URL of the gateway")
        return url

    _references = field_validator("secret")(
        classmethod(lambda cls, value: _secret_reference(value))
    )

    @field_validator("success_status")
    @classmethod
    def _statuses(cls, statuses: list[int]) -> list[int]:
        if not statuses or not all(100 <= s <= 599 for s in statuses):
            raise ValueError("expected HTTP status codes, e.g. [200, 201, 202]")
        return statuses

    @field_validator("success_pattern")
    @classmethod
    def _pattern(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return pattern

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or "\n" in value:
                raise ValueError(f"header {name!r}: not a valid HTTP header")
            if name.lower() == "authorization":
                raise ValueError("set auth and secret rather than an Authorization header")
        return headers

    @model_validator(mode="after")
    def _consistent(self) -> HttpSmsSettings:
        _check_placeholders(self.body)
        if self.body_format == "json":
            try:
                json.loads(self.body)
            except ValueError as exc:
                raise ValueError(f"body: not a JSON template ({exc})") from None
        elif not parse_qsl(self.body, strict_parsing=True):
            raise ValueError("body: expected a form template, e.g. to={to}&text={text}")
        if self.method == "GET" and self.body_format != "form":
            raise ValueError("method GET sends the body as its query string: body_format form")
        if self.auth == "basic" and not (self.username and self.secret):
            raise ValueError("auth basic needs username and secret (file:… or env:…)")
        if self.auth in ("bearer", "header") and not self.secret:
            raise ValueError(f"auth {self.auth} needs secret (file:… or env:…)")
        if self.auth == "header" and not self.auth_header:
            raise ValueError("auth header needs auth_header, the header's name (e.g. X-API-Key)")
        if self.auth == "none" and self.secret:
            raise ValueError("secret is set but auth is none: say how it is sent")
        return self


class SmppSmsSettings(_Gateway):
    """An SMSC over SMPP 3.4: one bind kept per process, re-established when it drops."""

    type: Literal["smpp"]
    # smpp://host:port (2775 by default) or smpps://host:port (SMPP over TLS, 3550 by default).
    url: str
    system_id: str = Field(min_length=1, max_length=15)
    # The bind's password (file:… or env:…); SMPP 3.4 allows at most 8 characters.
    secret: str | None = None
    system_type: str = Field(default="", max_length=12)
    # transmitter: submit only (delivery receipts go to another bind of the same system_id);
    # transceiver: receipts arrive on this bind and are recorded in the audit trail.
    bind: Literal["transmitter", "transceiver"] = "transmitter"
    # registered_delivery: ask the SMSC for a delivery receipt of each message.
    delivery_receipts: bool = True
    # auto: GSM 7-bit when every character has one, else UCS-2; ucs2: always UCS-2.
    encoding: Literal["auto", "ucs2"] = "auto"

    _references = field_validator("secret")(
        classmethod(lambda cls, value: _secret_reference(value))
    )

    @field_validator("url")
    @classmethod
    def _smpp_url(cls, url: str) -> str:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("the port is not a number") from None
        if parts.scheme not in ("smpp", "smpps") or not parts.hostname:
            raise ValueError("expected smpp://host:port or smpps://host:port (SMPP over TLS)")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError(
                "expected smpp://host:port only: system_id and secret are settings of their own"
            )
        return url

    @property
    def host(self) -> str:
        return str(urlsplit(self.url).hostname)

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (3550 if parts.scheme == "smpps" else 2775)

    @property
    def tls(self) -> bool:
        return self.url.startswith("smpps:")


SmsSettings = Annotated[HttpSmsSettings | SmppSmsSettings, Field(discriminator="type")]


def describe_gateway(settings: Any) -> str:
    """How a gateway is named in messages: its type and address, never a secret."""
    if settings.type == "smpp":
        return f"SMPP {settings.host}:{settings.port}"
    parts = urlsplit(settings.url)
    return f"HTTP gateway {parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
