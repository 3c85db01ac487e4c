"""The Mobile ID device channel under /mobile/v1: registration with the activation code, the
long-poll `pending` call, and approve/deny, each authenticated by the device key's signature
(docs/mobile-id.md). Every answer is JSON; a refusal is CSC error JSON."""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from signet.signing import mobile as usecase
from signet.signing import mobile_push, mobile_registration
from signet.web import openapi
from signet.web.csc import ERRORS, origin
from signet.web.openapi import OPTIONAL_STRING, STRING, enum, obj, operation, with_description
from signet.web.params import Params, body, services

blueprint = Blueprint("mobile", __name__, url_prefix="/mobile/v1")
openapi.tag(blueprint, "Mobile ID device channel")

DEVICE_ERRORS = {
    **ERRORS,
    "401": "the device's signature of the call does not verify",
    "403": "a refusal of the SAM: a device or request record it did not write, a locked credential",
    "409": "the request was decided already (a replay)",
}
SIGNATURE = with_description(STRING, "base64url DER ECDSA P-256 SHA-256 signature")
INTEGER = {"type": "integer"}


@operation(
    "A registration challenge for a pending Mobile ID credential",
    request=obj(required=("credentialID",), credentialID=STRING),
    answer=obj(
        required=("challenge", "origin", "expiresIn"),
        challenge=STRING,
        origin=STRING,
        expiresIn=INTEGER,
    ),
    errors=ERRORS,
    auth=(),
)
def challenge_view() -> ResponseReturnValue:
    params = Params(body())
    issued = mobile_registration.registration_challenge(services(), params.get("credentialID"))
    return jsonify(
        {"challenge": issued.challenge, "origin": origin(), "expiresIn": issued.expires_in}
    )


@operation(
    "Register the device's P-256 key for the credential with its activation code; the "
    "device signs the registration bytes (docs/mobile-id.md)",
    request=obj(
        required=("credentialID", "activationCode", "challenge", "publicKey", "label", "signature"),
        credentialID=STRING,
        activationCode=STRING,
        challenge=STRING,
        publicKey=with_description(STRING, "base64url DER SubjectPublicKeyInfo, P-256"),
        label=STRING,
        attestation=with_description(OPTIONAL_STRING, "base64, kept, not verified"),
        signature=SIGNATURE,
    ),
    answer=obj(
        required=("deviceID", "credentialID", "status"),
        deviceID=STRING,
        credentialID=STRING,
        status=enum("active"),
    ),
    errors={**ERRORS, "403": DEVICE_ERRORS["403"]},
    auth=(),
)
def register_view() -> ResponseReturnValue:
    params = Params(body())
    done = mobile_registration.register_device(
        services(),
        credential_id=params.get("credentialID"),
        activation_code=params.get("activationCode"),
        challenge=params.get("challenge"),
        public_key=params.get("publicKey"),
        label=params.get("label"),
        attestation=params.get("attestation"),
        signature=params.get("signature"),
        origin=origin(),
    )
    return jsonify(
        {"deviceID": done.device_id, "credentialID": done.credential_id, "status": "active"}
    )


@operation(
    "The requests waiting for this device; with wait, held open until one arrives (at most "
    "sam.mobile_poll_seconds)",
    request=obj(
        required=("deviceID", "timestamp", "signature"),
        deviceID=STRING,
        timestamp=with_description(INTEGER, "Unix seconds, within 60 s of the service"),
        wait=with_description({"type": "integer", "minimum": 0}, "seconds to wait"),
        signature=SIGNATURE,
    ),
    answer=obj(required=("requests",), requests={"type": "array", "items": obj()}),
    errors=DEVICE_ERRORS,
    auth=(),
)
def pending_view() -> ResponseReturnValue:
    params = Params(body())
    found = usecase.pending_requests(
        services(),
        device_id=params.get("deviceID"),
        timestamp=params.get("timestamp"),
        signature=params.get("signature"),
        wait=params.get("wait"),
        origin=origin(),
    )
    return jsonify({"requests": found})


DECISION = obj(
    required=("deviceID", "requestID", "signature"),
    deviceID=STRING,
    requestID=STRING,
    signature=SIGNATURE,
)
DECIDED = obj(required=("requestID", "state"), requestID=STRING, state=STRING)


def _decide(decision: str) -> ResponseReturnValue:
    params = Params(body())
    state = usecase.decide(
        services(),
        device_id=params.get("deviceID"),
        request_id=params.get("requestID"),
        decision=decision,
        signature=params.get("signature"),
    )
    return jsonify({"requestID": params.get("requestID"), "state": state})


@operation(
    "Approve a request: the device's signature over its canonical bytes (decision approve)",
    request=DECISION,
    answer=DECIDED,
    errors=DEVICE_ERRORS,
    auth=(),
)
def approve_view() -> ResponseReturnValue:
    return _decide("approve")


@operation(
    "Deny a request: the device's signature over its canonical bytes (decision deny)",
    request=DECISION,
    answer=DECIDED,
    errors=DEVICE_ERRORS,
    auth=(),
)
def deny_view() -> ResponseReturnValue:
    return _decide("deny")


@operation(
    "The VAPID public key (applicationServerKey) a device subscribes to Web Push with",
    request=obj(),
    answer=obj(required=("applicationServerKey",), applicationServerKey=STRING),
    errors=ERRORS,
    auth=(),
)
def push_key_view() -> ResponseReturnValue:
    return jsonify({"applicationServerKey": mobile_push.application_server_key(services())})


@operation(
    "Set where Web Push reaches this device (its PushSubscription), or clear it with null; "
    "signed by the device (docs/mobile-id.md)",
    request=obj(
        required=("deviceID", "timestamp", "subscription", "signature"),
        deviceID=STRING,
        timestamp=with_description(INTEGER, "Unix seconds, within 60 s of the service"),
        subscription={
            "type": "object",
            "nullable": True,
            "description": "{endpoint, keys: {p256dh, auth}} as the W3C Push API gives it",
        },
        signature=SIGNATURE,
    ),
    answer=obj(required=("subscribed",), subscribed={"type": "boolean"}),
    errors=DEVICE_ERRORS,
    auth=(),
)
def push_view() -> ResponseReturnValue:
    params = Params(body())
    subscribed = mobile_push.subscribe(
        services(),
        device_id=params.get("deviceID"),
        timestamp=params.get("timestamp"),
        subscription=params.get("subscription"),
        signature=params.get("signature"),
        origin=origin(),
    )
    return jsonify({"subscribed": subscribed})


blueprint.add_url_rule("/register/challenge", "challenge", challenge_view, methods=["POST"])
blueprint.add_url_rule("/register", "register", register_view, methods=["POST"])
blueprint.add_url_rule("/pending", "pending", pending_view, methods=["POST"])
blueprint.add_url_rule("/approve", "approve", approve_view, methods=["POST"])
blueprint.add_url_rule("/deny", "deny", deny_view, methods=["POST"])
blueprint.add_url_rule("/push/key", "push_key", push_key_view, methods=["POST"])
blueprint.add_url_rule("/push", "push", push_view, methods=["POST"])


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
