"""Mobile ID after registration: the registered phone is told of requests (long-poll
`pending`), approves or denies each with a signature over its canonical bytes, and the CSC
client collects the SAD with credentials/authorizeCheck — one request, one SAD. Every refusal
is audited (docs/mobile-id.md; registration is `signing.mobile_registration`)."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select, update

from signet.auth.tokens import Principal
from signet.errors import AccessDenied, InvalidRequest
from signet.events import append_event
from signet.sam import IntegrityViolation, check_credential, issue_sad
from signet.sam import mobile as trust
from signet.sam import passkey as passkey_trust
from signet.signing.context import Services
from signet.signing.csc import ensure_usable, signing_credential
from signet.signing.mobile_registration import string_param
from signet.signing.mobile_requests import MobileRefused, Pending, now, refusals_recorded
from signet.store import Credential, MobileDevice, MobileRequest

CLOCK_SKEW_SECONDS = 60


# -- the device's calls ----------------------------------------------------------------------
def _device(session: Any, services: Services, device_id: str) -> MobileDevice:
    device = session.get(MobileDevice, device_id)
    if device is None or device.kind != "mobile":
        raise InvalidRequest("Invalid parameter deviceID")
    if not trust.device_intact(services.hsm, device):
        raise IntegrityViolation(
            f"The record of device {device_id} fails its integrity check (not written by the "
            "SAM); it is refused"
        )
    if device.status != "active":
        raise AccessDenied(f"The device {device_id} is {device.status}")
    return device


def call_bytes(*, call: str, device_id: str, timestamp: int, origin: str) -> bytes:
    """What a device signs to authenticate a call that carries no request (docs/mobile-id.md)."""
    return trust.canonical(
        {
            "type": trust.CALL_TYPE,
            "call": call,
            "deviceID": device_id,
            "timestamp": timestamp,
            "origin": origin,
        }
    )


def _shown(request: MobileRequest, origin: str) -> dict[str, Any]:
    structure = trust.request_structure(request, "approve")
    for key in ("type", "decision"):
        structure.pop(key)
    structure["fingerprint"] = fingerprint(structure["hashes"])
    structure["expiresIn"] = max(0, int(trust.epoch_seconds(request.expires_at) - time.time()))
    return structure


def fingerprint(hashes_b64url: list[str]) -> str:
    """The fingerprint of the hashes the phone shows (the same as the OTP mail's)."""
    from signet.sam.codes import Request

    return Request.of(
        hashes=hashes_b64url, hash_algorithm=None, num_signatures=1, description=None, labels=()
    ).fingerprint()


def pending_requests(
    services: Services,
    *,
    device_id: Any,
    timestamp: Any,
    signature: Any,
    wait: Any,
    origin: str,
) -> list[dict[str, Any]]:
    """The requests waiting for this device; with `wait` seconds (at most sam.mobile_poll_
    seconds), held open until one arrives. No transaction is held while waiting."""
    device_id = string_param(device_id, "deviceID", 32)
    signature = string_param(signature, "signature", 1024)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InvalidRequest("Missing (or invalid type) integer parameter timestamp")
    if wait is None:
        wait = 0
    if isinstance(wait, bool) or not isinstance(wait, int) or wait < 0:
        raise InvalidRequest("Invalid parameter wait: whole seconds, 0 or more")
    if abs(time.time() - timestamp) > CLOCK_SKEW_SECONDS:
        raise InvalidRequest(
            f"Invalid parameter timestamp: more than {CLOCK_SKEW_SECONDS} s from the "
            "service's clock; set the device's clock"
        )
    with refusals_recorded(services, f"device {device_id}", device_id):
        with services.database.transaction(read_only=True) as session:
            device = _device(session, services, device_id)
            key = trust.load_device_key(device.public_key)
        signed = call_bytes(call="pending", device_id=device_id, timestamp=timestamp, origin=origin)
        if not trust.signature_verifies(key, signature, signed):
            raise MobileRefused(
                "Invalid parameter signature: not this device's signature of the call",
                event="mobile.call_refused",
                status=401,
                error="invalid_token",
            )
    deadline = time.monotonic() + min(wait, services.settings.sam.mobile_poll_seconds)
    while True:
        found = _waiting(services, device_id, origin)
        left = deadline - time.monotonic()
        if found or left <= 0:
            return found
        # Woken at once by a request made in this process; another node's is found by the
        # next look (at most a second later).
        services.push.wait(device_id, min(left, 1.0))


def _waiting(services: Services, device_id: str, origin: str) -> list[dict[str, Any]]:
    with services.database.transaction(read_only=True) as session:
        rows = (
            session.execute(
                select(MobileRequest)
                .where(
                    MobileRequest.device_id == device_id,
                    MobileRequest.state == "pending",
                    MobileRequest.expires_at > now(),
                )
                .order_by(MobileRequest.created_at, MobileRequest.id)
                .limit(20)
            )
            .scalars()
            .all()
        )
        # A request whose MAC fails is not shown: the decision on it would be refused anyway.
        return [_shown(r, origin) for r in rows if trust.request_intact(services.hsm, r)]


_DECIDED = {"approve": ("approved", "mobile.approved"), "deny": ("denied", "mobile.denied")}


def decide(
    services: Services, *, device_id: Any, request_id: Any, decision: str, signature: Any
) -> str:
    """The device approves or denies a request with its signature over the request's canonical
    bytes (decision included). Once only: a second decision, or one after the request
    expired, is refused as a replay. Returns the request's new state."""
    device_id = string_param(device_id, "deviceID", 32)
    request_id = string_param(request_id, "requestID", 32)
    signature = string_param(signature, "signature", 1024)
    state, event = _DECIDED[decision]
    expired = False
    with (
        refusals_recorded(services, f"device {device_id}", request_id, device=device_id),
        services.database.transaction() as session,
    ):
        device = _device(session, services, device_id)
        request = session.get(MobileRequest, request_id)
        if request is None or request.device_id != device.id:
            raise InvalidRequest("Invalid parameter requestID")
        if not trust.request_intact(services.hsm, request):
            raise IntegrityViolation(
                f"The record of Mobile ID request {request_id} fails its integrity check "
                "(not written by the SAM); it cannot be approved"
            )
        credential = session.get(Credential, request.credential_id)
        assert credential is not None
        check_credential(services.hsm, credential)
        ensure_usable(credential)
        if not trust.decision_verifies(services.hsm, device, request, decision, signature):
            raise MobileRefused(
                "Invalid parameter signature: not this device's signature of this request "
                f"({decision}); the device must sign exactly the request it was shown",
                event="mobile.signature_invalid",
            )
        if request.state != "pending":
            raise MobileRefused(
                f"The request is {request.state} already: each request is decided once",
                event="mobile.replay",
                status=409,
            )
        if trust.epoch_seconds(request.expires_at) <= time.time():
            expired = True
        else:
            done = session.execute(
                update(MobileRequest)
                .where(MobileRequest.id == request_id, MobileRequest.state == "pending")
                .values(state=state, approval=signature, decided_at=now())
                .returning(MobileRequest.id)
            ).first()
            if done is None:
                raise MobileRefused(
                    "The request was decided already: each request is decided once",
                    event="mobile.replay",
                    status=409,
                )
            append_event(
                session,
                event,
                actor=f"device {device_id}",
                subject=request.credential_id,
                request=request_id,
                outcome="success" if decision == "approve" else "failure",
            )
            return state
    assert expired
    expire(services, request_id, f"device {device_id}")
    raise InvalidRequest("The request has expired; the signer must authorize again")


def expire(services: Services, request_id: str, actor: str) -> None:
    """Mark a pending request past its time expired, and record it (once)."""
    with services.database.transaction() as session:
        row = session.execute(
            update(MobileRequest)
            .where(MobileRequest.id == request_id, MobileRequest.state == "pending")
            .values(state="expired", decided_at=now())
            .returning(MobileRequest.credential_id)
        ).first()
        if row is not None:
            append_event(
                session,
                "mobile.expired",
                actor=actor,
                subject=row.credential_id,
                request=request_id,
                outcome="failure",
            )


# -- credentials/authorizeCheck --------------------------------------------------------------
def authorize_check(
    services: Services, principal: Principal, *, credential_id: Any, authorization_id: Any
) -> tuple[str, int] | Pending:
    """The SAD of an approved request (once), or `Pending`; a denied, expired or collected
    request is refused. The device's signature is verified again here, against the sealed
    device and the MACed request: a state set to approved by anyone else gives nothing."""
    authorization_id = string_param(authorization_id, "authorizationID", 32)
    expired = False
    with (
        refusals_recorded(services, principal.username, credential_id, request=authorization_id),
        services.database.transaction() as session,
    ):
        credential = signing_credential(
            session.connection(), services.hsm, principal, credential_id
        )
        request = session.get(MobileRequest, authorization_id)
        if (
            request is None
            or request.user_id != principal.user_id
            or request.credential_id != credential.id
        ):
            raise InvalidRequest("Invalid parameter authorizationID")
        if not trust.request_intact(services.hsm, request):
            raise IntegrityViolation(
                f"The record of Mobile ID request {authorization_id} fails its integrity "
                "check (not written by the SAM); it gives no SAD"
            )
        if request.state == "pending":
            left = int(trust.epoch_seconds(request.expires_at) - time.time())
            if left > 0:
                return Pending(authorization_id, left)
            expired = True
        elif request.state == "denied":
            raise AccessDenied("The signer denied the request on her device")
        elif request.state == "expired":
            raise InvalidRequest("The request has expired; authorize again")
        elif request.state != "approved":
            raise MobileRefused(
                "The SAD of this request was issued already: one request gives one SAD",
                event="mobile.replay",
            )
        else:
            return _issue(services, session, principal, credential, request)
    assert expired
    expire(services, authorization_id, principal.username)
    raise InvalidRequest("The request has expired unanswered; authorize again")


def _issue(
    services: Services, session: Any, principal: Principal, credential: Any, request: Any
) -> tuple[str, int]:
    device = session.get(MobileDevice, request.device_id)
    if device is None or not _approval_holds(services, device, request):
        raise IntegrityViolation(
            f"Mobile ID request {request.id} is marked approved without its device's valid "
            "signature; it gives no SAD"
        )
    taken = session.execute(
        update(MobileRequest)
        .where(MobileRequest.id == request.id, MobileRequest.state == "approved")
        .values(state="issued")
        .returning(MobileRequest.id)
    ).first()
    if taken is None:  # a parallel authorizeCheck collected it first
        raise MobileRefused(
            "The SAD of this request was issued already: one request gives one SAD",
            event="mobile.replay",
        )
    return issue_sad(
        session,
        services.hsm,
        user_id=principal.user_id,
        username=principal.username,
        credential=credential,
        hashes=request.hashes.split("\n") if request.hashes else [],
        hash_oid=request.hash_algorithm,
        count=request.num_signatures,
        lifetime_seconds=services.settings.sam.sad_lifetime_seconds,
        assurance={**json.loads(request.assurance), "mobile_request": request.id},
    )


def _approval_holds(services: Services, device: MobileDevice, request: MobileRequest) -> bool:
    """Whether the stored approval is the device's over exactly this request: a phone's
    signature, or a passkey's assertion (docs/passkeys.md), verified again here."""
    if device.kind == passkey_trust.KIND:
        rp_id = passkey_trust.rp_id_for(services.settings.sam.passkey_rp_id, request.origin)
        return (
            passkey_trust.assertion_verifies(
                services.hsm, device, request, "approve", request.approval, rp_id
            )
            is not None
        )
    return trust.decision_verifies(services.hsm, device, request, "approve", request.approval)
