"""Mobile ID at credentials/authorize: the request for the user's phone, its content MACed by
the SAM, created in place of a SAD (the CSC asynchronous answer: pending, then
credentials/authorizeCheck), and announced on the push channel."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from signet.auth.tokens import Principal
from signet.errors import AccessDenied, SignetError
from signet.events import append_event
from signet.sam import IntegrityViolation, decode_hash
from signet.sam.codes import Request
from signet.sam.mobile import b64url, device_intact, request_mac
from signet.signing.context import Services
from signet.store import MobileDevice, MobileRequest

MOBILE_ID = "mobile_id"
PASSKEY = "passkey"
# Activations whose factor is an approval on a registered device (the CSC asynchronous way),
# and the kind of device each registers.
DEVICE_KINDS = {MOBILE_ID: "mobile", PASSKEY: "passkey"}


class MobileRefused(SignetError):
    """A device's or client's call refused, recorded as `event` once its transaction ended."""

    def __init__(
        self, description: str, *, event: str, status: int = 400, error: str | None = None
    ) -> None:
        super().__init__(
            description,
            status=status,
            error=error or ("access_denied" if status == 403 else "invalid_request"),
        )
        self.event = event


@contextmanager
def refusals_recorded(
    services: Services, actor: str, subject: Any, **details: Any
) -> Iterator[None]:
    """Record a refusal that names its event (an integrity violation, a replay, a bad device
    signature) in a transaction of its own, after the refused one rolled back."""
    try:
        yield
    except (MobileRefused, IntegrityViolation) as exc:
        with services.database.transaction() as session:
            append_event(
                session,
                exc.event,  # type: ignore[attr-defined]
                actor=actor,
                subject=str(subject)[:256],
                outcome="failure",
                reason=exc.description,
                **details,
            )
        raise


@dataclass(frozen=True)
class Pending:
    """An authorization waiting for the phone: its id and the seconds it has left."""

    authorization_id: str
    expires_in: int
    device_id: str = ""  # whom to announce it to (never sent to the CSC client)
    approval_path: str = ""  # a passkey's: the approval page (signet_approvalURL)


def now() -> datetime:
    return datetime.now(UTC)


def active_device(
    session: Session, services: Services, credential_id: str, kind: str = "mobile"
) -> MobileDevice:
    """The credential's registered device of `kind` (the newest active one), its seal checked."""
    device = (
        session.execute(
            select(MobileDevice)
            .where(
                MobileDevice.credential_id == credential_id,
                MobileDevice.status == "active",
                MobileDevice.kind == kind,
            )
            .order_by(MobileDevice.created_at.desc(), MobileDevice.id)
            .limit(1)
        )
        .scalars()
        .first()
    )
    if device is None:
        how = (
            "on the passkey page (/passkey/v1/register)"
            if kind == "passkey"
            else "with `signet-mobile register`"
        )
        raise AccessDenied(
            f"Credential {credential_id} has no registered device; register one {how} and "
            "the activation code"
        )
    if not device_intact(services.hsm, device):
        raise IntegrityViolation(
            f"The device record {device.id} of credential {credential_id} fails its integrity "
            "check (not written by the SAM); it cannot approve"
        )
    return device


def create_request(
    session: Session,
    services: Services,
    principal: Principal,
    credential: Any,
    *,
    request: Request,
    hashes: list[str],
    labels: list[str],
    origin: str,
    assurance: dict[str, Any],
) -> Pending:
    """Store a request for the credential's device (the caller has checked the credential
    and its policy, and announces the request on the push channel once it has committed)."""
    device = active_device(session, services, credential.id, DEVICE_KINDS[credential.activation])
    lifetime = services.settings.sam.mobile_request_lifetime_seconds
    stamp = now().replace(microsecond=0)
    row = MobileRequest(
        id=secrets.token_hex(16),
        credential_id=credential.id,
        user_id=principal.user_id,
        device_id=device.id,
        hash_algorithm=request.hash_algorithm,
        hashes="\n".join(b64url(decode_hash(h)) for h in hashes),
        num_signatures=request.num_signatures,
        labels=json.dumps(list(labels), ensure_ascii=True),
        description=request.description,
        origin=origin,
        nonce=b64url(secrets.token_bytes(16)),
        assurance=json.dumps(assurance, sort_keys=True),
        state="pending",
        approval=None,
        created_at=stamp,
        expires_at=stamp + timedelta(seconds=lifetime),
        decided_at=None,
    )
    row.content_mac = request_mac(services.hsm, row)
    session.add(row)
    session.flush()
    append_event(
        session,
        "mobile.requested",
        actor=principal.username,
        subject=credential.id,
        request=row.id,
        device=device.id,
        num_signatures=row.num_signatures,
        hashes=[base64.b64encode(decode_hash(h)).decode() for h in hashes],
        labels=list(labels),
        expires_in=lifetime,
    )
    page = f"/passkey/v1/approve/{row.id}" if device.kind == "passkey" else ""
    return Pending(row.id, lifetime, device.id, page)
