"""SNMP settings: the status agent served through snmpd (`[snmp]`), and a receiver of traps or
informs as a sink of the event stream (`[events.sinks.<name>]` with type = "snmp").

Secrets (communities, SNMPv3 passphrases) are named, never written here: "file:/path" or
"env:NAME"."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

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


def _engine_id(engine_id: str | None) -> str | None:
    if engine_id is None:
        return None
    digits = engine_id.removeprefix("0x")
    if not re.fullmatch(r"([0-9a-fA-F]{2}){5,32}", digits):
        raise ValueError("expected 5 to 32 bytes in hex, e.g. 0x8000000001020304")
    return digits.lower()


class SnmpSinkSettings(_Section):
    """One receiver of SIGNET-MIB notifications (an NMS's snmptrapd, a SIEM's SNMP collector):
    each forwarded event whose severity reaches min_severity becomes one trap or inform."""

    type: Literal["snmp"]
    enabled: bool = True
    host: str = Field(min_length=1)
    port: int = Field(default=162, ge=1, le=65535)
    version: Literal["v2c", "v3"] = "v3"
    # An inform is acknowledged by the receiver (and resent until it is, `retries` times): the
    # forwarder's cursor moves only past acknowledged events. A trap is sent once, unconfirmed.
    inform: bool = False
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)
    # Events below this severity (0-10, the CEF scale of monitoring/siem-fields.md) are not
    # sent: 0 sends every audit record; 5 only failures, refusals, outages and alarms.
    min_severity: int = Field(default=0, ge=0, le=10)
    # v2c
    community: str | None = None
    # v3: always authPriv
    user: str | None = Field(default=None, max_length=32)
    auth_protocol: AuthProtocol = "SHA-256"
    auth_passphrase: str | None = None
    priv_protocol: PrivProtocol = "AES"
    priv_passphrase: str | None = None
    # The snmpEngineID (hex) v3 traps are sent from, which the receiver is told (snmptrapd:
    # createUser -e); informs use the receiver's own.
    engine_id: str | None = None

    _references = field_validator("community", "auth_passphrase", "priv_passphrase")(
        classmethod(lambda cls, value: _secret_reference(value))
    )
    _hex = field_validator("engine_id")(classmethod(lambda cls, value: _engine_id(value)))

    @model_validator(mode="after")
    def _credentials_of_its_version(self) -> SnmpSinkSettings:
        if self.version == "v2c" and not self.community:
            raise ValueError("v2c needs community (file:… or env:…)")
        if self.version == "v3" and not (
            self.user and self.auth_passphrase and self.priv_passphrase
        ):
            raise ValueError(
                "v3 (authPriv) needs user, auth_passphrase and priv_passphrase (file:… or env:…)"
            )
        if self.version == "v3" and not self.inform and self.engine_id is None:
            raise ValueError("engine_id: SNMPv3 traps need a fixed snmpEngineID (hex)")
        return self


class SnmpSettings(_Section):
    """The agent that snmpd runs (pass_persist). Certificates near expiry are those within
    events.expiry_warning_days."""

    # Root of SIGNET-MIB; must match the MIB's MODULE-IDENTITY.
    base_oid: str = PLACEHOLDER_BASE_OID
    # How often the agent probes the HSM and the database and reads the counts, and how long
    # one probe may take before its values are reported unknown.
    refresh_seconds: float = Field(default=15.0, ge=1, le=3600)
    probe_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Values older than this are reported as unknown(3), never as still up.
    stale_after_seconds: float = Field(default=60.0, ge=2, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "targets" in data or "engine_id" in data:
                raise ValueError(
                    "targets and engine_id moved: each receiver of traps is a sink, "
                    '[events.sinks.<name>] with type = "snmp" and its own engine_id '
                    "(monitoring/README.md)"
                )
            if "cert_warning_days" in data:
                raise ValueError("cert_warning_days moved to events.expiry_warning_days")
        return data

    @field_validator("base_oid")
    @classmethod
    def _dotted(cls, oid: str) -> str:
        if not re.fullmatch(r"1\.3\.6\.1(\.\d+)+", oid):
            raise ValueError("expected a dotted OID under 1.3.6.1, e.g. 1.3.6.1.4.1.32473.1")
        return oid
