"""The events forwarder's composition: this node's sinks, its probes of the HSM and the
database, and the Forwarder that ties them to the trail."""

from __future__ import annotations

import os
import socket
from importlib.metadata import version

from signet.config import Settings, SinkSettings, SyslogSinkSettings
from signet.events.forward import Forwarder, Probe
from signet.events.sinks import Sink, SyslogSink
from signet.events.snmp import SnmpSink
from signet.events.spool import Spool
from signet.signing.context import Services
from signet.signing.health import check_health


def _probes(services: Services) -> dict[str, Probe]:
    """The HSM and database probes. One health check (a bounded C_GetTokenInfo and a
    database ping, as /health makes) answers both: the forwarder runs them in this order."""
    checks: dict[str, dict[str, str]] = {}

    def reason(name: str) -> str | None:
        check = checks.get(name, {"status": "ok"})
        return None if check["status"] == "ok" else check.get("reason", "down")

    def hsm() -> str | None:
        checks.clear()
        checks.update(check_health(services)["checks"])
        return reason("hsm")

    return {"hsm": hsm, "database": lambda: reason("database")}


def build_sink(name: str, sink: SinkSettings, settings: Settings, *, host: str) -> Sink:
    """The sink an [events.sinks.<name>] table describes."""
    if isinstance(sink, SyslogSinkSettings):
        return SyslogSink(
            name,
            sink,
            settings.events,
            host=host,
            procid=str(os.getpid()),
            version=version("signet"),
        )
    return SnmpSink(name, sink, base_oid=settings.snmp.base_oid, node=host)


def build_forwarder(services: Services, *, probe: bool = True) -> Forwarder:
    """The forwarder for this node's settings ([events]); its lease holder name is the host
    and the process, so two forwarders on one host never share a lease."""
    events = services.settings.events
    host = events.hostname or socket.gethostname()
    sinks = {
        name: build_sink(name, sink, services.settings, host=host)
        for name, sink in events.sinks.items()
        if sink.enabled
    }
    return Forwarder(
        services.database,
        events,
        sinks,
        node=f"{host}:{os.getpid()}",
        probes=_probes(services) if probe else None,
        trust_roots=services.settings.formats.trust_roots,
        spool=Spool(events.spool_dir),
    )
