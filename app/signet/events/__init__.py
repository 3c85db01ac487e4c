"""Security events: the hash-chained audit trail, and (later) its forwarding to syslog/SNMP/SIEM."""

from signet.events.audit import AuditFinding, Event, append_event, append_events, verify_chain

__all__ = ["AuditFinding", "Event", "append_event", "append_events", "verify_chain"]
