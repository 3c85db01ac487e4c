"""SNMP notifications of SIGNET-MIB: traps and informs, v2c or v3 authPriv, sent with pysnmp.

`send(notification, varbinds, target, settings)` is the whole interface: one notification to
one receiver, built from a `[[snmp.targets]]` table, so that the event forwarder can use it
as one more sink. Secrets are read when a notification is sent and never logged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

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

from signet.config.snmp import SecretUnreadable, SnmpSettings, SnmpTarget, read_secret
from signet.errors import BackendError
from signet.monitoring.mib import NOTIFICATIONS, OBJECTS, parse_oid

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

Varbind = tuple[str, int | str] | tuple[str, int | str, tuple[int, ...]]


class TrapError(BackendError):
    """A notification could not be sent, or an inform was not acknowledged."""


def send(
    notification: str,
    varbinds: Sequence[Varbind],
    target: SnmpTarget,
    settings: SnmpSettings,
) -> None:
    """Send `notification` (a SIGNET-MIB name) with `varbinds` ((object name, value) or
    (name, value, instance); scalars are instance .0) to `target`. A trap returns once sent;
    an inform once acknowledged, else TrapError after the target's timeout and retries."""
    if notification not in NOTIFICATIONS:
        raise ValueError(f"unknown notification {notification!r} of SIGNET-MIB")
    base = parse_oid(settings.base_oid)
    objects = []
    for varbind in varbinds:
        name, value = varbind[0], varbind[1]
        instance = varbind[2] if len(varbind) == 3 else (0,)  # type: ignore[misc]
        mib_object = OBJECTS.get(name)
        if mib_object is None:
            raise ValueError(f"unknown object {name!r} of SIGNET-MIB")
        objects.append(
            ObjectType(
                ObjectIdentity(base + mib_object.arc + instance), _SMI[mib_object.type](value)
            )
        )
    auth = _auth_data(target)
    notification_type = NotificationType(
        ObjectIdentity(base + NOTIFICATIONS[notification])
    ).add_varbinds(*objects)
    asyncio.run(_send(notification, notification_type, auth, target, settings))


def _auth_data(target: SnmpTarget) -> CommunityData | UsmUserData:
    where = f"snmp.targets[{target.name}]"
    try:
        if target.version == "v2c":
            assert target.community
            community = read_secret(target.community, f"{where}.community")
            # v2c is the requirement for older NMSs; v3 authPriv is the default
            return CommunityData(community, mpModel=1)  # noqa: S508
        assert target.user and target.auth_passphrase and target.priv_passphrase
        return UsmUserData(
            target.user,
            authKey=read_secret(target.auth_passphrase, f"{where}.auth_passphrase"),
            privKey=read_secret(target.priv_passphrase, f"{where}.priv_passphrase"),
            authProtocol=_AUTH[target.auth_protocol],
            privProtocol=_PRIV[target.priv_protocol],
        )
    except SecretUnreadable as exc:
        raise TrapError(str(exc)) from exc


async def _send(
    notification: str,
    notification_type: NotificationType,
    auth: CommunityData | UsmUserData,
    target: SnmpTarget,
    settings: SnmpSettings,
) -> None:
    engine = (
        SnmpEngine(OctetString(hexValue=settings.engine_id)) if settings.engine_id else SnmpEngine()
    )
    where = f"{notification} to {target.name} ({target.host}:{target.port})"
    try:
        transport = await UdpTransportTarget.create(
            (target.host, target.port), timeout=target.timeout_seconds, retries=target.retries
        )
        error_indication, error_status, _, _ = await send_notification(
            engine,
            auth,
            transport,
            ContextData(),
            "inform" if target.inform else "trap",
            notification_type,
        )
    except Exception as exc:  # pysnmp raises its own errors for bad addresses and keys
        raise TrapError(f"{where}: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.close_dispatcher()
    if error_indication:
        raise TrapError(f"{where}: {error_indication}")
    if error_status:
        raise TrapError(f"{where}: the receiver answered {error_status.prettyPrint()}")
