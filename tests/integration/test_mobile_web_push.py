"""Web Push to a Mobile ID device over real HTTP (gunicorn), on each engine: the device
subscribes with a signed call, credentials/authorize makes Signet post to a push service on
loopback, and the test — as the push service and as the phone — checks the VAPID token
(RFC 8292) against the key Signet publishes and decrypts the message itself (RFC 8291,
written here from the RFC with `cryptography`, not with the library Signet uses); the phone
then approves and the signature verifies. A gone subscription is dropped, an unreachable push
service does not hold up authorize, and bad subscriptions are refused."""

import base64
import hashlib
import json
import os
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from signet.mobile import Device, MobileError
from signet.signing import admin
from signet.store import AuditRecord, MobilePushSubscription
from tests.helpers import activation_code_in_mail, port_in, signet_server

PASSWORD = "correct horse battery"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
CONTACT = "mailto:operator@signet.test"


def my_port() -> int:
    return port_in(range(57000, 57050))  # this test's own ports


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def events(services, name):
    with services.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.outcome, AuditRecord.details)
            .where(AuditRecord.event == name)
            .order_by(AuditRecord.seq)
        ).all()
    return [(outcome, json.loads(details)) for outcome, details in rows]


class PushService:
    """A push service on loopback (RFC 8030 5): records each message; /gone/... answers 410."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                outer.arrived.set()
                self.send_response(410 if self.path.startswith("/gone") else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = my_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, timeout: float = 15) -> dict:
        assert self.arrived.wait(timeout), "no message reached the push service"
        self.arrived.clear()
        return self.received[-1]


class Phone:
    """The phone's push subscription: its ECDH key and auth secret (RFC 8291 3)."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = secrets.token_bytes(16)
        self.public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": b64url(self.public), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3.4 and RFC 8188 section 2 (one record)."""
        salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender = body[21 : 21 + idlen]
        ciphertext = body[21 + idlen :]
        assert idlen == 65 and rs >= len(ciphertext)
        shared = self.key.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        )
        info = b"WebPush: info\x00" + self.public + sender
        ikm = HKDF(hashes.SHA256(), 32, self.auth, info).derive(shared)
        cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
        nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None).rstrip(b"\x00")
        assert padded.endswith(b"\x02"), "not the last record's delimiter"
        return padded[:-1]


