"""A Mobile ID device: its P-256 key, kept in a file encrypted under a key derived from the
user's PIN (the stand-in for a phone's keystore, where the key would be non-exportable and
unlocked by the PIN or a biometric), registration, and the signed calls to Signet."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signet.mobile.protocol import (
    approval_bytes,
    call_bytes,
    fingerprint,
    push_bytes,
    registration_bytes,
)

TIMEOUT = 10.0


class MobileError(Exception):
    """A call to Signet failed, or a request is not what this device may sign."""

    def __init__(self, description: str, *, status: int = 0, error: str = "") -> None:
        super().__init__(description + (f" ({error}, HTTP {status})" if status else ""))
        self.description, self.status, self.error = description, status, error


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class PendingRequest:
    """A request as the device shows it before the user decides."""

    raw: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.raw["requestID"])

    def describe(self) -> str:
        labels = ", ".join(self.raw["labels"]) or "(no document names given)"
        return (
            f"request {self.id} from {self.raw['origin']}\n"
            f"  credential  {self.raw['credentialID']}\n"
            f"  documents   {labels}\n"
            f"  signatures  {self.raw['numSignatures']}\n"
            f"  fingerprint {fingerprint(self.raw['hashes'])}\n"
            + (f"  description {self.raw['description']}\n" if self.raw["description"] else "")
            + f"  expires in  {self.raw.get('expiresIn', '?')} s"
        )


class Device:
    """One registered device: the server, the credential, its id and its key."""

    def __init__(
        self, server: str, credential_id: str, device_id: str, key: ec.EllipticCurvePrivateKey
    ) -> None:
        self.server = server.rstrip("/")
        self.credential_id, self.device_id, self._key = credential_id, device_id, key

    # -- the key file (the phone's keystore, simulated) ---------------------------------------
    @staticmethod
    def _public(key: ec.EllipticCurvePrivateKey) -> str:
        return _b64url(
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def save(self, path: str | Path, pin: str) -> None:
        """Write the device file: the key as PKCS#8 encrypted under the PIN (the library's best
        available scheme), mode 0600."""
        sealed = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(pin.encode()),
        ).decode()
        data = {
            "server": self.server,
            "credentialID": self.credential_id,
            "deviceID": self.device_id,
            "key": sealed,
        }
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)

    @classmethod
    def load(cls, path: str | Path, pin: str) -> Device:
        """The device of a device file, its key unlocked with the PIN."""
        data = json.loads(Path(path).read_text())
        try:
            key = serialization.load_pem_private_key(data["key"].encode(), pin.encode())
        except ValueError:
            raise MobileError("wrong PIN (the device key cannot be unlocked)") from None
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(data["server"], data["credentialID"], data["deviceID"], key)

    def _sign(self, data: bytes) -> str:
        return _b64url(self._key.sign(data, ec.ECDSA(hashes.SHA256())))

    # -- the calls ---------------------------------------------------------------------------
    @staticmethod
    def _post(server: str, path: str, body: dict[str, Any], timeout: float = TIMEOUT) -> Any:
        try:
            answer = requests.post(f"{server}/mobile/v1/{path}", json=body, timeout=timeout)
        except requests.RequestException as exc:
            raise MobileError(f"{path}: {server} not reached: {exc}") from exc
        try:
            data = answer.json()
        except ValueError:
            data = {}
        if answer.status_code != 200:
            raise MobileError(
                f"{path}: {data.get('error_description', answer.text[:200])}",
                status=answer.status_code,
                error=str(data.get("error", "")),
            )
        return data

    @classmethod
    def register(
        cls,
        server: str,
        credential_id: str,
        activation_code: str,
        *,
        label: str,
        attestation: str | None = None,
    ) -> Device:
        """Make a new P-256 key, have Signet register it for the credential (the activation
        code proves the user's enrolment, the signature over the challenge the key's
        possession). The caller saves the device under the user's PIN."""
        server = server.rstrip("/")
        key = ec.generate_private_key(ec.SECP256R1())
        issued = cls._post(server, "register/challenge", {"credentialID": credential_id})
        if issued["origin"] != server:
            raise MobileError(
                f"the service calls itself {issued['origin']}, not {server}: register with "
                "its own address"
            )
        public = cls._public(key)
        device = cls(server, credential_id, "", key)
        signature = device._sign(
            registration_bytes(
                credential_id=credential_id,
                challenge=issued["challenge"],
                public_key=public,
                label=label,
                origin=server,
            )
        )
        done = cls._post(
            server,
            "register",
            {
                "credentialID": credential_id,
                "activationCode": activation_code,
                "challenge": issued["challenge"],
                "publicKey": public,
                "label": label,
                "attestation": attestation,
                "signature": signature,
            },
        )
        device.device_id = done["deviceID"]
        return device

    def pending(self, wait: int = 0) -> list[PendingRequest]:
        """The requests waiting for this device; `wait` seconds held open for one to come."""
        stamp = int(time.time())
        signature = self._sign(
            call_bytes(
                call="pending", device_id=self.device_id, timestamp=stamp, origin=self.server
            )
        )
        data = self._post(
            self.server,
            "pending",
            {"deviceID": self.device_id, "timestamp": stamp, "wait": wait, "signature": signature},
            timeout=TIMEOUT + wait,
        )
        return [PendingRequest(r) for r in data["requests"]]

    def subscribe_push(self, subscription: dict[str, Any] | None) -> bool:
        """Tell Signet where Web Push reaches this device (the PushSubscription the phone's
        browser or OS gave, {endpoint, keys: {p256dh, auth}}), or stop with None."""
        keys = subscription.get("keys") if subscription is not None else {}
        if subscription is not None and not (
            isinstance(keys, dict)
            and "endpoint" in subscription
            and {"p256dh", "auth"} <= set(keys)
        ):
            raise MobileError("subscription: {endpoint, keys: {p256dh, auth}} (W3C Push API)")
        stamp = int(time.time())
        signature = self._sign(
            push_bytes(
                device_id=self.device_id,
                timestamp=stamp,
                origin=self.server,
                subscription=subscription,
            )
        )
        data = self._post(
            self.server,
            "push",
            {
                "deviceID": self.device_id,
                "timestamp": stamp,
                "subscription": subscription,
                "signature": signature,
            },
        )
        return bool(data["subscribed"])

    def push_key(self) -> str:
        """The service's VAPID public key (the applicationServerKey to subscribe with)."""
        return str(self._post(self.server, "push/key", {})["applicationServerKey"])

    def _check(self, request: PendingRequest) -> None:
        """A request this device signs only if it is for its own service and credential."""
        if request.raw["origin"] != self.server:
            raise MobileError(
                f"request {request.id} names the service {request.raw['origin']}, not "
                f"{self.server}: refused"
            )
        if request.raw["credentialID"] != self.credential_id:
            raise MobileError(f"request {request.id} is for another credential: refused")

    def approve(self, request: PendingRequest) -> str:
        self._check(request)
        return self.decide(request.raw, "approve")

    def deny(self, request: PendingRequest) -> str:
        self._check(request)
        return self.decide(request.raw, "deny")

    def decide(self, request: dict[str, Any], decision: str) -> str:
        """Sign the request's canonical bytes with the decision and send it; the new state."""
        body = {
            "deviceID": self.device_id,
            "requestID": request["requestID"],
            "signature": self._sign(approval_bytes(request, decision)),
        }
        return str(self._post(self.server, decision, body)["state"])
