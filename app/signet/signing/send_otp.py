"""credentials/sendOTP: a one-time code for one authorization request to come, made and bound
by the SAM, delivered by the channel the credential's factor names (e-mail or SMS) and audited
whether it was taken or not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signet.algorithms import HASH_BY_OID
from signet.auth.factors import lock_for_factor_check, new_otp
from signet.auth.tokens import Principal
from signet.errors import AccessDenied, InvalidRequest, ServiceUnavailable
from signet.events import append_event
from signet.notify import DeliveryError
from signet.sam import check_credential
from signet.signing import policy
from signet.signing.context import Services
from signet.signing.csc import (
    check_count,
    check_hash_lengths,
    ensure_usable,
    hash_name_of,
    own_credential,
)
from signet.signing.delivery import (
    CHANNEL_NAMES,
    deliver,
    otp_channel,
    record_delivery,
    shown,
    sms_otp_text,
)
from signet.signing.otp import (
    code_verifier,
    lifetime_text,
    otp_address,
    otp_message,
    signing_request,
)
from signet.store import User


def send_otp(
    services: Services,
    principal: Principal,
    credential_id: Any,
    *,
    hashes: Sequence[str] = (),
    hash_oid: str | None = None,
    num_signatures: int | None = None,
    description: str | None = None,
    labels: Sequence[str] = (),
) -> None:
    """Send a one-time code for the credential (by e-mail or SMS, as its factor says), bound
    to the authorization request to come when the client names it (its hashes or
    numSignatures, and its hashAlgorithmOID, description and document labels: a Signet
    extension); without them (v1 clients), bound to the first authorize that uses it."""
    sam = services.settings.sam
    if hash_oid is not None and hash_oid not in HASH_BY_OID:
        raise InvalidRequest("Invalid parameter hashAlgorithmOID")
    check_hash_lengths(hashes, hash_oid)
    request = None
    if hashes or num_signatures is not None:
        request = signing_request(
            hashes=hashes,
            hash_oid=hash_oid,
            num_signatures=(len(hashes) if num_signatures is None else num_signatures),
            description=description,
            labels=labels,
        )
    elif hash_oid or description or labels:
        raise InvalidRequest(
            "Missing parameter hashes: a code bound to a request needs its "
            "hashes (or numSignatures)"
        )
    with services.database.transaction() as session:
        credential = own_credential(session, principal, credential_id)
        check_credential(services.hsm, credential)
        ensure_usable(credential)
        ensure_usable(lock_for_factor_check(session, credential.id))
        if request is not None:
            check_count(request.num_signatures, credential, services)
        if request is not None and len(request.hashes) > request.num_signatures:
            raise InvalidRequest("Invalid parameter numSignatures: fewer than the hashes")
        user = session.get(User, principal.user_id)
        assert user is not None
        channel = otp_channel(credential.activation)
        address = otp_address(credential, user)
        if channel is None:
            how = {
                "mobile_id": "on its owner's phone (Mobile ID)",
                "passkey": "with its owner's passkey",
            }.get(credential.activation, "by PIN")
            raise InvalidRequest(f"This credential is activated {how}, not OTP")
        if not address:
            raise InvalidRequest(f"No address is registered for OTP delivery by {channel}")
        # No code goes out for an authorization the credential's policy would refuse.
        refused = policy.refusal(services, session, principal, credential)
        if refused is None:
            code, _ = new_otp(
                session,
                credential,
                sam,
                binding=request.binding() if request is not None else None,
                verifier=code_verifier(services.hsm),
            )
    if refused is not None:
        raise AccessDenied(refused)
    lifetime = sam.otp_lifetime_seconds
    hash_name = hash_name_of(request.hash_algorithm) if request else None
    subject, text = otp_message(
        name=user.display_name,
        credential_id=credential.id,
        code=code,
        lifetime=lifetime,
        request=request,
        hash_name=hash_name,
    )
    sms_text = sms_otp_text(
        code=code,
        lifetime=lifetime_text(lifetime),
        num_signatures=request.num_signatures if request else None,
        labels=request.labels if request else (),
        fingerprint=request.fingerprint() if request else None,
        sender=services.settings.web.name,
    )
    try:
        sent, receipts = deliver(
            services, channel=channel, to=address, subject=subject, body=text, sms_text=sms_text
        )
    except DeliveryError as exc:
        with services.database.transaction() as session:
            append_event(
                session,
                "otp.delivery_failed",
                actor=principal.username,
                subject=credential.id,
                outcome="failure",
                channel=channel,
                to=shown(channel, address),
                reason=str(exc),
            )
        raise ServiceUnavailable(
            f"The OTP could not be delivered by {CHANNEL_NAMES[channel]}: {exc}"
        ) from exc
    bound: dict[str, Any] = (
        {
            "fingerprint": request.fingerprint(),
            "labels": list(request.labels),
            "num_signatures": request.num_signatures,
        }
        if request
        else {}
    )
    record_delivery(
        services,
        "otp.sent",
        actor=principal.username,
        subject=credential.id,
        details={**sent, "bound": request is not None, **bound},
        receipts=receipts,
    )
