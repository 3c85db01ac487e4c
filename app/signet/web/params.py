"""Reading a CSC request: its JSON body, its parameters by their v2 names, and its caller.

A request's parameters are read through :class:`Params`, by the names CSC v2 gives them; a
v1 request's names are mapped onto those (`web.csc_v1`), so that each operation is written
once and every error still names the parameter the way the client wrote it."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app, g, request
from flask.typing import ResponseReturnValue

from signet.auth.tokens import Claimed, Principal
from signet.errors import InvalidRequest, InvalidToken
from signet.signing import Services, sessions
from signet.web.jsonbody import check_complete, parse_json_object

Json = dict[str, Any]  # a JSON object, as parsed or to be answered


def services() -> Services:
    return current_app.extensions["signet"]  # type: ignore[no-any-return]


def body() -> Json:
    data = request.get_data(cache=True)
    check_complete(len(data), request.content_length)
    return parse_json_object(data)


class Params:
    """A JSON object's parameters, read by their v2 names. ``names`` maps a v2 name to the one
    the client's API version uses for it, or to None where that version has no such parameter
    (it reads as absent, whatever the client sent under the v2 name)."""

    def __init__(self, data: Json, names: Mapping[str, str | None] | None = None):
        self.data = data
        self.names = names or {}

    def called(self, name: str) -> str:
        """What the client calls the parameter: errors name it so."""
        return self.names.get(name) or name

    def get(self, name: str, default: Any = None) -> Any:
        called = self.names.get(name, name)
        return default if called is None else self.data.get(called, default)

    def string(self, name: str, *, required: bool = True) -> str | None:
        value = self.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            raise InvalidRequest(f"Missing (or invalid type) string parameter {self.called(name)}")
        return value

    def integer(self, name: str, *, default: int | None = None) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"Missing (or invalid type) integer parameter {self.called(name)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise InvalidRequest(f"Invalid type for boolean parameter {self.called(name)}")
        return value

    def hash_list(self, name: str, *, required: bool) -> list[str]:
        value = self.get(name)
        if value is None and not required:
            return []
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            raise InvalidRequest(f"Missing (or invalid type) array parameter {self.called(name)}")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(name, default)
        if value not in options:
            raise InvalidRequest(
                f"Invalid parameter {self.called(name)}: use one of {', '.join(options)}"
            )
        return str(value)

    def labels(self) -> list[str]:
        """signet_labels (a Signet extension): the names of the documents the hashes are of."""
        value = self.get("signet_labels", [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidRequest("Invalid type for array parameter signet_labels: strings expected")
        return value

    def auth_data(self) -> dict[str, str]:
        """authData: the second factors, by their id (PIN, OTP)."""
        items = self.get("authData", [])
        if not isinstance(items, list):
            raise InvalidRequest("Invalid type for array parameter authData")
        values: dict[str, str] = {}
        for item in items:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("id"), str)
                or not isinstance(item.get("value"), str)
            ):
                raise InvalidRequest('Invalid parameter authData: items are {"id", "value"}')
            values[item["id"]] = item["value"]
        return values


_PAGE_TOKEN = re.compile(rb"after:([0-9]{1,9})")


def page(params: Params, items: list[Any]) -> tuple[list[Any], str | None]:
    """credentials/list pagination: at most `maxResults` items from where `pageToken` (a
    token this service gave as `nextPageToken`) says, and the token for the rest, if any."""
    limit = params.get("maxResults")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidRequest("Invalid parameter maxResults: a positive integer is expected")
    token = params.get("pageToken")
    start = 0
    if token is not None:
        try:
            decoded = base64.urlsafe_b64decode(str(token).encode("ascii"))
        except ValueError:  # not ASCII, not base64
            decoded = b""
        found = _PAGE_TOKEN.fullmatch(decoded)
        if not isinstance(token, str) or not found or int(found[1]) > len(items):
            raise InvalidRequest("Invalid parameter pageToken")
        start = int(found[1])
    end = len(items) if limit is None else min(start + limit, len(items))
    following = (
        base64.urlsafe_b64encode(f"after:{end}".encode()).decode() if end < len(items) else None
    )
    return items[start:end], following


# -- the caller -----------------------------------------------------------------------------
def bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken(
            "Missing or invalid Authorization header: a Bearer access token is required"
        )
    return token.strip()


def authenticate() -> None:
    """The bearer token checked, its database state included; its principal in `g`."""
    token = bearer()
    g.principal = sessions.authenticate(services(), token)
    g.token = token


def authenticated(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        authenticate()
        return view(*args, **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


def claimed(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """`authenticated` for signHash: the token's claims verified here, its database state
    read by the signing transaction with the credential (one round trip less)."""

    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        g.caller = sessions.claimed(services(), bearer())
        return view(*args, **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


def principal() -> Principal:
    return g.principal  # type: ignore[no-any-return]


def caller() -> Claimed:
    """The caller `claimed` found."""
    return g.caller  # type: ignore[no-any-return]
