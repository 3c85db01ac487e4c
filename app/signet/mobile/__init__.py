"""The reference Mobile ID device SDK (`signet.mobile`) and its `signet-mobile` CLI: what a
phone app does, in Python, for integrators to follow (docs/mobile-id.md). Client side only:
it speaks HTTP to Signet and imports none of the server's layers."""

from signet.mobile.protocol import approval_bytes, canonical, fingerprint, registration_bytes
from signet.mobile.sdk import Device, MobileError, PendingRequest

__all__ = [
    "Device",
    "MobileError",
    "PendingRequest",
    "approval_bytes",
    "canonical",
    "fingerprint",
    "registration_bytes",
]
