"""Security events: the hash-chained audit trail, and (later) its forwarding to syslog/SNMP/SIEM."""

from signet.events.audit import AuditFinding, append_event, verify_chain

__all__ = ["AuditFinding", "append_event", "verify_chain"]
