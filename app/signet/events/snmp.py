"""The SNMP sink: each forwarded event as a SIGNET-MIB trap or inform, v2c or v3 authPriv
(SHA-2, AES), sent with pysnmp.

An event with a notification of its own (the HSM or the database down and back, a credential
locked, a certificate near expiry, an integrity finding) is sent as that notification with its
objects; any other as signetEvent. Every notification then carries the event's own objects
(name, seq, hashes, severity, ...), so a receiver can de-duplicate by seq and see gaps. With
informs the sink returns only once the receiver acknowledged each one, so the forwarder's
cursor moves past acknowledged events only; a trap is sent once, unconfirmed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    NotificationType,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
)
from pysnmp.proto.rfc1902 import Counter64, Gauge32, Integer32, OctetString, Unsigned32

from signet.config.snmp import SecretUnreadable, SnmpSinkSettings, read_secret
from signet.events.messages import Forwarded
from signet.events.mib import CERT_ROLES, DOWN, INTEGRITY, NOTIFICATIONS, OBJECTS, UP, parse_oid
from signet.events.sinks import SinkDown

# net-snmp's names for the protocols (its AES-192/AES-256 extend the key as Blumenthal's draft)
_AUTH = {
    "SHA-224": usmHMAC128SHA224AuthProtocol,
    "SHA-256": usmHMAC192SHA256AuthProtocol,
    "SHA-384": usmHMAC256SHA384AuthProtocol,
    "SHA-512": usmHMAC384SHA512AuthProtocol,
}
_PRIV = {
    "AES": usmAesCfb128Protocol,
    "AES-192": usmAesBlumenthalCfb192Protocol,
    "AES-256": usmAesBlumenthalCfb256Protocol,
}
_SMI = {
    "string": OctetString,
    "integer": Integer32,
    "gauge": Gauge32,
    "counter64": Counter64,
    "unsigned": Unsigned32,
}

Varbind = tuple[str, int | str]

# The events that have a notification of their own, with the objects it needs first.
EVENT_NOTIFICATIONS = {
    "hsm.unreachable": "signetHsmDown",
    "hsm.reachable": "signetHsmUp",
    "database.unreachable": "signetDatabaseDown",
    "database.reachable": "signetDatabaseUp",
    "credential.locked": "signetCredentialLocked",
    "certificate.expiring": "signetCertificateNearExpiry",
}


def _text(value: object, limit: int = 255) -> str:
    return " ".join(str(value).split())[:limit]


def _iso_z(value: str) -> str:
    moment = datetime.fromisoformat(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days_left(not_after: str) -> int:
    return (datetime.fromisoformat(not_after) - datetime.now(UTC)) // timedelta(days=1)


def notification_of(item: Forwarded, node: str) -> tuple[str, list[Varbind]]:
    """The notification `item` is sent as, and its varbinds: the notification's own objects,
    then the event's (signetTrapEvent*)."""
    details = item.details
    own: list[Varbind] = []
    if item.integrity in ("hash-mismatch", "chain-break"):
        name = "signetAuditIntegrityViolation"
    else:
        name = EVENT_NOTIFICATIONS.get(item.event, "signetEvent")
    reason = _text(details.get("reason", ""))
    if name == "signetHsmDown":
        own = [("signetHsmStatus", DOWN), ("signetHsmReason", reason)]
    elif name == "signetHsmUp":
        own = [("signetHsmStatus", UP)]
    elif name == "signetDatabaseDown":
        own = [("signetDatabaseStatus", DOWN), ("signetDatabaseReason", reason)]
    elif name == "signetDatabaseUp":
        own = [("signetDatabaseStatus", UP)]
    elif name == "signetCredentialLocked":
        own = [("signetTrapCredentialId", _text(item.subject or "", 64))]
    elif name == "signetCertificateNearExpiry":
        not_after = str(details.get("not_after", ""))
        own = [
            ("signetTrapCertRole", CERT_ROLES.get(str(details.get("role")), CERT_ROLES["signer"])),
            ("signetTrapCertSubject", _text(item.subject or "")),
            ("signetTrapCertNotAfter", _iso_z(not_after) if not_after else ""),
            ("signetTrapCertDaysLeft", _days_left(not_after) if not_after else 0),
        ]
    canonical = json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)
    event: list[Varbind] = [
        ("signetTrapEventName", _text(item.event, 64)),
        ("signetTrapEventSeq", item.seq or 0),
        ("signetTrapEventSeverity", item.severity),
        ("signetTrapEventOutcome", _text(item.outcome, 32)),
        ("signetTrapEventActor", _text(item.actor)),
        ("signetTrapEventSubject", _text(item.subject or "")),
        ("signetTrapEventTime", item.at[:40]),
        ("signetTrapEventHash", item.record_hash or ""),
        ("signetTrapEventPrevHash", item.prev_hash or ""),
        ("signetTrapEventIntegrity", INTEGRITY[item.integrity]),
        ("signetTrapEventDetails", canonical[:255]),
        ("signetTrapEventNode", _text(node)),
    ]
    return name, own + event


