"""A small CSC API v2 client over requests: the calls a desktop signer needs, errors as CscError."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from asn1crypto import algos

from signet.algorithms import HASHES

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class CscError(Exception):
    """A CSC call failed: ``status`` is the HTTP status (0 when the server was not reached),
    ``error`` and ``description`` the CSC error fields (or what went wrong on the wire)."""

    def __init__(self, status: int, error: str, description: str, *, method: str = "") -> None:
        self.status = status
        self.error = error
        self.description = description
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(
            f"{where}{description} ({error}, HTTP {status})" if status else f"{where}{description}"
        )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def pss_params_der(hash_name: str) -> bytes:
    """DER RSASSA-PSS-params: the hash, MGF1 with the same hash, salt = digest length."""
    digest = algos.DigestAlgorithm({"algorithm": hash_name})
    return algos.RSASSAPSSParams(
        {
            "hash_algorithm": digest,
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": digest},
            "salt_length": HASHES[hash_name].length,
            "trailer_field": "trailer_field_bc",
        }
    ).dump()


def service_base(url: str) -> str:
    """The CSC v2 base URL: ``https://host`` becomes ``https://host/csc/v2``; a URL whose path
    already ends in ``/v2`` is used as given (services mount the API where they like)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CscError(0, "invalid_url", f"{url!r} is not an http(s) URL of a CSC service")
    base = url.strip().rstrip("/")
    return base if parts.path.rstrip("/").endswith("/v2") else base + "/csc/v2"


@dataclass(frozen=True)
class AuthFactor:
    """What credentials/authorize needs besides the hashes: ``"OTP"``, ``"PIN"`` or ``""``."""

    kind: str
    label: str = ""
    generator: str = ""


