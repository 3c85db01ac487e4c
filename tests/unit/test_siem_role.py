"""The monitoring role's [events] fragment: what an inventory's sinks render to is TOML that
Signet's own schema reads back to the same sinks (the role also validates it on the host)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jinja2
import yaml

from signet.config import PLACEHOLDER_ENTERPRISE_NUMBER, EventsSettings

ROLE = Path(__file__).resolve().parents[2] / "roles" / "monitoring"


def _render(**variables: object) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    template = env.from_string((ROLE / "templates" / "events.toml.j2").read_text())
    return template.render({**defaults, "ansible_managed": "managed", **variables})


def test_the_default_enterprise_number_is_the_documented_placeholder() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["monitoring_events_enterprise_number"] == PLACEHOLDER_ENTERPRISE_NUMBER


def test_inventory_sinks_render_to_settings_signet_reads_back() -> None:
    sinks = {
        "siem": {
            "host": "siem.example.net",
            "transport": "tls",
            "format": "cef",
            "ca_file": "/etc/signet/siem-ca.pem",
            "client_cert_file": "/etc/signet/node.pem",
            "client_key_file": "/etc/signet/node.key",
        },
        "archive": {"host": "10.0.0.5", "port": 1514, "transport": "tcp", "format": "json"},
    }
    text = _render(
        monitoring_events_sinks=sinks,
        monitoring_events_enterprise_number=99999,
        monitoring_events_settings={"lease_seconds": 60, "hostname": "node-1"},
    )
    events = EventsSettings(**tomllib.loads(text)["events"])
    assert events.enterprise_number == 99999 and events.lease_seconds == 60
    assert events.hostname == "node-1"
    assert {
        name: sink.model_dump(exclude_unset=True) for name, sink in events.sinks.items()
    } == sinks
    assert events.sinks["siem"].effective_port == 6514


def test_trap_receivers_render_to_snmp_sinks_with_secrets_in_files() -> None:
    targets = [
        {"name": "nms", "host": "nms.example.net", "inform": True, "user": "signetmon",
         "auth_password": "auth-secret-1", "priv_password": "priv-secret-1",
         "auth_protocol": "SHA-512", "min_severity": 5},
        {"name": "legacy", "host": "10.0.0.9", "port": 1162, "version": "v2c",
         "community": "community-secret"},
        {"name": "traps", "host": "10.0.0.10", "user": "u", "auth_password": "a" * 8,
         "priv_password": "p" * 8},
    ]  # fmt: skip
    text = _render(
        monitoring_signet_trap_targets=targets,
        monitoring_signet_engine_id="8000000001020304",
        monitoring_signet_cert_warning_days=45,
    )
    assert "secret" not in text
    events = EventsSettings(**tomllib.loads(text)["events"])
    assert events.expiry_warning_days == 45
    nms, legacy, traps = (events.sinks[name] for name in ("nms", "legacy", "traps"))
    assert (nms.type, nms.version, nms.inform, nms.min_severity) == ("snmp", "v3", True, 5)
    assert nms.auth_protocol == "SHA-512"
    assert nms.auth_passphrase == "file:/etc/signet/snmp/nms.auth"
    assert nms.priv_passphrase == "file:/etc/signet/snmp/nms.priv"
    assert (legacy.version, legacy.port, legacy.inform) == ("v2c", 1162, False)
    assert legacy.community == "file:/etc/signet/snmp/legacy.community"
    assert traps.engine_id == "8000000001020304"  # v3 traps come from a fixed engine