class SnmpSink:
    """SIGNET-MIB notifications to one receiver. Its SNMP engine (and, for v3 informs, what
    it learnt of the receiver's engine) is kept between batches on an event loop of its own,
    and made anew after a failure."""

    def __init__(self, name: str, settings: SnmpSinkSettings, *, base_oid: str, node: str) -> None:
        self.name = name
        self.settings = settings
        self._base = parse_oid(base_oid)
        self._node = node
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: SnmpEngine | None = None

    def _where(self, notification: str) -> str:
        s = self.settings
        return f"sink {self.name} ({notification} to snmp://{s.host}:{s.port})"

    def send(self, events: Sequence[Forwarded]) -> None:
        chosen = [item for item in events if item.severity >= self.settings.min_severity]
        if not chosen:
            return
        try:
            auth = self._auth_data()
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._send_all(chosen, auth))
        except SinkDown:
            self._reset()
            raise

    async def _send_all(
        self, events: Sequence[Forwarded], auth: CommunityData | UsmUserData
    ) -> None:
        s = self.settings
        if self._engine is None:
            self._engine = (
                SnmpEngine(OctetString(hexValue=s.engine_id)) if s.engine_id else SnmpEngine()
            )
        try:
            transport = await UdpTransportTarget.create(
                (s.host, s.port), timeout=s.timeout_seconds, retries=s.retries
            )
        except Exception as exc:  # an unresolvable host
            raise SinkDown(f"{self._where('notifications')}: {exc}") from exc
        for item in events:
            notification, varbinds = notification_of(item, self._node)
            await self._send_one(notification, varbinds, auth, transport)

    async def _send_one(
        self,
        notification: str,
        varbinds: list[Varbind],
        auth: CommunityData | UsmUserData,
        transport: UdpTransportTarget,
    ) -> None:
        assert self._engine is not None
        objects = [
            ObjectType(
                ObjectIdentity(self._base + OBJECTS[name].arc + (0,)),
                _SMI[OBJECTS[name].type](value),
            )
            for name, value in varbinds
        ]
        notification_type = NotificationType(
            ObjectIdentity(self._base + NOTIFICATIONS[notification])
        ).add_varbinds(*objects)
        where = self._where(notification)
        try:
            error_indication, error_status, _, _ = await send_notification(
                self._engine,
                auth,
                transport,
                ContextData(),
                "inform" if self.settings.inform else "trap",
                notification_type,
            )
        except Exception as exc:  # pysnmp raises its own errors for bad addresses and keys
            raise SinkDown(f"{where}: {exc.__class__.__name__}: {exc}") from exc
        if error_indication:
            raise SinkDown(f"{where}: {error_indication}")
        if error_status:
            raise SinkDown(f"{where}: the receiver answered {error_status.prettyPrint()}")

    def _auth_data(self) -> CommunityData | UsmUserData:
        s = self.settings
        where = f"events.sinks.{self.name}"
        try:
            if s.version == "v2c":
                assert s.community
                community = read_secret(s.community, f"{where}.community")
                # v2c is the requirement for older NMSs; v3 authPriv is the default
                return CommunityData(community, mpModel=1)  # noqa: S508
            assert s.user and s.auth_passphrase and s.priv_passphrase
            return UsmUserData(
                s.user,
                authKey=read_secret(s.auth_passphrase, f"{where}.auth_passphrase"),
                privKey=read_secret(s.priv_passphrase, f"{where}.priv_passphrase"),
                authProtocol=_AUTH[s.auth_protocol],
                privProtocol=_PRIV[s.priv_protocol],
            )
        except SecretUnreadable as exc:
            raise SinkDown(f"{self._where('notifications')}: {exc}") from exc

    def _reset(self) -> None:
        if self._engine is not None:
            try:
                self._engine.close_dispatcher()
            finally:
                self._engine = None

    def close(self) -> None:
        self._reset()
        if self._loop is not None:
            self._loop.close()
            self._loop = None
