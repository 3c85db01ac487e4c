"""Settings of the event stream ([events]): the forwarder's pace and its sinks, one table each,
[events.sinks.<name>], a syslog collector (the default type) or an SNMP notification receiver."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from signet.config.snmp import SnmpSinkSettings

# RFC 5612's enterprise number for documentation: a placeholder until the QTSP (or the project)
# registers its own with IANA; syslog structured data goes under signet@<this number>.
PLACEHOLDER_ENTERPRISE_NUMBER = 32473


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyslogSinkSettings(_Section):
    """One syslog collector (RFC 5424): over UDP (RFC 5426), TCP with octet counting
    (RFC 6587), TLS (RFC 5425), or RELP (rsyslog's acknowledged protocol; relp-tls over TLS)."""

    type: Literal["syslog"] = "syslog"
    enabled: bool = True
    host: str = Field(min_length=1)
    # Default: 514 for udp and tcp, 6514 for tls, 2514 for relp and relp-tls.
    port: int | None = Field(default=None, ge=1, le=65535)
    # relp and relp-tls: each message is acknowledged by the collector, and the cursor moves
    # past acknowledged messages only; over tcp and tls a batch counts as taken once written.
    transport: Literal["udp", "tcp", "tls", "relp", "relp-tls"] = "tls"
    # The message body: RFC 5424 text, one JSON object, or ArcSight CEF.
    format: Literal["rfc5424", "json", "cef"] = "rfc5424"
    # RFC 5424 facility number; 13 is "log audit".
    facility: int = Field(default=13, ge=0, le=23)
    # TLS: CA bundle that verifies the collector (None: the system store), the name its
    # certificate must carry (None: host), and an optional client certificate and key (PEM).
    ca_file: str | None = None
    server_name: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _tls_options(self) -> SyslogSinkSettings:
        if self.transport not in ("tls", "relp-tls"):
            for name in ("ca_file", "server_name", "client_cert_file", "client_key_file"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to transports 'tls' and 'relp-tls' only")
        if bool(self.client_cert_file) != bool(self.client_key_file):
            raise ValueError("set both client_cert_file and client_key_file, or neither")
        return self

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return {"tls": 6514, "relp": 2514, "relp-tls": 2514}.get(self.transport, 514)


SINK_TYPES = ("syslog", "snmp")


def _sink_type(value: Any) -> str:
    # A table without `type` is a syslog collector, as before SNMP sinks existed.
    if isinstance(value, dict):
        return str(value.get("type", "syslog"))
    return str(getattr(value, "type", "syslog"))


SinkSettings = Annotated[
    Annotated[SyslogSinkSettings, Tag("syslog")] | Annotated[SnmpSinkSettings, Tag("snmp")],
    Discriminator(
        _sink_type,
        custom_error_type="sink_type",
        custom_error_message='type: expected "syslog" or "snmp"',
    ),
]


class EventsSettings(_Section):
    """Forwarding the audit trail and operational events to sinks (docs/audit.md,
    monitoring/README.md). Each sink is one table, [events.sinks.<name>]; the name keys its
    cursor in the database, so renaming a sink sends its history again."""

    sinks: dict[str, SinkSettings] = Field(default_factory=dict)
    enterprise_number: int = Field(default=PLACEHOLDER_ENTERPRISE_NUMBER, ge=1)
    app_name: str = Field(default="signet", pattern=r"^[!-~]{1,48}$")
    # HOSTNAME in messages; None: this node's name.
    hostname: str | None = Field(default=None, pattern=r"^[!-~]{1,255}$")
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    batch_size: int = Field(default=200, ge=1, le=5000)
    # A node forwards a sink's records while it holds the sink's lease; another node takes
    # over when it has not been renewed for this long.
    lease_seconds: int = Field(default=30, ge=5, le=3600)
    # Operational events that cannot wait in the database (it may be the thing that is down)
    # are held per sink, at most this many; beyond, the oldest are dropped and the count of
    # dropped events is itself reported.
    memory_queue: int = Field(default=10000, ge=100, le=1000000)
    # ... and in files under this directory (one per sink), so that a forwarder that dies sends
    # them after its restart; None: memory only. Local to the node, like the events themselves.
    spool_dir: str | None = Field(default="var/events-spool", min_length=1)
    # A certificate (CA, signer, TSA trust root) within this many days of expiry is reported,
    # once a day, and listed by the SNMP agent.
    expiry_warning_days: int = Field(default=30, ge=1, le=3650)
    # This many login.failed from one address within the window is reported as a burst.
    failed_login_burst: int = Field(default=20, ge=2, le=100000)
    failed_login_window_seconds: int = Field(default=60, ge=1, le=86400)

    @field_validator("sinks")
    @classmethod
    def _sink_names(cls, sinks: dict[str, SinkSettings]) -> dict[str, SinkSettings]:
        for name in sinks:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
                raise ValueError(
                    f"sink name {name!r}: use lower-case letters, digits, '-' and '_' (64 at most)"
                )
        return sinks
