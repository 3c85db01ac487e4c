"""SNMP settings: the status agent served through snmpd, and the trap and inform receivers.

One schema block of its own (`[snmp]`, `[[snmp.targets]]`), kept apart so that it can move
under the event stream's `[events]` settings as one more sink. Secrets (communities, SNMPv3
passphrases) are named, never written here: "file:/path" or "env:NAME"."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# RFC 5612's enterprise number for documentation: no one owns it. A QTSP replaces it with its
# own PEN here and in monitoring/SIGNET-MIB.txt (monitoring/README.md, "SNMP").
PLACEHOLDER_BASE_OID = "1.3.6.1.4.1.32473.1"

AuthProtocol = Literal["SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["AES", "AES-192", "AES-256"]


class SecretUnreadable(ValueError):
    """A secret's source cannot be read; the message names the setting, never the value."""


def read_secret(reference: str, setting: str) -> str:
    """The secret named by `reference` ("file:/path" or "env:NAME") for `setting`."""
    kind, _, where = reference.partition(":")
    if kind == "file":
        try:
            value = Path(where).read_text().strip()
        except OSError as exc:
            raise SecretUnreadable(f"{setting}: cannot read {where}: {exc.strerror}") from exc
    else:
        value = os.environ.get(where, "")
    if not value:
        raise SecretUnreadable(f"{setting}: the secret's source ({reference}) is empty")
    return value


def _secret_reference(reference: str | None) -> str | None:
    if reference is None:
        return None
    kind, sep, where = reference.partition(":")
    if not sep or kind not in ("file", "env") or not where:
        raise ValueError('name the secret\'s source as "file:/path" or "env:NAME", not the secret')
    return reference


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnmpTarget(_Section):
    """One receiver of traps or informs (an NMS's snmptrapd, a SIEM's SNMP collector)."""

    name: str = Field(min_length=1, max_length=64)
    host: str = Field(min_length=1)
    port: int = Field(default=162, ge=1, le=65535)
    version: Literal["v2c", "v3"] = "v3"
    # An inform is acknowledged by the receiver (and resent until it is, `retries` times);
    # a trap is sent once.
    inform: bool = False
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)
    # v2c
    community: str | None = None
    # v3: always authPriv
    user: str | None = Field(default=None, max_length=32)
    auth_protocol: AuthProtocol = "SHA-256"
    auth_passphrase: str | None = None
    priv_protocol: PrivProtocol = "AES"
    priv_passphrase: str | None = None

    _references = field_validator("community", "auth_passphrase", "priv_passphrase")(
        classmethod(lambda cls, value: _secret_reference(value))
    )

    @model_validator(mode="after")
    def _credentials_of_its_version(self) -> SnmpTarget:
        if self.version == "v2c" and not self.community:
            raise ValueError(f"target {self.name}: v2c needs community (file:… or env:…)")
        if self.version == "v3" and not (
            self.user and self.auth_passphrase and self.priv_passphrase
        ):
            raise ValueError(
                f"target {self.name}: v3 (authPriv) needs user, auth_passphrase and "
                "priv_passphrase (file:… or env:…)"
            )
        return self


class SnmpSettings(_Section):
    """The agent that snmpd runs (pass_persist) and the receivers of its notifications."""

    # Root of SIGNET-MIB; must match the MIB's MODULE-IDENTITY.
    base_oid: str = PLACEHOLDER_BASE_OID
    # The snmpEngineID (hex) notifications are sent from. SNMPv3 traps need a fixed one, which
    # the receiver is told (snmptrapd: createUser -e); informs use the receiver's own.
    engine_id: str | None = None
    # How often the agent probes the HSM and the database and reads the counts, and how long
    # one probe may take before its values are reported unknown.
    refresh_seconds: float = Field(default=15.0, ge=1, le=3600)
    probe_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Values older than this are reported as unknown(3), never as still up.
    stale_after_seconds: float = Field(default=60.0, ge=2, le=86400)
    # Certificates expiring within this many days are listed and notified.
    cert_warning_days: int = Field(default=30, ge=1, le=3650)
    targets: list[SnmpTarget] = Field(default_factory=list)

    @field_validator("base_oid")
    @classmethod
    def _dotted(cls, oid: str) -> str:
        if not re.fullmatch(r"1\.3\.6\.1(\.\d+)+", oid):
            raise ValueError("expected a dotted OID under 1.3.6.1, e.g. 1.3.6.1.4.1.32473.1")
        return oid

    @field_validator("engine_id")
    @classmethod
    def _hex(cls, engine_id: str | None) -> str | None:
        if engine_id is None:
            return None
        digits = engine_id.removeprefix("0x")
        if not re.fullmatch(r"([0-9a-fA-F]{2}){5,32}", digits):
            raise ValueError("expected 5 to 32 bytes in hex, e.g. 0x8000000001020304")
        return digits.lower()

    @model_validator(mode="after")
    def _engine_for_v3_traps(self) -> SnmpSettings:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("targets: each needs a name of its own")
        if self.engine_id is None and any(t.version == "v3" and not t.inform for t in self.targets):
            raise ValueError("engine_id: SNMPv3 traps need a fixed snmpEngineID (hex)")
        return self
