"""The OpenID Connect relying party's protocol (OIDC Core 1.0, code flow with PKCE): the OP's
discovery and keys, the authorization URL, the code exchanged for tokens, and the ID token
checked claim by claim into an `Asserted`. No web framework here: the pages are in `web`, what
a login does with the assertion in `signing.federation`.

Authlib makes the requests (its OAuth 2.0 client: PKCE S256, client_secret_basic/post or a
public client); joserfc, the JOSE library Authlib is built on, verifies the signature."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from signet.auth.federation import Asserted
from signet.config.identity import OidcProviderSettings

_TIMEOUT = 10  # seconds, each request to the OP
_METADATA_TTL = 3600  # the OP's discovery document is read again after this
_JWKS_TTL = 3600  # its keys too, and at once (rate limited) on a key id not seen yet
_JWKS_MIN_INTERVAL = 30  # seconds between two fetches of the keys on unknown key ids
_MAX_TOKEN = 16_384


class OidcError(Exception):
    """The OP's answer failed a check; the message names which."""


@dataclass(frozen=True)
class Pending:
    """What the authorization request leaves behind for its callback: sent to the OP as state
    and nonce, kept by the browser (never in a URL) as the PKCE verifier."""

    state: str
    nonce: str
    verifier: str


@dataclass
class _Cached:
    value: dict[str, Any]
    fetched: float


_lock = threading.Lock()
_metadata: dict[str, _Cached] = {}
_jwks: dict[str, _Cached] = {}


def _get(settings: OidcProviderSettings, url: str) -> dict[str, Any]:
    try:
        answer = requests.get(url, timeout=_TIMEOUT, verify=settings.ca_file or True)
        answer.raise_for_status()
        value = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise OidcError(f"The identity provider could not be read at {url}: {exc}") from None
    if not isinstance(value, dict):
        raise OidcError(f"The identity provider's {url} is not a JSON object")
    return value