class CscClient:
    """CSC v2 over HTTP(S). One client holds one access token after :meth:`login`."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        verify: bool | str = True,
        cert: tuple[str, str] | None = None,
    ) -> None:
        self.base_url = service_base(url)
        self.timeout = timeout
        self.http = session or requests.Session()
        self.http.verify = verify
        self.http.cert = cert  # a TLS client certificate and its key (files), for every call
        # Given again with each request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
        # override a session's verify, so a CA passed here would be ignored wherever they are set.
        self.verify = verify
        self.http.headers["User-Agent"] = "signet-desktop"
        self.access_token: str | None = None

    # -- transport ---------------------------------------------------------------------------
    def call(
        self,
        method: str,
        body: dict[str, Any] | None = None,
        *,
        auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.base_url}/{method}"
        headers = {}
        if self.access_token and auth is None:
            headers["Authorization"] = f"Bearer {self.access_token}"
        return self._send(
            "POST",
            url,
            method,
            json=body if body is not None else {},
            headers=headers,
            auth=auth,
        )

    def _send(self, verb: str, url: str, method: str, **kwargs: Any) -> dict[str, Any]:
        """One HTTP exchange; its JSON object, else CscError (an OAuth 2.0 error JSON's
        error and error_description as a CSC one's)."""
        try:
            response = self.http.request(
                verb, url, timeout=self.timeout, verify=self.verify, **kwargs
            )
        except requests.exceptions.SSLError as exc:
            raise CscError(
                0, "tls_error", f"TLS with {self.base_url} failed: {exc}", method=method
            ) from exc
        except requests.ConnectionError as exc:
            raise CscError(
                0,
                "unreachable",
                f"cannot reach the signing service at {self.base_url} ({_root_cause(exc)})",
                method=method,
            ) from exc
        except requests.Timeout as exc:
            raise CscError(
                0,
                "timeout",
                f"the signing service at {self.base_url} did not answer within {self.timeout:g} s",
                method=method,
            ) from exc
        except requests.RequestException as exc:
            raise CscError(0, "http_error", f"{url}: {exc}", method=method) from exc
        except OSError as exc:  # requests: a client certificate or CA file that cannot be read
            raise CscError(0, "tls_error", f"{url}: {exc}", method=method) from exc
        if response.ok and (response.status_code == 204 or not response.content):
            return {}
        try:
            data = response.json()
        except ValueError:
            data = None
        if not response.ok:
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                raise CscError(
                    response.status_code,
                    data["error"],
                    str(data.get("error_description") or data["error"]),
                    method=method,
                )
            hint = (
                "; is this the URL of a CSC v2 service?"
                if response.status_code in (404, 405)
                else ""
            )
            raise CscError(
                response.status_code,
                "http_error",
                f"{url} answered HTTP {response.status_code} {response.reason or ''}".rstrip()
                + hint,
                method=method,
            )
        if not isinstance(data, dict):
            raise CscError(
                response.status_code,
                "invalid_response",
                f"{url} did not answer with a JSON object; is this the URL of a CSC v2 service?",
                method=method,
            )
        return data

    # -- methods -----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return self.call("info", {})

    def login(self, username: str, password: str) -> str:
        data = self.call("auth/login", {}, auth=(username, password))
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise CscError(
                200, "invalid_response", "auth/login returned no access_token", method="auth/login"
            )
        self.access_token = token
        return token

    def login_with_certificate(self) -> str:
        """auth/login by the TLS client certificate this client was made with (no password)."""
        if not self.http.cert:
            raise CscError(0, "invalid_request", "no client certificate to log in with")
        data = self.call("auth/login", {})
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise CscError(
                200, "invalid_response", "auth/login returned no access_token", method="auth/login"
            )
        self.access_token = token
        return token

    def device_login(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        show: Callable[[str, str, str | None], None],
        scope: str = "service",
        sleep: Callable[[float], None] = time.sleep,
    ) -> str:
        """Log in by the OAuth 2.0 device authorization grant (RFC 8628): the service's
        authorization server (info's oauth2, its RFC 8414 metadata) gives a user code;
        ``show(verification_uri, user_code, verification_uri_complete)`` tells the user where
        to enter it; the token endpoint is polled at the interval it asks (5 s more at each
        slow_down) until she approves (the access token is kept and returned), denies or the
        code expires (CscError)."""
        meta = self._oauth2_metadata()
        auth = (client_id, client_secret) if client_secret else None
        who = {} if auth else {"client_id": client_id}
        name = "device_authorization"
        started = self._send(
            "POST",
            meta["device_authorization_endpoint"],
            name,
            data={**who, "scope": scope},
            auth=auth,
        )
        device_code, user_code = started.get("device_code"), started.get("user_code")
        uri, lifetime = started.get("verification_uri"), started.get("expires_in")
        if not all(isinstance(v, str) and v for v in (device_code, user_code, uri)) or not (
            isinstance(lifetime, int) and lifetime > 0
        ):
            raise CscError(
                200,
                "invalid_response",
                "no device_code, user_code, verification_uri or expires_in in the answer",
                method=name,
            )
        complete = started.get("verification_uri_complete")
        show(str(uri), str(user_code), complete if isinstance(complete, str) else None)
        interval = started.get("interval")
        wait = float(interval) if isinstance(interval, int) and 0 < interval <= 600 else 5.0
        deadline = time.monotonic() + lifetime
        poll = {**who, "grant_type": DEVICE_GRANT, "device_code": device_code}
        while True:
            sleep(wait)
            try:
                answer = self._send("POST", meta["token_endpoint"], "token", data=poll, auth=auth)
            except CscError as exc:
                if exc.error == "authorization_pending" and time.monotonic() < deadline:
                    continue
                if exc.error == "slow_down" and time.monotonic() < deadline:
                    wait += 5  # RFC 8628 3.5, for this and every later poll
                    continue
                raise _device_refusal(exc) from None
            token = answer.get("access_token")
            if not isinstance(token, str) or not token:
                raise CscError(200, "invalid_response", "no access_token", method="token")
            self.access_token = token
            return token

    def _oauth2_metadata(self) -> dict[str, str]:
        """The device and token endpoints of the service's authorization server."""
        issuer = self.info().get("oauth2")
        if not isinstance(issuer, str) or not issuer.startswith(("http://", "https://")):
            raise CscError(
                0,
                "unsupported",
                "the service has no OAuth 2.0 authorization server (info names no oauth2)",
                method="device_login",
            )
        url = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
        meta = self._send("GET", url, "oauth-authorization-server")
        wanted = ("device_authorization_endpoint", "token_endpoint")
        if not all(isinstance(meta.get(k), str) for k in wanted):
            raise CscError(
                0,
                "unsupported",
                "the service's authorization server offers no "
                "device authorization grant (RFC 8628)",
                method="device_login",
            )
        return {k: meta[k] for k in wanted}

    def revoke(self) -> None:
        if self.access_token:
            try:
                self.call("auth/revoke", {"token": self.access_token})
            finally:
                self.access_token = None

    def list_credentials(self, *, with_info: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if with_info:
            body.update(credentialInfo=True, certificates="single", certInfo=True, authInfo=True)
        return self.call("credentials/list", body)

    def credential_info(self, credential_id: str) -> dict[str, Any]:
        return self.call(
            "credentials/info",
            {
                "credentialID": credential_id,
                "certificates": "chain",
                "certInfo": True,
                "authInfo": True,
            },
        )

    def activate(self, credential_id: str, code: str, pin: str | None = None) -> dict[str, Any]:
        """Signet extension: activate a pending credential with the code mailed to its owner
        (and, for a PIN credential, set the PIN she chose)."""
        body = {"credentialID": credential_id, "activationCode": code}
        if pin is not None:
            body["PIN"] = pin
        return self.call("credentials/activate", body)

    def send_otp(self, credential_id: str) -> None:
        self.call("credentials/sendOTP", {"credentialID": credential_id})

    def authorize(
        self,
        credential_id: str,
        hashes: Sequence[bytes],
        hash_name: str,
        *,
        num_signatures: int = 1,
        factor: str = "",
        value: str = "",
    ) -> str:
        body: dict[str, Any] = {
            "credentialID": credential_id,
            "numSignatures": num_signatures,
            "hashes": [b64(h) for h in hashes],
            "hashAlgorithmOID": HASHES[hash_name].oid,
        }
        if factor:
            body["authData"] = [{"id": factor, "value": value}]
        data = self.call("credentials/authorize", body)
        sad = data.get("SAD")
        if not isinstance(sad, str) or not sad:
            raise CscError(
                200,
                "invalid_response",
                "credentials/authorize returned no SAD",
                method="credentials/authorize",
            )
        return sad

    def sign_hash(
        self,
        credential_id: str,
        sad: str,
        hashes: Sequence[bytes],
        hash_name: str,
        sign_algo: str,
        sign_algo_params: bytes | None = None,
    ) -> list[bytes]:
        body: dict[str, Any] = {
            "credentialID": credential_id,
            "SAD": sad,
            "hashes": [b64(h) for h in hashes],
            "hashAlgorithmOID": HASHES[hash_name].oid,
            "signAlgo": sign_algo,
        }
        if sign_algo_params is not None:
            body["signAlgoParams"] = b64(sign_algo_params)
        data = self.call("signatures/signHash", body)
        signatures = data.get("signatures")
        if (
            not isinstance(signatures, list)
            or len(signatures) != len(hashes)
            or not all(isinstance(s, str) for s in signatures)
        ):
            raise CscError(
                200,
                "invalid_response",
                f"signatures/signHash returned "
                f"{len(signatures) if isinstance(signatures, list) else 'no'} "
                f"signatures for {len(hashes)} hash(es)",
                method="signatures/signHash",
            )
        try:
            return [base64.b64decode(s, validate=True) for s in signatures]
        except ValueError as exc:
            raise CscError(
                200,
                "invalid_response",
                "signatures/signHash returned a signature that is not base64",
                method="signatures/signHash",
            ) from exc


def auth_factor(credential_info: dict[str, Any]) -> AuthFactor:
    """OTP or PIN from a v2 credentials/info answer (``authInfo: true``); v1-style
    ``PIN``/``OTP`` presence flags are understood too."""
    auth = credential_info.get("auth")
    if isinstance(auth, dict):
        objects = auth.get("objects") or []
        if auth.get("mode") == "implicit":
            return AuthFactor("")
        for item in objects:
            if not isinstance(item, dict):
                continue
            ident = str(item.get("id", ""))
            kind = str(item.get("type", ""))
            if ident.upper() == "OTP" or kind.upper() == "OTP":
                return AuthFactor(
                    "OTP", str(item.get("label") or "OTP"), str(item.get("generator") or "")
                )
            if ident.upper() == "PIN" or kind.lower() == "password":
                return AuthFactor("PIN", str(item.get("label") or "PIN"))
    otp = credential_info.get("OTP")
    if isinstance(otp, dict) and str(otp.get("presence")).lower() == "true":
        return AuthFactor("OTP", str(otp.get("label") or "OTP"))
    pin = credential_info.get("PIN")
    if isinstance(pin, dict) and str(pin.get("presence")).lower() == "true":
        return AuthFactor("PIN", str(pin.get("label") or "PIN"))
    return AuthFactor("")


def _device_refusal(exc: CscError) -> CscError:
    """A device login's end without a token, said for the user."""
    said = {
        "access_denied": "the login was denied in the browser",
        "expired_token": "the code expired before the login was approved; start again",
        "authorization_pending": "the code expired before the login was approved; start again",
        "slow_down": "the code expired before the login was approved; start again",
    }.get(exc.error)
    if said is None:
        return exc
    error = "access_denied" if exc.error == "access_denied" else "expired_token"
    return CscError(exc.status, error, said, method="device_login")


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        nxt = exc.__cause__ or exc.__context__
        assert nxt is not None
        exc = nxt
    text = str(exc)
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
