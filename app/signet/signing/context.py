"""The services one process shares: settings, database, HSM, CA connector, SMS gateway and
the verifier of login certificates and the Mobile ID push channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, partial

from signet.auth.client_certificates import ClientCertificateVerifier
from signet.config import Settings
from signet.hsm import Hsm
from signet.notify.push import LongPollChannel, PushChannel
from signet.notify.sms import SmsGateway, gateway_for
from signet.pki import CAConnector, load_connector
from signet.sam import keys
from signet.store import Database


@dataclass
class Services:
    settings: Settings
    database: Database = field(init=False)
    hsm: Hsm = field(init=False)

    def __post_init__(self) -> None:
        self.database = Database(self.settings.database)
        self.hsm = Hsm(self.settings.hsm)
        # The audit trail's records and checkpoints are keyed in the HSM; events may not reach
        # it, so the MAC travels with the database's sessions.
        self.database.audit_mac = partial(keys.mac, self.hsm, keys.AUDIT_KEY)

    @cached_property
    def ca(self) -> CAConnector:
        return load_connector(self.settings, self.hsm, self.database)

    @cached_property
    def client_certificates(self) -> ClientCertificateVerifier:
        """The process's verifier of login certificates (it keeps fetched CRLs)."""
        return ClientCertificateVerifier(self.settings.client_certificates)

    @cached_property
    def sms(self) -> SmsGateway | None:
        """The process's SMS gateway (an SMPP bind is kept open in it), or None when
        `[notify.sms]` is not set."""
        sms = self.settings.notify.sms
        return gateway_for(sms) if sms is not None else None

    @cached_property
    def push(self) -> PushChannel:
        """How Mobile ID requests reach devices: the long-poll channel, and Web Push to the
        devices that subscribed when `[notify.web_push]` is set (docs/mobile-id.md)."""
        web_push = self.settings.notify.web_push
        if web_push is None:
            return LongPollChannel()
        from signet.notify.webpush import WebPushSender
        from signet.signing.mobile_push import PushAnnouncer

        return PushAnnouncer(self, WebPushSender(web_push))