def metadata(settings: OidcProviderSettings) -> dict[str, Any]:
    """The OP's discovery document (OIDC Discovery 4), its issuer the configured one."""
    now = time.time()
    with _lock:
        cached = _metadata.get(settings.issuer)
    if cached is not None and now - cached.fetched < _METADATA_TTL:
        return cached.value
    url = settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
    value = _get(settings, url)
    if value.get("issuer") != settings.issuer:
        raise OidcError(
            f"Discovery: the OP calls itself {value.get('issuer')!r}, not {settings.issuer!r}"
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(value.get(name), str):
            raise OidcError(f"Discovery: the OP's metadata has no {name}")
    with _lock:
        _metadata[settings.issuer] = _Cached(value, now)
    return value


def _keys(settings: OidcProviderSettings, refresh: bool) -> KeySet:
    """The OP's signing keys; `refresh` fetches them again unless fetched very recently."""
    uri = metadata(settings)["jwks_uri"]
    now = time.time()
    with _lock:
        cached = _jwks.get(uri)
    stale = cached is None or now - cached.fetched >= _JWKS_TTL
    if stale or (refresh and cached is not None and now - cached.fetched >= _JWKS_MIN_INTERVAL):
        fetched = _get(settings, uri)
        cached = _Cached(fetched, now)
        with _lock:
            _jwks[uri] = cached
    assert cached is not None
    try:
        return KeySet.import_key_set(cached.value)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise OidcError(f"The OP's JWKS cannot be read: {exc}") from None


def forget_keys() -> None:
    """Drop what was cached (tests; an operator changing an OP's address)."""
    with _lock:
        _metadata.clear()
        _jwks.clear()


def _client(settings: OidcProviderSettings, secret: str | None, **kwargs: Any) -> OAuth2Session:
    client = OAuth2Session(
        settings.client_id,
        secret,
        scope=" ".join(settings.scopes),
        token_endpoint_auth_method=settings.client_auth if secret else "none",
        code_challenge_method="S256",
        **kwargs,
    )
    client.verify = settings.ca_file or True
    return client


def authorization_url(
    settings: OidcProviderSettings,
    redirect_uri: str,
    *,
    acr_values: Sequence[str] | None = None,
    prompt: str | None = None,
) -> tuple[str, Pending]:
    """Where to send the browser (the code flow with PKCE S256, state, nonce, acr_values —
    the settings' unless `acr_values` — max_age, prompt), and what its callback must find
    again."""
    pending = Pending(
        secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    )
    extra: dict[str, str] = {}
    asked = settings.acr_values if acr_values is None else acr_values
    if asked:
        extra["acr_values"] = " ".join(asked)
    if prompt is not None:
        extra["prompt"] = prompt
    if settings.max_age_seconds is not None:
        extra["max_age"] = str(settings.max_age_seconds)
    client = _client(settings, None, redirect_uri=redirect_uri)
    url, _ = client.create_authorization_url(
        metadata(settings)["authorization_endpoint"],
        state=pending.state,
        nonce=pending.nonce,
        code_verifier=pending.verifier,
        **extra,
    )
    assert create_s256_code_challenge(pending.verifier) in url
    return url, pending


def exchange(
    settings: OidcProviderSettings,
    secret: str | None,
    redirect_uri: str,
    code: str,
    pending: Pending,
) -> dict[str, Any]:
    """The tokens the OP gives for `code` (RFC 6749 4.1.3 with the PKCE verifier)."""
    client = _client(settings, secret, redirect_uri=redirect_uri)
    try:
        token = client.fetch_token(
            metadata(settings)["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            code_verifier=pending.verifier,
            timeout=_TIMEOUT,
        )
    except Exception as exc:  # Authlib's OAuthError, requests' errors, a JSON error
        raise OidcError(f"The OP refused the code: {exc}") from None
    if not isinstance(token.get("id_token"), str):
        raise OidcError("The OP's token response has no id_token")
    return dict(token)


def _decode(settings: OidcProviderSettings, id_token: str) -> dict[str, Any]:
    if len(id_token) > _MAX_TOKEN:
        raise OidcError("ID token: too long")
    for refresh in (False, True):
        try:
            decoded = jwt.decode(id_token, _keys(settings, refresh), settings.allowed_algorithms)
        except InvalidKeyIdError:
            if refresh:
                raise OidcError("ID token: signed with a key the OP does not publish") from None
            continue  # the OP may have rotated its keys: read them again, once
        except BadSignatureError:
            raise OidcError("ID token: the signature does not verify") from None
        except JoseError as exc:
            raise OidcError(f"ID token: {exc.error}: {exc.description or 'not accepted'}") from None
        except ValueError as exc:
            raise OidcError(f"ID token: {exc}") from None
        return dict(decoded.claims)
    raise OidcError("ID token: no key")  # not reached


def _number(claims: dict[str, Any], name: str, required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise OidcError(f"ID token: no {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OidcError(f"ID token: {name} is not a time")
    return int(value)


def verify_id_token(
    settings: OidcProviderSettings,
    name: str,
    id_token: str,
    nonce: str,
    now: float | None = None,
) -> Asserted:
    """Check an ID token (OIDC Core 3.1.3.7) sent for the request with `nonce`: signature by
    a key of the OP's JWKS with an allowed algorithm, iss, aud, azp, nonce, exp, iat, nbf
    (with the provider's skew), auth_time when max_age was asked; the assertion it makes."""
    claims = _decode(settings, id_token)
    skew = settings.max_skew_seconds
    now = time.time() if now is None else now
    if claims.get("iss") != settings.issuer:
        raise OidcError(f"ID token: iss {claims.get('iss')!r} is not {settings.issuer!r}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or settings.client_id not in audiences:
        raise OidcError(f"ID token: aud {audience!r} does not include {settings.client_id!r}")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != settings.client_id:
        raise OidcError(f"ID token: azp {azp!r} is not {settings.client_id!r}")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, nonce):
        raise OidcError("ID token: the nonce is not the one this login sent")
    expires = _number(claims, "exp", True)
    issued = _number(claims, "iat", True)
    not_before = _number(claims, "nbf", False)
    assert expires is not None and issued is not None
    if expires + skew < now:
        raise OidcError(f"ID token: expired {int(now) - expires} s ago")
    if issued - skew > now:
        raise OidcError("ID token: issued in the future (iat)")
    if not_before is not None and not_before - skew > now:
        raise OidcError("ID token: not valid yet (nbf)")
    auth_time = _number(claims, "auth_time", settings.max_age_seconds is not None)
    max_age = settings.max_age_seconds
    if max_age is not None and auth_time is not None and auth_time + max_age + skew < now:
        raise OidcError("ID token: the user authenticated longer ago than max_age")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise OidcError("ID token: no sub")
    acr = claims.get("acr")
    amr = claims.get("amr")
    return Asserted(
        provider=name,
        subject=subject,
        claims={k: v for k, v in claims.items() if isinstance(v, str | list)},
        context=acr if isinstance(acr, str) else None,
        methods=tuple(str(m) for m in amr) if isinstance(amr, list) else (),
        authenticated_at=auth_time,
        one_time=hashlib.sha256(nonce.encode()).hexdigest(),
        valid_until=expires,
    )


def userinfo(settings: OidcProviderSettings, access_token: str, subject: str) -> dict[str, Any]:
    """The OP's UserInfo claims (OIDC Core 5.3) for the ID token's subject."""
    endpoint = metadata(settings).get("userinfo_endpoint")
    if not isinstance(endpoint, str):
        raise OidcError("The OP has no userinfo_endpoint for the claims the ID token lacks")
    try:
        answer = requests.get(
            endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=_TIMEOUT,
            verify=settings.ca_file or True,
        )
        answer.raise_for_status()
        claims = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise OidcError(f"UserInfo: {exc}") from None
    if not isinstance(claims, dict) or claims.get("sub") != subject:
        raise OidcError("UserInfo: its sub is not the ID token's")
    return claims


def login(
    settings: OidcProviderSettings,
    name: str,
    secret: str | None,
    redirect_uri: str,
    code: str,
    pending: Pending,
) -> Asserted:
    """The callback's code turned into a verified assertion: the tokens, the ID token checked,
    and the UserInfo claims added when the ID token lacks the claim that names the user."""
    tokens = exchange(settings, secret, redirect_uri, code, pending)
    asserted = verify_id_token(settings, name, tokens["id_token"], pending.nonce)
    if settings.match_claim in asserted.claims or not isinstance(tokens.get("access_token"), str):
        return asserted
    extra = userinfo(settings, tokens["access_token"], asserted.subject)
    merged: dict[str, Any] = {k: v for k, v in extra.items() if isinstance(v, str | list)}
    merged.update(asserted.claims)  # the signed ID token's claims win
    return Asserted(**{**asserted.__dict__, "claims": merged})