def check_vapid(headers: dict, audience: str, vapid_public: str) -> dict:
    """RFC 8292 section 3: `vapid t=<JWT>, k=<key>`; the JWT is ES256 under k."""
    scheme, _, params = headers["Authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == vapid_public
    head, payload, signature = fields["t"].split(".")
    assert json.loads(unb64url(head)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    key.verify(
        utils.encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        ),
        f"{head}.{payload}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    claims = json.loads(unb64url(payload))
    assert claims["aud"] == audience and claims["sub"] == CONTACT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


@pytest.fixture
def world(services, settings_env, tmp_path):
    """Alice with a Mobile ID credential, a VAPID key, a push service and a Signet server."""
    vapid = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "vapid.pem"
    key_file.write_bytes(
        vapid.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    admin.add_user(
        services,
        "alice",
        password=PASSWORD,
        display_name="Alice",
        email="alice@example.test",
        actor="test",
    )
    view = admin.create_credential(
        services, "alice", key="ec-p256", actor="test", activation="mobile_id", policy="qualified"
    )
    env = {
        **os.environ,
        **settings_env,
        "SIGNET_NOTIFY__WEB_PUSH__VAPID_KEY_FILE": str(key_file),
        "SIGNET_NOTIFY__WEB_PUSH__CONTACT": CONTACT,
    }
    push = PushService()
    with signet_server(env=env, workers=2, port=my_port) as url:
        code = activation_code_in_mail(services.settings.notify.maildir, view.credential_id)
        device = Device.register(url, view.credential_id, code, label="Alice's phone")
        vapid_public = b64url(
            vapid.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        yield {
            "url": url,
            "credential": view.credential_id,
            "device": device,
            "push": push,
            "vapid": vapid_public,
        }
    push.server.shutdown()


def login(url):
    session = requests.Session()
    answer = session.post(f"{url}/csc/v2/auth/login", auth=("alice", PASSWORD), timeout=30)
    assert answer.status_code == 200, answer.text
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return session


def authorize(session, url, credential_id, digests):
    answer = session.post(
        f"{url}/csc/v2/credentials/authorize",
        json={
            "credentialID": credential_id,
            "numSignatures": len(digests),
            "hashes": [base64.b64encode(d).decode() for d in digests],
            "hashAlgorithmOID": SHA256,
            "signet_labels": ["lease.pdf"],
        },
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["status"] == "pending", answer.text
    return answer.json()["authorizationID"]


def test_a_request_is_pushed_encrypted_and_approved(services, world):
    url, device, push = world["url"], world["device"], world["push"]
    assert device.push_key() == world["vapid"]
    phone = Phone(push.url("/push/alice-phone"))
    assert device.subscribe_push(phone.subscription) is True
    ((_, subscribed),) = events(services, "mobile.push_subscribed")
    assert subscribed["device"] == device.device_id
    assert subscribed["push_service"] == f"127.0.0.1:{push.port}"

    session = login(url)
    digest = hashlib.sha256(b"lease").digest()
    request_id = authorize(session, url, world["credential"], [digest])

    message = push.wait()
    assert message["path"] == "/push/alice-phone"
    headers = message["headers"]
    assert headers["Content-Encoding"] == "aes128gcm" and headers["TTL"] == "120"
    assert headers["Urgency"] == "high"
    check_vapid(headers, f"http://127.0.0.1:{push.port}", world["vapid"])
    payload = json.loads(phone.decrypt(message["body"]))
    # a nudge: the request's id and nothing of what is signed
    assert payload == {"type": "signet-mobile-push/1", "requestID": request_id}

    (shown,) = device.pending()
    assert shown.id == request_id
    device.approve(shown)
    collected = session.post(
        f"{url}/csc/v2/credentials/authorizeCheck",
        json={"credentialID": world["credential"], "authorizationID": request_id},
        timeout=30,
    )
    assert collected.status_code == 200, collected.text
    signed = session.post(
        f"{url}/csc/v2/signatures/signHash",
        json={
            "credentialID": world["credential"],
            "SAD": collected.json()["SAD"],
            "hashes": [base64.b64encode(digest).decode()],
            "hashAlgorithmOID": SHA256,
            "signAlgo": ECDSA_SHA256,
        },
        timeout=30,
    )
    assert signed.status_code == 200, signed.text
    info = session.post(
        f"{url}/csc/v2/credentials/info",
        json={"credentialID": world["credential"], "certInfo": True},
        timeout=30,
    )
    cert = x509.load_der_x509_certificate(base64.b64decode(info.json()["cert"]["certificates"][0]))
    cert.public_key().verify(
        base64.b64decode(signed.json()["signatures"][0]),
        digest,
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )
    pushed = events(services, "mobile.push")
    assert pushed[-1][0] == "success" and pushed[-1][1]["status"] == 201
    assert pushed[-1][1]["request"] == request_id


def test_gone_unreachable_and_bad_subscriptions(services, world):
    url, device, push = world["url"], world["device"], world["push"]
    session = login(url)

    # the push service says the subscription is gone: Signet forgets it
    assert device.subscribe_push(Phone(push.url("/gone/old-phone")).subscription)
    request_id = authorize(session, url, world["credential"], [hashlib.sha256(b"a").digest()])
    push.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with services.database.transaction(read_only=True) as s:
            if s.get(MobilePushSubscription, device.device_id) is None:
                break
        time.sleep(0.2)
    else:
        pytest.fail("the gone subscription was kept")
    outcome, details = events(services, "mobile.push")[-1]
    assert outcome == "failure" and details["status"] == 410
    assert details["reason"] == "subscription gone" and details["request"] == request_id

    # an unreachable push service does not hold up authorize; the failure is recorded
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert device.subscribe_push(Phone(f"http://127.0.0.1:{closed}/push/x").subscription)
    started = time.monotonic()
    authorize(session, url, world["credential"], [hashlib.sha256(b"b").digest()])
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "not reached" not in str(
        events(services, "mobile.push")[-1]
    ):
        time.sleep(0.2)
    outcome, details = events(services, "mobile.push")[-1]
    assert outcome == "failure" and "not reached" in details["reason"]

    # bad subscriptions are refused with the field named; null unsubscribes
    good = Phone(push.url("/push/y")).subscription
    for bad, named in (
        ({**good, "endpoint": "http://push.example/x"}, "https://"),
        ({**good, "endpoint": "https://[::1/x"}, "endpoint"),
        ({**good, "keys": {**good["keys"], "p256dh": b64url(b"\x04" + b"\x01" * 64)}}, "p256dh"),
        ({**good, "keys": {**good["keys"], "auth": b64url(b"short")}}, "auth"),
    ):
        with pytest.raises(MobileError, match=named) as refused:
            device.subscribe_push(bad)
        assert refused.value.status == 400
    shapeless = requests.post(
        f"{url}/mobile/v1/push",
        json={
            "deviceID": device.device_id,
            "timestamp": int(time.time()),
            "subscription": {"endpoint": good["endpoint"]},
            "signature": "AAAA",
        },
        timeout=30,
    )
    assert shapeless.status_code == 400 and "keys" in shapeless.json()["error_description"]
    # a signature over another subscription is not this call's
    stamp = int(time.time())
    from signet.mobile.protocol import push_bytes

    forged = requests.post(
        f"{url}/mobile/v1/push",
        json={
            "deviceID": device.device_id,
            "timestamp": stamp,
            "subscription": good,
            "signature": device._sign(
                push_bytes(
                    device_id=device.device_id, timestamp=stamp, origin=url, subscription=None
                )
            ),
        },
        timeout=30,
    )
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    assert events(services, "mobile.call_refused")
    assert device.subscribe_push(None) is False
    with services.database.transaction(read_only=True) as s:
        assert s.get(MobilePushSubscription, device.device_id) is None


def test_without_web_push_the_service_says_so(services, settings_env):
    with signet_server(env={**os.environ, **settings_env}, workers=1, port=my_port) as url:
        answer = requests.post(f"{url}/mobile/v1/push/key", json={}, timeout=30)
        assert answer.status_code == 400
        assert "Web Push is not configured" in answer.json()["error_description"]
