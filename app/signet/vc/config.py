"""Which Signet accounts the virtual card shows: one slot per ``[[account]]`` of the user's
``signet-vc.toml`` ($SIGNET_VC_CONFIG, else $XDG_CONFIG_HOME/signet-vc/config.toml)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    server: str  # the service's URL (https://host or its CSC v2 base)
    user: str
    ca_file: str | None = None  # a CA bundle to trust instead of the system's
    label: str = ""  # the token label (default user@host)
    # a command that asks the user (signet.vc.prompt): set, the token has a protected
    # authentication path and logins without a PIN ask through it
    askpass: str | None = None
    # false (with askpass): keys do not say CKA_ALWAYS_AUTHENTICATE and the second factor is
    # asked through askpass at each C_Sign, for consumers that cannot log in per signature
    # (OpenSSH's agent)
    context_login: bool = True
    # true: log in and sign through the per-user agent (signet.vc.agent) on its socket, which
    # asks the password and second factors itself (a protected authentication path)
    agent: bool = False
    # log in by this TLS client certificate (PEM) and its key (PEM, unencrypted, the user's
    # own file; default: in the certificate's file) instead of a password
    client_cert: str | None = None
    client_key: str | None = None
    # log in by the OAuth 2.0 device flow (RFC 8628) as this public client of the service: the
    # agent shows a code to approve in the browser, with whatever login the service's pages
    # offer (federated, passkey...); such an account always goes through the agent
    device_client: str | None = None

    @property
    def protected_path(self) -> bool:
        """The token asks for itself: no PIN comes through C_Login."""
        return bool(self.askpass or self.agent or self.client_cert)

    @property
    def certificate(self) -> tuple[str, str] | None:
        if not self.client_cert:
            return None
        return (self.client_cert, self.client_key or self.client_cert)


def config_path() -> Path:
    explicit = os.environ.get("SIGNET_VC_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "signet-vc" / "config.toml"


def load_accounts(path: Path | None = None) -> list[Account]:
    """The configured accounts; none (an empty reader) when the file is missing or unreadable,
    so a host application never fails to load the module over its configuration."""
    try:
        data = tomllib.loads((path or config_path()).read_text())
    except (OSError, ValueError):
        return []
    accounts = []
    for item in data.get("account") or []:
        if isinstance(item, dict) and item.get("server") and item.get("user"):
            accounts.append(
                Account(
                    str(item["server"]),
                    str(item["user"]),
                    str(item["ca_file"]) if item.get("ca_file") else None,
                    str(item.get("label") or ""),
                    str(item["askpass"]) if item.get("askpass") else None,
                    item.get("context_login", True) is not False,
                    item.get("agent") is True or bool(item.get("device_client")),
                    _path(item.get("client_cert")),
                    _path(item.get("client_key")),
                    str(item["device_client"]) if item.get("device_client") else None,
                )
            )
    return accounts


def _path(value: object) -> str | None:
    return str(Path(str(value)).expanduser()) if value else None
