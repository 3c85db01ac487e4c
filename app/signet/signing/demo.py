"""The demo users of the embedded default: alice and bob, each with an RSA-3072 and a P-256 key."""

from __future__ import annotations

import os

from signet.signing.admin import add_user, create_credential, list_credentials, list_users
from signet.signing.context import Services

DEMO_USERS = {
    "alice": ("Alice Example", "alice@signet.test", "signet-alice"),
    "bob": ("Bob Example", "bob@signet.test", "signet-bob"),
}
DEMO_KEYS = ("rsa-3072", "ec-p256")


def demo_password(username: str) -> str:
    """The demo password: SIGNET_DEMO_PASSWORD if set, else the one the README shows."""
    return os.environ.get("SIGNET_DEMO_PASSWORD") or DEMO_USERS[username][2]


def ensure_demo_users(services: Services) -> list[str]:
    """Create whatever of the demo users and credentials is missing; return what was made."""
    made: list[str] = []
    existing = {u.username for u in list_users(services)}
    for username, (display_name, email, _) in DEMO_USERS.items():
        if username not in existing:
            add_user(services, username, password=demo_password(username),
                     display_name=display_name, email=email, actor="signet-init")
            made.append(f"user {username}")
        have = {c.key for c in list_credentials(services, username) if c.status == "active"}
        for key in DEMO_KEYS:
            if key not in have:
                view = create_credential(services, username, key=key, actor="signet-init",
                                         description=f"demo {key}")
                made.append(f"credential {view.credential_id} ({username}, {key})")
    return made
