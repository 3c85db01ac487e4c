"""Sealed objects: access and refresh tokens, SADs and credential records, each authenticated
by an HMAC under the SAM's seal key in the HSM. A row in the database is only checked against
them: one written or edited by someone without the key never verifies.

Tokens and SADs carry their own binding, ``<kind>1.<base64url JSON>.<base64url MAC>``, so what
they allow is read from the MAC-checked string, never from the database. A credential record
keeps its seal in its row, over every field that decides who may sign with the key and how.
Checks are remembered per process (keyed by the exact bytes checked): a SAD reused for many
signHash calls costs one HSM call, not one a request."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from signet.errors import InvalidRequest, InvalidToken, SignetError
from signet.hsm import Hsm
from signet.sam import keys

_T = TypeVar("_T")


class _Remembered:
    """A bounded map of values already verified in this process (least recently used go)."""

    def __init__(self, size: int = 20_000) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)


_TOKENS = _Remembered()
_SADS = _Remembered()
_CREDENTIALS = _Remembered()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _seal(hsm: Hsm, kind: str, claims: dict[str, Any]) -> str:
    payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    tag = keys.mac(hsm, keys.SEAL_KEY, kind, payload)
    return f"{kind}1.{_b64(payload)}.{_b64(tag)}"


def _open(hsm: Hsm, kind: str, value: str) -> dict[str, Any] | None:
    """The claims of a sealed string, or None when it is malformed or its MAC is not ours."""
    head, _, rest = value.partition(".")
    payload_b64, _, tag_b64 = rest.partition(".")
    if head != f"{kind}1" or not payload_b64 or not tag_b64 or len(value) > 16_384:
        return None
    try:
        payload, tag = _unb64(payload_b64), _unb64(tag_b64)
        if not keys.mac_matches(hsm, keys.SEAL_KEY, tag, kind, payload):
            return None
        claims = json.loads(payload)
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _opened(
    hsm: Hsm,
    kind: str,
    value: str,
    seen: _Remembered,
    parse: Callable[[dict[str, Any]], _T],
    refusal: type[SignetError],
    reason: str,
) -> _T:
    """What a sealed string of `kind` says (remembered once verified), else `refusal`."""
    known = seen.get(value)
    if known is not None:
        return known  # type: ignore[no-any-return]
    raw = _open(hsm, kind, value)
    try:
        if raw is None:
            raise KeyError(kind)
        opened = parse(raw)
    except (KeyError, TypeError, ValueError):
        raise refusal(reason) from None
    seen.put(value, opened)
    return opened


# -- access tokens ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenClaims:
    """Who an access token speaks for, how she authenticated, and until when."""

    user_id: int
    username: str
    methods: str
    loa: str
    expires_at: int  # Unix seconds
    nonce: str
    # An OAuth 2.0 token of scope "credential" carries the SAD its second factor earned:
    # signHash spends it when the request names none.
    sad: str | None = None


def mint_token(
    hsm: Hsm,
    *,
    user_id: int,
    username: str,
    methods: str,
    loa: str,
    lifetime: int,
    sad: str | None = None,
) -> tuple[str, TokenClaims]:
    claims = TokenClaims(
        user_id, username, methods, loa, int(time.time()) + lifetime, secrets.token_hex(16), sad
    )
    sealed: dict[str, Any] = {
        "u": claims.user_id,
        "n": claims.username,
        "m": claims.methods,
        "l": claims.loa,
        "x": claims.expires_at,
        "j": claims.nonce,
    }
    if sad is not None:
        sealed["d"] = sad
    token = _seal(hsm, "t", sealed)
    _TOKENS.put(token, claims)
    return token, claims


def open_token(hsm: Hsm, token: str) -> TokenClaims:
    """The claims of an access token minted by this SAM (expired or not), else InvalidToken."""
    return _opened(
        hsm, "t", token, _TOKENS, _token_claims, InvalidToken, "The access token is not valid"
    )


def _token_claims(raw: dict[str, Any]) -> TokenClaims:
    sad = raw.get("d")
    return TokenClaims(
        int(raw["u"]),
        str(raw["n"]),
        str(raw["m"]),
        str(raw["l"]),
        int(raw["x"]),
        str(raw["j"]),
        None if sad is None else str(sad),
    )


# -- refresh tokens --------------------------------------------------------------------------
@dataclass(frozen=True)
class RefreshClaims:
    """Who a refresh token speaks for, how she authenticated at the password login that began
    its family, and until when the family may be renewed (rotation never moves that end)."""

    user_id: int
    username: str
    methods: str
    loa: str
    family: str  # the nonce of the family's first token
    expires_at: int  # Unix seconds: the family's end
    nonce: str
    # The OAuth 2.0 client a token endpoint's family was issued to (None: auth/login's): only
    # that client may renew it, and auth/login refuses it.
    client: str | None = None


def mint_refresh_token(
    hsm: Hsm,
    *,
    user_id: int,
    username: str,
    methods: str,
    loa: str,
    family: str | None,
    expires_at: int,
    client: str | None = None,
) -> tuple[str, RefreshClaims]:
    """A refresh token of a new family (`family` None) or the next of one; `client` binds it
    to the OAuth 2.0 client it is issued to."""
    nonce = secrets.token_hex(16)
    claims = RefreshClaims(
        user_id, username, methods, loa, family or nonce, expires_at, nonce, client
    )
    sealed: dict[str, Any] = {
        "u": user_id,
        "n": username,
        "m": methods,
        "l": loa,
        "f": claims.family,
        "x": expires_at,
        "j": nonce,
    }
    if client is not None:
        sealed["c"] = client
    return _seal(hsm, "r", sealed), claims


def open_refresh_token(hsm: Hsm, token: str) -> RefreshClaims:
    """The claims of a refresh token minted by this SAM (expired or not), else
    InvalidRequest. Not remembered: each is used once."""
    raw = _open(hsm, "r", token)
    try:
        if raw is None:
            raise KeyError
        return RefreshClaims(
            int(raw["u"]),
            str(raw["n"]),
            str(raw["m"]),
            str(raw["l"]),
            str(raw["f"]),
            int(raw["x"]),
            str(raw["j"]),
            None if raw.get("c") is None else str(raw["c"]),
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest(
            "Invalid parameter refresh_token: not a refresh token of this service"
        ) from None


# -- OAuth 2.0 grants -----------------------------------------------------------------------
# Authorization codes, pushed requests and the login pages' tickets carry what they grant
# under the SAM's MAC; each kind has its own letter, so one can never pass for another. An
# OpenID Connect login's round trip to its provider ("oidc") is one too: the browser keeps it.
# A device authorization's approval ("device", RFC 8628) is kept in its row.
GRANT_KINDS = {
    "code": "g",
    "request": "p",
    "ticket": "w",
    "saml": "a",
    "oidc": "o",
    "device": "v",
}


def mint_grant(hsm: Hsm, kind: str, claims: dict[str, Any], lifetime: int) -> str:
    """A sealed grant of `kind` (GRANT_KINDS) with these claims, valid `lifetime` seconds."""
    body = dict(claims, x=int(time.time()) + lifetime, j=secrets.token_hex(16))
    return _seal(hsm, GRANT_KINDS[kind], body)


def open_grant(hsm: Hsm, kind: str, value: str) -> dict[str, Any] | None:
    """The claims of a grant of `kind` this SAM sealed and not expired, else None."""
    if not isinstance(value, str):
        return None
    claims = _open(hsm, GRANT_KINDS[kind], value)
    if claims is None or not isinstance(claims.get("x"), int) or claims["x"] <= time.time():
        return None
    return claims


CLIENT_FIELDS = ("client_id", "name", "secret_hash", "redirect_uris")


def client_seal(hsm: Hsm, row: Any) -> str:
    """The seal of an OAuth 2.0 client record: who it is, its secret, where codes may go."""
    parts = tuple(getattr(row, name) for name in CLIENT_FIELDS)
    return keys.mac(hsm, keys.SEAL_KEY, "oauth2-client", *parts).hex()


def client_intact(hsm: Hsm, row: Any) -> bool:
    """Whether a client record is as the SAM sealed it (no redirect URI added behind it)."""
    parts = tuple(getattr(row, name) for name in CLIENT_FIELDS)
    return bool(row.seal) and keys.mac_matches(
        hsm, keys.SEAL_KEY, row.seal, "oauth2-client", *parts
    )


# -- Signature Activation Data ---------------------------------------------------------------
@dataclass(frozen=True)
class SadBinding:
    """What one SAD allows: this user, this credential in this epoch, exactly these hashes
    (a multiset; empty only below SCAL2), in this hash algorithm, this many times, until then."""

    nonce: str
    user_id: int
    credential_id: str
    epoch: int
    hash_oid: str | None
    hashes: tuple[str, ...]  # base64 (standard alphabet), as authorized, repeats kept
    count: int
    expires_at: int  # Unix seconds
    scal: str


def mint_sad(
    hsm: Hsm,
    *,
    user_id: int,
    credential_id: str,
    epoch: int,
    hash_oid: str | None,
    hashes: Sequence[str],
    count: int,
    lifetime: int,
    scal: str,
) -> tuple[str, SadBinding]:
    binding = SadBinding(
        secrets.token_hex(16),
        user_id,
        credential_id,
        epoch,
        hash_oid,
        tuple(hashes),
        count,
        int(time.time()) + lifetime,
        scal,
    )
    sad = _seal(
        hsm,
        "s",
        {
            "j": binding.nonce,
            "u": user_id,
            "c": credential_id,
            "e": epoch,
            "a": hash_oid,
            "h": list(binding.hashes),
            "k": count,
            "x": binding.expires_at,
            "s": scal,
        },
    )
    _SADS.put(sad, binding)
    return sad, binding


def open_sad(hsm: Hsm, sad: str) -> SadBinding:
    """The binding of a SAD this SAM minted, else InvalidRequest (nothing says which part)."""
    return _opened(hsm, "s", sad, _SADS, _sad_binding, InvalidRequest, "Invalid parameter SAD")


def _sad_binding(raw: dict[str, Any]) -> SadBinding:
    return SadBinding(
        str(raw["j"]),
        int(raw["u"]),
        str(raw["c"]),
        int(raw["e"]),
        None if raw["a"] is None else str(raw["a"]),
        tuple(str(h) for h in raw["h"]),
        int(raw["k"]),
        int(raw["x"]),
        str(raw["s"]),
    )


# -- credential records ----------------------------------------------------------------------
# Every field that decides who may sign with the key and how. Counters that change on every
# try (failed_attempts, locked) and descriptive ones (description, dates) are not sealed.
SEALED_FIELDS = (
    "id",
    "user_id",
    "key_label",
    "key_type",
    "key_size",
    "curve",
    "status",
    "epoch",
    "activation",
    "pin_hash",
    "activation_address",
    "scal",
    "multisign",
    "policy",
)
# Seals made before the policy was sealed (migration 0006) cover the fields but the last, and
# hold only while the policy is the one that migration gave those rows: a later seal covers
# the policy under another label, so no row can be made to pass for an older one.
_LEGACY_FIELDS, _LEGACY_POLICY = SEALED_FIELDS[:-1], "basic"


def _credential_parts(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in SEALED_FIELDS)


def credential_seal(hsm: Hsm, row: Any) -> str:
    """The seal to store with a credential record whose sealed fields are as in `row`."""
    parts = _credential_parts(row)
    tag = keys.mac(hsm, keys.SEAL_KEY, "credential/2", *parts).hex()
    _CREDENTIALS.put((parts, tag), True)
    return tag


def credential_intact(hsm: Hsm, row: Any) -> bool:
    """Whether a credential record's sealed fields are as the SAM last sealed them."""
    parts = _credential_parts(row)
    key = (parts, row.seal)
    if _CREDENTIALS.get(key):
        return True
    if not keys.mac_matches(hsm, keys.SEAL_KEY, row.seal, "credential/2", *parts):
        legacy = row.policy == _LEGACY_POLICY and keys.mac_matches(
            hsm, keys.SEAL_KEY, row.seal, "credential", *parts[: len(_LEGACY_FIELDS)]
        )
        if not legacy:
            return False
    _CREDENTIALS.put(key, True)
    return True
