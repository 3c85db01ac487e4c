"""The demo users of the embedded default: alice and bob, each with an RSA-3072 and a P-256 key,
activated as their owners would: the code read from the mail in the Maildir."""

from __future__ import annotations

import mailbox
import os
import re

from signet.errors import InvalidRequest
from signet.signing.activation import activate, send_activation
from signet.signing.admin import add_user, create_credential, list_credentials, list_users
from signet.signing.context import Services
from signet.signing.sessions import authenticate, login, logout

DEMO_USERS = {
    "alice": ("Alice Example", "alice@signet.test", "signet-alice"),
    "bob": ("Bob Example", "bob@signet.test", "signet-bob"),
}
DEMO_KEYS = ("rsa-3072", "ec-p256")
ACTIVATION_CODE = re.compile(r"^\s+([0-9A-Z]{5}-[0-9A-Z]{5})\s*$", re.M)


def demo_password(username: str) -> str:
    """The demo password: SIGNET_DEMO_PASSWORD if set, else the one the README shows."""
    return os.environ.get("SIGNET_DEMO_PASSWORD") or DEMO_USERS[username][2]


def activation_code_in_maildir(maildir: str, address: str, credential_id: str) -> str:
    """The newest activation code mailed to `address` for the credential, read from the
    Maildir as its owner's mail program would."""
    found: list[tuple[float, str]] = []
    for message in mailbox.Maildir(maildir, create=False):
        if message.get("To") != address or not str(message.get("Subject")).startswith("Activ"):
            continue
        payload = message.get_payload(decode=True)
        text = payload.decode() if isinstance(payload, bytes) else ""
        match = ACTIVATION_CODE.search(text)
        if match and credential_id in text:
            found.append((message.get_date(), match.group(1)))
    if not found:
        raise InvalidRequest(
            f"no activation mail for credential {credential_id} to {address} "
            f"in the Maildir {maildir}"
        )
    return max(found)[1]


def _activate_as_owner(services: Services, username: str, credential_id: str, address: str) -> None:
    """What the demo user does: read the mail, log in, activate (the endpoint's use case)."""
    code = activation_code_in_maildir(services.settings.notify.maildir, address, credential_id)
    token = login(services, username, demo_password(username), "signet-init").access_token
    principal = authenticate(services, token)
    try:
        activate(services, principal, credential_id, code)
    finally:
        logout(services, principal, token)


def ensure_demo_users(services: Services) -> list[str]:
    """Create and activate whatever of the demo users and credentials is missing; return what
    was made."""
    if services.settings.notify.email_backend != "maildir":
        raise InvalidRequest(
            "--demo activates the demo credentials by reading their activation "
            "mail from the Maildir, but notify.email_backend is "
            f'{services.settings.notify.email_backend!r}; set it to "maildir" '
            "or create and activate users yourself"
        )
    made: list[str] = []
    existing = {u.username for u in list_users(services)}
    for username, (display_name, email, _) in DEMO_USERS.items():
        if username not in existing:
            add_user(
                services,
                username,
                password=demo_password(username),
                display_name=display_name,
                email=email,
                actor="signet-init",
            )
            made.append(f"created user {username}")
        views = list_credentials(services, username)
        have = {c.key for c in views if c.status == "active"}
        for key in DEMO_KEYS:
            if key in have:
                continue
            pending = next((c for c in views if c.key == key and c.status == "pending"), None)
            if pending is not None:  # an earlier run stopped half-way: a new code, then on
                credential_id = pending.credential_id
                address = send_activation(services, credential_id, actor="signet-init").to
            else:
                view = create_credential(
                    services, username, key=key, actor="signet-init", description=f"demo {key}"
                )
                credential_id, address = view.credential_id, view.activation_sent_to or ""
                made.append(f"created credential {credential_id} ({username}, {key})")
            _activate_as_owner(services, username, credential_id, address)
            made.append(
                f"activated {credential_id} as {username} would, with the code mailed to her"
            )
    return made
