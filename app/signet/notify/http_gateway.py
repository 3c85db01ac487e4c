"""The HTTP SMS gateway: one request per message to a REST gateway (most commercial ones), its
body built from the operator's template, authenticated by a named secret, and judged by the
success rule of `[notify.sms]`; every failure a DeliveryError naming the gateway and what to
check."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests

from signet.config.sms import PLACEHOLDERS, HttpSmsSettings, describe_gateway
from signet.config.snmp import SecretUnreadable, read_secret
from signet.notify import DeliveryError
from signet.notify.sms import SmsSent

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def fill(template: str, values: dict[str, str]) -> str:
    """A template string with each {placeholder} replaced by its value (once: a value that
    itself holds "{text}" is not expanded again)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _filled_json(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        return fill(node, values)
    if isinstance(node, list):
        return [_filled_json(item, values) for item in node]
    if isinstance(node, dict):
        return {fill(k, values): _filled_json(v, values) for k, v in node.items()}
    return node


def _field(document: Any, path: str) -> Any:
    """The value at a dotted path ("messages.0.status") of a JSON document; KeyError if
    there is none."""
    node = document
    for step in path.split("."):
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            raise KeyError(path)
    return node


class HttpGateway:
    """A REST SMS gateway."""

    def __init__(self, settings: HttpSmsSettings) -> None:
        self.settings = settings
        self.name = describe_gateway(settings)
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or .netrc from the service's environment

    def close(self) -> None:
        self._session.close()

    def _secret(self) -> str:
        assert self.settings.secret
        try:
            return read_secret(self.settings.secret, "notify.sms.secret")
        except SecretUnreadable as exc:
            raise DeliveryError(f"{self.name}: {exc}") from None

    def request(self, to: str, text: str, reference: str) -> dict[str, Any]:
        """The keyword arguments of the request for one message (no I/O but the secret)."""
        s = self.settings
        values = {
            "to": to,
            "to_digits": to.removeprefix("+"),
            "sender": s.sender,
            "text": text,
            "reference": reference,
        }
        headers = {"User-Agent": "Signet", **s.headers}
        auth = None
        if s.auth == "basic":
            assert s.username
            auth = (s.username, self._secret())
        elif s.auth == "bearer":
            headers["Authorization"] = f"Bearer {self._secret()}"
        elif s.auth == "header":
            assert s.auth_header
            headers[s.auth_header] = self._secret()
        kwargs: dict[str, Any] = {"headers": headers, "auth": auth}
        if s.body_format == "json":
            body = _filled_json(json.loads(s.body), values)
            headers.setdefault("Content-Type", "application/json")
            kwargs["data"] = json.dumps(body, ensure_ascii=False).encode()
        else:
            pairs = [(fill(k, values), fill(v, values)) for k, v in parse_qsl(s.body, True)]
            if s.method == "GET":
                kwargs["params"] = pairs
            else:
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
                kwargs["data"] = urlencode(pairs).encode()
        return kwargs

    def send(self, to: str, text: str) -> SmsSent:
        s = self.settings
        reference = uuid.uuid4().hex[:16]
        kwargs = self.request(to, text, reference)
        verify: bool | str = (s.ca_file or True) if s.verify_tls else False
        try:
            response = self._session.request(
                s.method,
                s.url,
                timeout=(s.timeout_seconds, s.timeout_seconds),
                verify=verify,
                allow_redirects=False,
                **kwargs,
            )
        except requests.exceptions.SSLError as exc:
            raise DeliveryError(
                f"{self.name}: TLS failed ({_reason(exc)}); check notify.sms.ca_file"
            ) from None
        except requests.exceptions.Timeout:
            raise DeliveryError(
                f"{self.name}: no answer within {s.timeout_seconds:g} s; check the gateway's "
                "status and notify.sms.timeout_seconds"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise DeliveryError(
                f"{self.name}: unreachable ({_reason(exc)}); check notify.sms.url and that "
                "the gateway is up"
            ) from None
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            raise DeliveryError(f"{self.name}: the request failed: {_reason(exc)}") from None
        message_id = self._judge(response)
        return SmsSent(self.name, (message_id,) if message_id else (), 1, "utf-8", reference)

    def _judge(self, response: requests.Response) -> str | None:
        """Apply the success rule; return the gateway's message ID if it names one."""
        s = self.settings
        snippet = response.text[:200].replace("\n", " ")
        if response.status_code not in s.success_status:
            if response.status_code in (401, 403):
                advice = (
                    "the gateway refused Signet's credentials; check notify.sms.auth and "
                    "notify.sms.secret"
                )
            elif 300 <= response.status_code < 400:
                advice = (
                    f"the gateway redirects to {response.headers.get('Location', '?')}; set "
                    "notify.sms.url to the final address"
                )
            elif response.status_code >= 500 or response.status_code == 429:
                advice = "the gateway is failing or busy; try again later"
            else:
                advice = "check notify.sms.body and the gateway's API documentation"
            raise DeliveryError(
                f"{self.name}: answered HTTP {response.status_code} ({snippet!r}): {advice}"
            )
        document: Any = None
        if s.success_field or s.message_id_field:
            try:
                document = response.json()
            except ValueError:
                raise DeliveryError(
                    f"{self.name}: answered HTTP {response.status_code} without JSON "
                    f"({snippet!r}), where notify.sms.success_field or message_id_field expects it"
                ) from None
        if s.success_field:
            try:
                value = _field(document, s.success_field)
            except KeyError:
                raise DeliveryError(
                    f"{self.name}: its answer has no {s.success_field!r} "
                    f"(notify.sms.success_field): {snippet!r}"
                ) from None
            shown = value if isinstance(value, str) else json.dumps(value)
            if s.success_pattern and not re.fullmatch(s.success_pattern, shown):
                raise DeliveryError(
                    f"{self.name}: refused the message: {s.success_field} is {shown!r}, not "
                    f"/{s.success_pattern}/ (notify.sms.success_pattern)"
                )
        elif s.success_pattern and not re.search(s.success_pattern, response.text):
            raise DeliveryError(
                f"{self.name}: refused the message: its answer does not match "
                f"/{s.success_pattern}/ (notify.sms.success_pattern): {snippet!r}"
            )
        if s.message_id_field and document is not None:
            try:
                return str(_field(document, s.message_id_field))
            except KeyError:
                return None
        return None


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, in one line (no URL with a query string)."""
    inner: BaseException = exc
    for _ in range(10):
        following = inner.__cause__ or inner.__context__
        if following is None:
            break
        inner = following
    text = str(inner) or inner.__class__.__name__
    for known in ("Connection refused", "Name or service not known", "certificate verify failed"):
        if known in str(exc):
            return known
    return text.split(" (Caused by")[0][:200]
