"""What the CA publishes for relying parties: its certificate and its CRL."""

from __future__ import annotations

import threading
import time

from signet.errors import NotFound
from signet.signing.context import Services

# A CRL is re-signed at most once a second per process: one HSM signature a second bounds
# what unauthenticated fetches cost, and a CRL fetched two seconds after a signature's
# time-stamp (formats.revocation_grace_seconds) is then issued after it, as B-LT wants.
CRL_CACHE_SECONDS = 1
_cache: dict[str, tuple[float, bytes]] = {}
_lock = threading.Lock()


def ca_certificate(services: Services, ca_name: str) -> bytes:
    if ca_name != services.ca.name:
        raise NotFound(f"no CA named {ca_name!r} here")
    return services.ca.chain()[-1].dump()


def ca_crl(services: Services, ca_name: str) -> bytes:
    """The CA's CRL, re-signed at most once a second per process."""
    if ca_name != services.ca.name or not hasattr(services.ca, "crl"):
        raise NotFound(f"no CRL published for CA {ca_name!r} here")
    # Keyed by the CA certificate too: a process may serve more than one CA of a name.
    cache_key = f"{ca_name}:{services.ca.chain()[-1].sha256.hex()}"
    with _lock:
        cached = _cache.get(cache_key)
        if cached and time.monotonic() - cached[0] < CRL_CACHE_SECONDS:
            return cached[1]
        der: bytes = services.ca.crl()
        _cache[cache_key] = (time.monotonic(), der)
        return der


def forget_crl_cache() -> None:
    """After a revocation, this process publishes a fresh CRL at once."""
    with _lock:
        _cache.clear()
