"""Passkey approval: the page's view of a request waiting on a passkey credential, and the
approve or deny decision made with a WebAuthn assertion over the request's challenge. The
request, its MAC and authorizeCheck are Mobile ID's (`signing.mobile`); every refusal is
audited (docs/passkeys.md)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from signet.errors import AccessDenied, InvalidRequest, SignetError
from signet.events import append_event
from signet.sam import IntegrityViolation, check_credential
from signet.sam import mobile as mobile_trust
from signet.sam import passkey as trust
from signet.signing.context import Services
from signet.signing.csc import ensure_usable
from signet.signing.mobile import expire, fingerprint
from signet.signing.mobile_registration import string_param
from signet.signing.mobile_requests import MobileRefused, now, refusals_recorded
from signet.signing.passkey_registration import rp_id
from signet.store import Credential, MobileDevice, MobileRequest

APPROVAL_PATH = "/passkey/v1/approve/"


class PageRefused(SignetError):
    """A request the approval page cannot offer: unknown (404), decided (409), expired (410),
    or a record the SAM did not write (403)."""


@dataclass(frozen=True)
class Approval:
    """What the approval page shows, and the WebAuthn options of each decision."""

    request_id: str
    credential_id: str
    description: str | None
    labels: list[str]
    hashes: list[str]
    num_signatures: int
    fingerprint: str
    expires_in: int
    rp_id: str
    webauthn_id: str
    challenges: dict[str, str]  # decision -> base64url challenge


def _load(session: Any, services: Services, request_id: str) -> tuple[MobileRequest, MobileDevice]:
    request = session.get(MobileRequest, request_id)
    device = session.get(MobileDevice, request.device_id) if request is not None else None
    if request is None or device is None or device.kind != trust.KIND:
        raise PageRefused("No passkey request of that id", error="invalid_request", status=404)
    if not mobile_trust.request_intact(services.hsm, request) or not mobile_trust.device_intact(
        services.hsm, device
    ):
        raise IntegrityViolation(
            f"The record of request {request_id} or of its passkey fails its integrity check "
            "(not written by the SAM); it cannot be approved"
        )
    if device.status != "active":
        raise AccessDenied(f"The passkey of this request is {device.status}")
    return request, device


def approval(services: Services, request_id: Any, origin: str) -> Approval:
    """The request as the page shows it, if it can still be decided."""
    request_id = string_param(request_id, "request id", 32)
    with (
        refusals_recorded(services, "passkey page", request_id),
        services.database.transaction(read_only=True) as session,
    ):
        request, device = _load(session, services, request_id)
        left = int(mobile_trust.epoch_seconds(request.expires_at) - time.time())
        if request.state != "pending":
            raise PageRefused(
                f"This request is {request.state} already: each request is decided once",
                error="invalid_request",
                status=409,
            )
        if left <= 0:
            raise PageRefused(
                "This request has expired; the signer must authorize again",
                error="invalid_request",
                status=410,
            )
        structure = mobile_trust.request_structure(request, "approve")
        assert device.webauthn_id is not None
        return Approval(
            request_id=request.id,
            credential_id=request.credential_id,
            description=request.description,
            labels=structure["labels"],
            hashes=structure["hashes"],
            num_signatures=request.num_signatures,
            fingerprint=fingerprint(structure["hashes"]),
            expires_in=left,
            rp_id=rp_id(services, request.origin),
            webauthn_id=device.webauthn_id,
            challenges={
                d: mobile_trust.b64url(trust.approval_challenge(request, d))
                for d in mobile_trust.DECISIONS
            },
        )


_DECIDED = {"approve": ("approved", "passkey.approved"), "deny": ("denied", "passkey.denied")}


def decide(services: Services, *, request_id: Any, decision: Any, assertion: Any) -> str:
    """Approve or deny with the passkey's assertion over this request's challenge for this
    decision. Once only; an expired request is refused; a signature counter that did not move
    forward is refused as a cloned authenticator. Returns the request's new state."""
    request_id = string_param(request_id, "request id", 32)
    if not isinstance(decision, str) or decision not in _DECIDED:
        raise InvalidRequest("Invalid parameter decision: approve or deny")
    parsed = trust.parse_assertion(assertion)
    state, event = _DECIDED[decision]
    expired = False
    with (
        refusals_recorded(services, "passkey page", request_id),
        services.database.transaction() as session,
    ):
        request, device = _load(session, services, request_id)
        credential = session.get(Credential, request.credential_id)
        assert credential is not None
        check_credential(services.hsm, credential)
        ensure_usable(credential)
        asserted = trust.assertion_verifies(
            services.hsm, device, request, decision, parsed, rp_id(services, request.origin)
        )
        if asserted is None:
            raise MobileRefused(
                "Invalid parameter credential: not this passkey's assertion of this request "
                f"({decision}) with user verification; the passkey must sign exactly the "
                "request the page showed",
                event="passkey.assertion_invalid",
            )
        if request.state != "pending":
            raise MobileRefused(
                f"The request is {request.state} already: each request is decided once",
                event="passkey.replay",
                status=409,
            )
        counter_checked(asserted, device, "the request")
        if mobile_trust.epoch_seconds(request.expires_at) <= time.time():
            expired = True
        else:
            done = session.execute(
                update(MobileRequest)
                .where(MobileRequest.id == request_id, MobileRequest.state == "pending")
                .values(state=state, approval=_stored(parsed), decided_at=now())
                .returning(MobileRequest.id)
            ).first()
            if done is None:
                raise MobileRefused(
                    "The request was decided already: each request is decided once",
                    event="passkey.replay",
                    status=409,
                )
            counter_moved(session, device, asserted)
            append_event(
                session,
                event,
                actor=f"passkey {device.id}",
                subject=request.credential_id,
                request=request_id,
                sign_count=asserted.sign_count,
                outcome="success" if decision == "approve" else "failure",
            )
            return state
    assert expired
    expire(services, request_id, f"passkey {device.id}")
    raise PageRefused(
        "The request has expired; the signer must authorize again",
        error="invalid_request",
        status=410,
    )


def counter_checked(asserted: trust.Asserted, device: MobileDevice, what: str) -> None:
    """Refuse (403, `passkey.cloned`) an assertion whose signature counter did not move
    forward: either value non-zero and the new one not greater (docs/passkeys.md)."""
    if (asserted.sign_count or device.sign_count) and asserted.sign_count <= device.sign_count:
        raise MobileRefused(
            f"The passkey's signature counter did not move forward ({asserted.sign_count} "
            f"after {device.sign_count}): a cloned authenticator; {what} is refused",
            event="passkey.cloned",
            status=403,
        )


def counter_moved(session: Any, device: MobileDevice, asserted: trust.Asserted) -> None:
    """The passkey's counter set to the assertion's: forward only, even when two race."""
    if asserted.sign_count:
        session.execute(
            update(MobileDevice)
            .where(MobileDevice.id == device.id, MobileDevice.sign_count < asserted.sign_count)
            .values(sign_count=asserted.sign_count)
        )


def _stored(assertion: dict[str, Any]) -> str:
    return json.dumps(assertion, sort_keys=True, separators=(",", ":"))
