"""Security events: the keyed, hash-chained audit trail, its checkpoints, and their forwarding
with operational events to sinks (syslog now; an SNMP trap sender is one more Sink)."""

from signet.events.audit import (
    AuditFinding,
    AuditMac,
    Event,
    append_durably,
    append_event,
    append_events,
    append_records,
    verify_chain,
)
from signet.events.checkpoints import (
    Checkpoint,
    append_checkpoint,
    export_checkpoint,
    verify_checkpoints,
)

__all__ = [
    "AuditFinding",
    "AuditMac",
    "Checkpoint",
    "Event",
    "append_checkpoint",
    "append_durably",
    "append_event",
    "append_events",
    "append_records",
    "export_checkpoint",
    "verify_chain",
    "verify_checkpoints",
]
