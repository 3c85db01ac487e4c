"""Attempt limits that hold on every engine and over several nodes: failed codes are counted one
after the other under the credential's row lock, a locked credential never yields a SAD, a code
used twice at once gives one SAD, and logins are throttled per user and per client address."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from tests.security.conftest import (
    PASSWORD,
    SHA256,
    audit_events,
    digests,
    error_of,
    text_of,
)

REQUEST = {"num_signatures": 1, "hashes": digests("parallel"), "hash_oid": SHA256}


@pytest.fixture
def nodes(services, settings_env):
    """Two Signet nodes on the test's database: each its own engine, pool and HSM session."""
    from signet.config import load_settings
    from signet.signing import Services

    second = Services(load_settings())
    yield [services, second]
    second.database.dispose()


def principal_of(node, username="alice"):
    from signet.signing import sessions

    token = sessions.login(node, username, PASSWORD, "10.1.1.1").access_token
    return sessions.authenticate(node, token)


def authorize(node, principal, credential_id, code, start: threading.Barrier):
    """One authorize on `node`: the SAD, or the CSC error as (error, description)."""
    from signet.errors import SignetError
    from signet.signing import csc as usecases

    start.wait()
    try:
        sad, _ = usecases.authorize(
            node, principal, credential_id=credential_id, pin=None, otp=code, **REQUEST
        )
        return ("SAD", sad)
    except SignetError as exc:
        return (exc.error, exc.description)


def sads(services) -> int:
    from signet.store import SignatureActivation

    with services.database.transaction(read_only=True) as session:
        return session.execute(select(func.count()).select_from(SignatureActivation)).scalar_one()


def send_code(node, principal, credential_id) -> str:
    """sendOTP bound to REQUEST; the code read from the Maildir it was delivered into."""
    import mailbox
    import re

    from signet.signing import send_otp as usecases

    box = mailbox.Maildir(node.settings.notify.maildir, create=True)
    seen = set(box.keys())
    usecases.send_otp(
        node, principal, credential_id, hashes=REQUEST["hashes"], hash_oid=SHA256, num_signatures=1
    )
    box = mailbox.Maildir(node.settings.notify.maildir)
    (new,) = [box[key] for key in box.iterkeys() if key not in seen]
    return re.search(r"^\s+(\d{6,8})\s*$", text_of(new), re.M).group(1)


def test_forty_parallel_wrong_codes_over_two_nodes_compare_exactly_the_limit(nodes, alice):
    limit = nodes[0].settings.sam.otp_max_attempts
    principal = principal_of(nodes[0])
    code = send_code(nodes[0], principal, alice)
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
    start = threading.Barrier(40)
    with ThreadPoolExecutor(40) as pool:
        answers = list(
            pool.map(lambda i: authorize(nodes[i % 2], principal, alice, wrong, start), range(40))
        )
    outcomes = Counter(error for error, _ in answers)
    # limit-1 plain failures, the limit-th locks (403), and every later try finds it locked.
    assert outcomes == {"invalid_otp": limit - 1, "access_denied": 40 - limit + 1}, outcomes
    events = [event for event, _ in audit_events(nodes[0])]
    assert events.count("otp.failed") == limit and events.count("credential.locked") == 1
    # The right code, after the lock, from both nodes at once: never a SAD.
    start = threading.Barrier(6)
    with ThreadPoolExecutor(6) as pool:
        late = list(
            pool.map(lambda i: authorize(nodes[i % 2], principal, alice, code, start), range(6))
        )
    assert all(error == "access_denied" and "locked" in text for error, text in late), late
    assert sads(nodes[0]) == 0
    assert "credential.authorized" not in [event for event, _ in audit_events(nodes[0])]


def test_the_same_right_code_twice_in_parallel_gives_one_sad_and_one_already_used(nodes, alice):
    principal = principal_of(nodes[0])
    for round_number in range(1, 4):
        code = send_code(nodes[round_number % 2], principal, alice)
        start = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda i: authorize(nodes[i], principal, alice, code, start), range(2))
            )
        kinds = sorted(kind for kind, _ in answers)
        assert kinds == ["SAD", "invalid_otp"], answers
        assert "already been used" in next(text for kind, text in answers if kind != "SAD")
        assert sads(nodes[0]) == round_number
    events = [event for event, _ in audit_events(nodes[0])]
    assert events.count("otp.verified") == 3 and events.count("otp.reused") == 3
    assert "otp.failed" not in events


