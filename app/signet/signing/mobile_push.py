"""Web Push for Mobile ID: a device sets (or clears) where its pushes go with a signed call,
and each new request is announced both to the device's long-poll and, when it subscribed,
through its push service — a nudge naming the request, never its content (the device fetches
that over its signed `pending` call)."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import delete

from signet.errors import InvalidRequest
from signet.events import append_event
from signet.notify import DeliveryError
from signet.notify.push import LongPollChannel
from signet.notify.webpush import GONE, Subscription, WebPushSender, subscription_problem
from signet.sam import mobile as trust
from signet.signing.mobile import CLOCK_SKEW_SECONDS, _device
from signet.signing.mobile_registration import string_param
from signet.signing.mobile_requests import MobileRefused, now, refusals_recorded
from signet.store import MobilePushSubscription

if TYPE_CHECKING:
    from signet.signing.context import Services

log = logging.getLogger(__name__)
PUSH_TYPE = "signet-mobile-push/1"


def push_bytes(
    *, device_id: str, timestamp: int, origin: str, subscription: Subscription | None
) -> bytes:
    """What a device signs to set (or, with none, clear) its push subscription."""
    return trust.canonical(
        {
            "type": trust.CALL_TYPE,
            "call": "push",
            "deviceID": device_id,
            "timestamp": timestamp,
            "origin": origin,
            "subscription": None
            if subscription is None
            else {
                "endpoint": subscription.endpoint,
                "p256dh": subscription.p256dh,
                "auth": subscription.auth,
            },
        }
    )


def _subscription(value: Any) -> Subscription | None:
    if value is None:
        return None
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, dict):
        raise InvalidRequest(
            "Invalid parameter subscription: {endpoint, keys: {p256dh, auth}} (W3C Push API) "
            "or null"
        )
    found = Subscription(
        string_param(value.get("endpoint"), "subscription.endpoint", 2048),
        string_param(keys.get("p256dh"), "subscription.keys.p256dh", 128),
        string_param(keys.get("auth"), "subscription.keys.auth", 64),
    )
    problem = subscription_problem(found.endpoint, found.p256dh, found.auth)
    if problem:
        raise InvalidRequest(f"Invalid parameter {problem}")
    return found


def application_server_key(services: Services) -> str:
    """The VAPID public key devices subscribe with (base64url, uncompressed P-256 point)."""
    channel = services.push
    if not isinstance(channel, PushAnnouncer):
        raise InvalidRequest("Web Push is not configured on this service; long-poll `pending`")
    return channel.application_server_key


def subscribe(
    services: Services,
    *,
    device_id: Any,
    timestamp: Any,
    subscription: Any,
    signature: Any,
    origin: str,
) -> bool:
    """Set the device's push subscription (None clears it); True if one is set now."""
    if services.settings.notify.web_push is None:
        raise InvalidRequest("Web Push is not configured on this service; long-poll `pending`")
    device_id = string_param(device_id, "deviceID", 32)
    signature = string_param(signature, "signature", 1024)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InvalidRequest("Missing (or invalid type) integer parameter timestamp")
    if abs(time.time() - timestamp) > CLOCK_SKEW_SECONDS:
        raise InvalidRequest(
            f"Invalid parameter timestamp: more than {CLOCK_SKEW_SECONDS} s from the "
            "service's clock; set the device's clock"
        )
    found = _subscription(subscription)
    signed = push_bytes(device_id=device_id, timestamp=timestamp, origin=origin, subscription=found)
    with (
        refusals_recorded(services, f"device {device_id}", device_id),
        services.database.transaction() as session,
    ):
        device = _device(session, services, device_id)
        if not trust.signature_verifies(
            trust.load_device_key(device.public_key), signature, signed
        ):
            raise MobileRefused(
                "Invalid parameter signature: not this device's signature of the call",
                event="mobile.call_refused",
                status=401,
                error="invalid_token",
            )
        session.execute(
            delete(MobilePushSubscription).where(MobilePushSubscription.device_id == device_id)
        )
        if found is not None:
            session.add(
                MobilePushSubscription(
                    device_id=device_id,
                    endpoint=found.endpoint,
                    p256dh=found.p256dh,
                    auth=found.auth,
                    updated_at=now(),
                )
            )
        append_event(
            session,
            "mobile.push_subscribed",
            actor=f"device:{device_id}",
            subject=device.credential_id,
            device=device_id,
            push_service=urlsplit(found.endpoint).netloc if found else None,
        )
    return found is not None


class PushAnnouncer:
    """The push channel when Web Push is configured: the long-poll channel, and a push
    through the device's subscription sent from a small pool (never in the request's own
    thread: a slow push service must not slow credentials/authorize)."""

    def __init__(self, services: Services, sender: WebPushSender) -> None:
        self._services = services
        self._sender = sender
        self._long_poll = LongPollChannel()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="web-push")

    @property
    def application_server_key(self) -> str:
        return self._sender.public_key

    def announce(self, device_id: str, request_id: str) -> None:
        self._long_poll.announce(device_id, request_id)
        self._pool.submit(self._deliver, device_id, request_id)

    def wait(self, device_id: str, timeout: float) -> bool:
        return self._long_poll.wait(device_id, timeout)

    def _deliver(self, device_id: str, request_id: str) -> None:
        services = self._services
        try:
            with services.database.transaction(read_only=True) as session:
                row = session.get(MobilePushSubscription, device_id)
                found = None if row is None else Subscription(row.endpoint, row.p256dh, row.auth)
            if found is None:
                return
            payload = json.dumps({"type": PUSH_TYPE, "requestID": request_id}).encode()
            status, reason = None, None
            try:
                status = self._sender.send(found, payload)
            except DeliveryError as exc:
                reason = str(exc)
            with services.database.transaction() as session:
                if status in GONE:
                    session.execute(
                        delete(MobilePushSubscription).where(
                            MobilePushSubscription.device_id == device_id
                        )
                    )
                ok = status is not None and 200 <= status < 300
                append_event(
                    session,
                    "mobile.push",
                    actor="-",
                    subject=device_id,
                    outcome="success" if ok else "failure",
                    request=request_id,
                    push_service=urlsplit(found.endpoint).netloc,
                    status=status,
                    reason=reason
                    or (None if ok else "subscription gone" if status in GONE else "refused"),
                )
        except Exception:  # a background thread: nothing above it would see the error
            log.exception("Web Push for request %s failed", request_id)
