"""The client's address behind trusted reverse proxies, and never a forged one."""

from __future__ import annotations

from ipaddress import ip_network

from signet.web.client_address import allowed, client_address

LOCAL = [ip_network("127.0.0.1/32"), ip_network("::1/128")]
PROXIES = [*LOCAL, ip_network("10.9.0.0/16")]


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("192.0.2.7", "203.0.113.1", []) == "192.0.2.7"
    # a peer that is no trusted proxy cannot name another client
    assert client_address("192.0.2.7", "203.0.113.1", LOCAL) == "192.0.2.7"


def test_the_nearest_address_no_trusted_proxy_added() -> None:
    assert client_address("127.0.0.1", "203.0.113.1", LOCAL) == "203.0.113.1"
    # the client forged a first entry; the proxies appended what they saw
    forged = "198.51.100.66, 203.0.113.1, 10.9.1.1"
    assert client_address("127.0.0.1", forged, PROXIES) == "203.0.113.1"
    assert client_address("::1", "2001:db8::5", LOCAL) == "2001:db8::5"


def test_a_malformed_entry_stops_at_the_last_trusted_hop() -> None:
    assert client_address("127.0.0.1", "203.0.113.1, unknown", PROXIES) == "127.0.0.1"
    assert client_address("127.0.0.1", "", LOCAL) == "127.0.0.1"
    assert client_address("127.0.0.1", "10.9.1.1", PROXIES) == "10.9.1.1"  # all trusted


def test_allowed() -> None:
    assert allowed("::1", LOCAL) and not allowed("192.0.2.1", LOCAL)
    assert not allowed(None, LOCAL) and not allowed("not-an-address", LOCAL)
    assert not allowed("127.0.0.1", [])