def test_login_is_throttled_per_user_with_429_and_retry_after_until_the_block_ends(
    csc, services, alice
):
    services.settings.login.max_failures_per_user = 3
    services.settings.login.block_seconds = 2
    for _ in range(3):
        error_of(csc.login(password="wrong"), 401, "authentication_error")
    # At the limit even the right password waits: the user name is blocked on every address.
    for address in ("127.0.0.1", "10.9.9.9"):
        refused = csc.login(address=address)
        assert "try again in" in error_of(refused, 429, "temporarily_unavailable")
        assert 1 <= int(refused.headers["Retry-After"]) <= 2
    events = audit_events(services)
    assert [e for e, _ in events].count("login.failed") == 3
    blocked = [d for e, d in events if e == "login.blocked"]
    assert [d["failures"] for d in blocked] == [3]
    assert [e for e, _ in events].count("login.throttled") == 2
    time.sleep(2.1)
    assert csc.login().status_code == 200
    # A success clears the user's count: three more failures are needed to block again.
    for _ in range(2):
        error_of(csc.login(password="wrong"), 401, "authentication_error")
    assert csc.login().status_code == 200


def test_login_is_throttled_per_address_and_a_success_does_not_clear_it(csc, services, alice):
    from signet.signing import admin

    services.settings.login.max_failures_per_address = 4
    for name in ("bob", "carol"):
        admin.add_user(
            services,
            name,
            password=PASSWORD,
            display_name=name.title(),
            email=f"{name}@example.test",
            actor="test",
        )
    nat = "192.0.2.7"
    error_of(csc.login("bob", "wrong", address=nat), 401, "authentication_error")
    error_of(csc.login("bob", "wrong", address=nat), 401, "authentication_error")
    error_of(csc.login("carol", "wrong", address=nat), 401, "authentication_error")
    assert csc.login("alice", address=nat).status_code == 200  # not a reset of the others'
    error_of(csc.login("nobody", "wrong", address=nat), 401, "authentication_error")
    refused = csc.login("alice", address=nat)
    assert error_of(refused, 429, "temporarily_unavailable")
    assert int(refused.headers["Retry-After"]) == services.settings.login.block_seconds
    assert csc.login("alice", address="198.51.100.1").status_code == 200
    from signet.store import LoginThrottle

    with services.database.transaction(read_only=True) as session:
        row = session.get(LoginThrottle, f"addr:{nat}")
    assert row.failures == 4 and row.blocked_until is not None


def test_parallel_wrong_logins_over_two_nodes_stop_at_the_limit(nodes, alice):
    from signet.errors import SignetError
    from signet.signing import sessions

    nodes[0].settings.login.max_failures_per_user = 5
    nodes[1].settings.login.max_failures_per_user = 5
    start = threading.Barrier(20)

    def wrong_login(i):
        start.wait()
        try:
            sessions.login(nodes[i % 2], "alice", "wrong", f"203.0.113.{i}")
        except SignetError as exc:
            return exc.status
        return 200

    with ThreadPoolExecutor(20) as pool:
        statuses = Counter(pool.map(wrong_login, range(20)))
    assert statuses == {401: 5, 429: 15}, statuses
    events = [event for event, _ in audit_events(nodes[0])]
    assert events.count("login.failed") == 5 and events.count("login.throttled") == 15


def test_throttle_rows_that_no_longer_count_are_pruned(csc, services, alice, monkeypatch):
    """A spray of made-up user names leaves no lasting rows: the next login after the prune
    interval deletes the rows whose window is over and that no block holds, and only those."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from signet.auth import throttle
    from signet.store import LoginThrottle

    stamp = datetime.now(UTC)
    old = stamp - timedelta(seconds=services.settings.login.window_seconds + 60)
    rows = {
        "user:sprayed-1": (old, None),
        "user:sprayed-2": (old, stamp - timedelta(hours=1)),
        "user:still-blocked": (old, stamp + timedelta(hours=1)),
        "user:recent": (stamp - timedelta(seconds=5), None),
    }
    with services.database.transaction() as session:
        session.execute(
            insert(LoginThrottle),
            [
                {"key": key, "failures": 3, "window_start": start, "blocked_until": until}
                for key, (start, until) in rows.items()
            ],
        )
    monkeypatch.setitem(throttle._pruned, "at", float("-inf"))
    assert csc.login("alice").status_code == 200
    with services.database.transaction(read_only=True) as session:
        left = set(session.execute(select(LoginThrottle.key)).scalars())
    assert {"user:still-blocked", "user:recent"} <= left
    assert not left & {"user:sprayed-1", "user:sprayed-2"}
    # Within the interval nothing is pruned.
    with services.database.transaction() as session:
        session.execute(
            insert(LoginThrottle),
            [{"key": "user:sprayed-3", "failures": 1, "window_start": old, "blocked_until": None}],
        )
    assert csc.login("alice").status_code == 200
    with services.database.transaction(read_only=True) as session:
        assert session.get(LoginThrottle, "user:sprayed-3") is not None
