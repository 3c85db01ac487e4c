"""Who the client is: the peer's address, or, through the reverse proxies named in
web.trusted_proxies, the nearest address in X-Forwarded-For that none of them added."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

Network = IPv4Network | IPv6Network
# The environ key that keeps the TCP peer's address once REMOTE_ADDR names the client: only a
# peer that is a trusted proxy may pass a client certificate in a header.
PEER = "signet.peer_address"


def _within(address: str, networks: Iterable[Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_address(peer: str, forwarded_for: str, proxies: Sequence[Network]) -> str:
    """The client's address. Walks X-Forwarded-For from the right (each proxy appends the
    address it received from) while the hop is a trusted proxy; an entry that is not an
    address ends the walk at the last trusted one, so a forged header cannot name a client
    beyond a proxy that did not write it."""
    if not proxies or not _within(peer, proxies):
        return peer
    client = peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ip_address(hop)
        except ValueError:
            break
        client = hop
        if not _within(hop, proxies):
            break
    return client


class ClientAddress:
    """WSGI middleware: REMOTE_ADDR becomes the client's address (client_address)."""

    def __init__(self, app: Any, proxies: Sequence[Network]) -> None:
        self.app = app
        self.proxies = list(proxies)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ[PEER] = environ.get("REMOTE_ADDR", "")
        if self.proxies:
            environ["REMOTE_ADDR"] = client_address(
                environ.get("REMOTE_ADDR", ""),
                environ.get("HTTP_X_FORWARDED_FOR", ""),
                self.proxies,
            )
        return self.app(environ, start_response)


def allowed(address: str | None, networks: Iterable[Network]) -> bool:
    return address is not None and _within(address, networks)
