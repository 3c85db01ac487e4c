"""Web Push to Mobile ID devices: a small message encrypted for the device's subscription
(RFC 8291: ECDH, HKDF and AES-128-GCM from `cryptography`, one aes128gcm record of RFC 8188),
the push service told who sends it by a VAPID token signed with the operator's key (RFC 8292,
by jwcrypto), posted to the subscription's endpoint (RFC 8030)."""

from __future__ import annotations

import base64
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwcrypto import jwk, jwt

from signet.config import WebPushSettings
from signet.notify import DeliveryError

# RFC 8292 section 2: a token lives at most 24 hours; a fresh one every 12 is plenty.
_TOKEN_LIFETIME = 12 * 3600
# RFC 8030 5.2: the answers that say the subscription is gone for good.
GONE = (404, 410)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def encrypt(
    plaintext: bytes,
    p256dh: bytes,
    auth: bytes,
    *,
    salt: bytes | None = None,
    sender: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The message body for a subscription (RFC 8291 section 3.4): one aes128gcm record
    (RFC 8188 section 2) whose header carries the salt and the sender's ephemeral public key.
    `salt` and `sender` are fresh unless given (the RFC's example in the unit test gives them)."""
    salt = os.urandom(16) if salt is None else salt
    sender = ec.generate_private_key(ec.SECP256R1()) if sender is None else sender
    receiver = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    sender_point = _point(sender.public_key())
    shared = sender.exchange(ec.ECDH(), receiver)
    ikm = HKDF(hashes.SHA256(), 32, auth, b"WebPush: info\x00" + p256dh + sender_point).derive(
        shared
    )
    cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)
    # one record, the last: the content, its delimiter 0x02, no padding
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    record_size = max(4096, len(record) + 1)
    return (
        salt + record_size.to_bytes(4, "big") + bytes([len(sender_point)]) + sender_point + record
    )


@dataclass(frozen=True)
class Subscription:
    """A PushSubscription as the device's browser or OS gave it (W3C Push API)."""

    endpoint: str
    p256dh: str  # base64url, the uncompressed P-256 point (65 bytes)
    auth: str  # base64url, 16 bytes


def subscription_problem(endpoint: str, p256dh: str, auth: str) -> str | None:
    """Why these cannot be a push subscription, or None."""
    try:
        parts = urlsplit(endpoint)
        loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    except ValueError:  # e.g. an unclosed [IPv6] host
        return "subscription.endpoint: an absolute URL of at most 2048 characters"
    if len(endpoint) > 2048 or not parts.netloc or parts.fragment:
        return "subscription.endpoint: an absolute URL of at most 2048 characters"
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        return "subscription.endpoint: https:// (RFC 8030 8: push services use TLS)"
    try:
        point, secret = unb64url(p256dh), unb64url(auth)
    except ValueError:
        return "subscription.keys: base64url p256dh and auth"
    if len(secret) != 16:
        return "subscription.keys.auth: 16 bytes, base64url (RFC 8291 3.2)"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return "subscription.keys.p256dh: an uncompressed P-256 point, base64url (RFC 8291 3.1)"
    return None


class WebPushSender:
    """Sends for one process: the VAPID key read once, a token per push service reused while
    fresh, one HTTP session."""

    def __init__(self, settings: WebPushSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._session = requests.Session()
        try:
            pem = Path(settings.vapid_key_file).read_bytes()
            key = serialization.load_pem_private_key(pem, None)
        except (OSError, ValueError, TypeError) as exc:
            raise DeliveryError(
                f"notify.web_push.vapid_key_file: cannot load a P-256 key from "
                f"{settings.vapid_key_file}: {exc}"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise DeliveryError("notify.web_push.vapid_key_file: the VAPID key must be P-256")
        self._jwk = jwk.JWK.from_pem(pem)
        self.public_key = b64url(_point(key.public_key()))

    def _vapid(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        with self._lock:
            cached = self._tokens.get(audience)
            if cached is not None and cached[1] - now > 3600:
                return cached[0]
        expires = int(now) + _TOKEN_LIFETIME
        token = jwt.JWT(
            header={"typ": "JWT", "alg": "ES256"},
            claims={"aud": audience, "exp": expires, "sub": self._settings.contact},
        )
        token.make_signed_token(self._jwk)
        value = token.serialize()
        with self._lock:
            self._tokens[audience] = (value, expires)
        return value

    def send(self, subscription: Subscription, payload: bytes) -> int:
        """Post one message; the push service's status (201 accepted; 404/410: the
        subscription is gone). A network failure raises DeliveryError."""
        body = encrypt(payload, unb64url(subscription.p256dh), unb64url(subscription.auth))
        headers = {
            "Authorization": f"vapid t={self._vapid(subscription.endpoint)}, k={self.public_key}",
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self._settings.ttl_seconds),
            "Urgency": "high",
        }
        try:
            answer = self._session.post(
                subscription.endpoint,
                data=body,
                headers=headers,
                timeout=self._settings.timeout_seconds,
            )
        except requests.RequestException as exc:
            host = urlsplit(subscription.endpoint).netloc
            raise DeliveryError(f"Web Push: {host} not reached: {type(exc).__name__}") from None
        return answer.status_code
