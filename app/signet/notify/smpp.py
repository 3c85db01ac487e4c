"""The SMPP 3.4 gateway (smpplib): one bind per process to the SMSC, kept open and made again
when it drops; submit_sm with delivery receipts asked for; GSM 7-bit or UCS-2 text, split into
concatenated parts; every network step bounded; every failure a DeliveryError that names the
SMSC and what to check."""

from __future__ import annotations

import atexit
import contextlib
import logging
import select
import socket
import ssl
import threading
import time
import uuid
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from signet.config.sms import SmppSmsSettings, describe_gateway
from signet.config.snmp import SecretUnreadable, read_secret
from signet.notify import DeliveryError
from signet.notify.sms import Receipt, SmsSent

# GSM 03.38: the default alphabet (one septet each; 0x1B is the escape, not a character) and
# its extension table (escape + one septet). SMPP's data_coding 0 carries one septet per octet.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x00ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C}
GSM_EXTENSION.update({"~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65})
_GSM_INDEX = {ch: i for i, ch in enumerate(GSM_BASIC) if i != 0x1B}
DATA_CODING = {"gsm7": 0x00, "ucs2": 0x08}
# Octets of user data per message: alone, and per part after a 6-octet concatenation header.
SINGLE, PART = {"gsm7": 160, "ucs2": 140}, {"gsm7": 153, "ucs2": 134}
MAX_PARTS = 10
# smpplib logs each socket error it then raises; the DeliveryError says it once, better.
_LOGGER = "signet.notify.smpplib"
logging.getLogger(_LOGGER).setLevel(logging.ERROR)
ESM_UDHI = 0x40
ESM_RECEIPT = 0x04
# Bind errors an operator can act on, by SMPP command_status.
_BIND_ADVICE = {
    0x0D: "the SMSC refused the bind (ESME_RBINDFAIL); check notify.sms.system_id, "
    "notify.sms.system_type and that this address may bind",
    0x0E: "the SMSC refused the password (ESME_RINVPASWD); check notify.sms.secret",
    0x0F: "the SMSC does not know the system_id (ESME_RINVSYSID); check notify.sms.system_id",
    0x05: "the system_id is bound already (ESME_RALYBND); check the SMSC's bind limit",
}


def encode_text(text: str, encoding: str = "auto") -> tuple[str, list[bytes]]:
    """(encoding, the parts' octets, each with its concatenation header when there are
    several). GSM 7-bit if every character has a septet (and encoding is auto), else UCS-2; a
    part never splits an escape pair or a surrogate pair."""
    units: list[bytes] = []
    name = "ucs2"
    if encoding == "auto" and all(c in _GSM_INDEX or c in GSM_EXTENSION for c in text):
        name = "gsm7"
        for c in text:
            units.append(
                bytes([_GSM_INDEX[c]]) if c in _GSM_INDEX else bytes([0x1B, GSM_EXTENSION[c]])
            )
    else:
        units = [c.encode("utf-16-be") for c in text]
    whole = b"".join(units)
    if len(whole) <= SINGLE[name]:
        return name, [whole]
    chunks: list[bytes] = [b""]
    for unit in units:
        if len(chunks[-1]) + len(unit) > PART[name]:
            chunks.append(b"")
        chunks[-1] += unit
    if len(chunks) > MAX_PARTS:
        raise DeliveryError(f"the text needs {len(chunks)} SMS parts; at most {MAX_PARTS} are sent")
    reference = uuid.uuid4().bytes[0]
    header = bytes([0x05, 0x00, 0x03, reference, len(chunks)])
    return name, [header + bytes([i]) + chunk for i, chunk in enumerate(chunks, start=1)]


def address_of(sender: str) -> tuple[int, int, str]:
    """(TON, NPI, address) of a sender ID: international, short code, or alphanumeric."""
    if sender.startswith("+"):
        return 1, 1, sender[1:]
    if sender.isdigit():
        return 3, 0, sender  # network-specific: a short code
    return 5, 0, sender  # alphanumeric


class _Dropped(Exception):
    """The bind is gone (closed, reset, or silent past the timeout): reconnecting may help."""


class _Client(smpplib.client.Client):  # type: ignore[misc]
    """smpplib's client, connecting with a bounded timeout and, for smpps://, TLS that checks
    the SMSC's name (smpplib wraps the socket without one)."""

    def __init__(self, host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> None:
        super().__init__(
            host, port, timeout=timeout, logger_name=_LOGGER, allow_unknown_opt_params=True
        )
        self._tls = tls

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            self._socket = (
                self._tls.wrap_socket(raw, server_hostname=self.host) if self._tls else raw
            )
        except BaseException:
            raw.close()
            raise
        self._socket.settimeout(self.timeout)
        self.state = smpplib.consts.SMPP_CLIENT_STATE_OPEN

    def pending(self) -> bool:
        sock = self._socket
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        return bool(select.select([sock], [], [], 0)[0])


class SmppGateway:
    """One SMSC. `send` is serialised per process; the bind stays open between messages."""

    def __init__(self, settings: SmppSmsSettings) -> None:
        self.settings = settings
        self.name = describe_gateway(settings)
        self._lock = threading.Lock()
        self._client: _Client | None = None
        self._receipts: list[Receipt] = []
        # Unbind when the process ends (a gunicorn worker's exit), as an SMSC expects.
        atexit.register(self.close)

    # -- the interface -------------------------------------------------------------------
    def send(self, to: str, text: str) -> SmsSent:
        try:
            encoding, parts = encode_text(text, self.settings.encoding)
        except DeliveryError as exc:
            raise DeliveryError(f"{self.name}: {exc}") from None
        wait = 4 * self.settings.timeout_seconds
        if not self._lock.acquire(timeout=wait):
            raise DeliveryError(
                f"{self.name}: busy: another message of this process has been on its way "
                f"for {wait:g} s; try again"
            )
        try:
            for attempt in (1, 2):
                reused = self._client is not None
                try:
                    client = self._bound()
                    ids = [
                        self._submit(client, to, part, encoding, len(parts) > 1) for part in parts
                    ]
                except _Dropped as exc:
                    self._close()
                    if reused and attempt == 1:
                        continue  # the kept bind had dropped: bind again, once
                    raise DeliveryError(f"{self.name}: {exc}") from None
                except DeliveryError:
                    self._close()
                    raise
                receipts, self._receipts = tuple(self._receipts), []
                return SmsSent(
                    self.name, tuple(ids), len(parts), encoding, uuid.uuid4().hex[:16], receipts
                )
        finally:
            self._lock.release()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Unbind and disconnect (a send in progress keeps its bind: then nothing is done)."""
        if not self._lock.acquire(timeout=1):
            return
        try:
            client = self._client
            if client is not None:
                with contextlib.suppress(_Dropped, DeliveryError):
                    self._request(client, smpplib.smpp.make_pdu("unbind", client=client), "unbind")
            self._close()
        finally:
            self._lock.release()

    # -- the bind --------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.settings.tls:
            return None
        context = ssl.create_default_context(cafile=self.settings.ca_file)
        if not self.settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _bound(self) -> _Client:
        """The open bind, after reading what the SMSC sent since (receipts, enquire_link,
        unbind); a new connection and bind if there is none or it has dropped."""
        if self._client is not None:
            try:
                while self._client.pending():
                    self._handle(self._client, self._read(self._client, "waiting PDU"))
                return self._client
            except _Dropped:
                self._close()
        return self._bind()

    def _bind(self) -> _Client:
        settings = self.settings
        try:
            password = read_secret(settings.secret, "notify.sms.secret") if settings.secret else ""
        except SecretUnreadable as exc:
            raise DeliveryError(f"{self.name}: {exc}") from None
        if len(password) > 8:
            raise DeliveryError(
                f"{self.name}: the password in notify.sms.secret has {len(password)} characters; "
                "SMPP 3.4 allows at most 8"
            )
        try:
            client = _Client(
                settings.host, settings.port, settings.timeout_seconds, self._tls_context()
            )
        except (ssl.SSLError, OSError) as exc:
            raise DeliveryError(f"{self.name}: notify.sms.ca_file: {exc}") from None
        try:
            client.connect()
        except ssl.SSLError as exc:
            raise DeliveryError(
                f"{self.name}: TLS failed: {exc.reason or exc} (check notify.sms.ca_file and "
                "that the SMSC speaks SMPP over TLS)"
            ) from None
        except TimeoutError:
            raise DeliveryError(
                f"{self.name}: no connection within {settings.timeout_seconds:g} s; check "
                "notify.sms.url and the network path to the SMSC"
            ) from None
        except OSError as exc:
            raise DeliveryError(
                f"{self.name}: unreachable: {exc.strerror or exc}; check notify.sms.url and "
                "that the SMSC is up"
            ) from None
        command = "bind_transceiver" if settings.bind == "transceiver" else "bind_transmitter"
        pdu = smpplib.smpp.make_pdu(
            command,
            client=client,
            system_id=settings.system_id,
            password=password,
            system_type=settings.system_type,
        )
        self._client = client
        try:
            answer = self._request(client, pdu, command)
        except _Dropped as exc:
            raise DeliveryError(f"{self.name}: {command} failed: {exc}") from None
        if answer.is_error():
            status = int(answer.status)
            advice = _BIND_ADVICE.get(status) or (
                f"the SMSC refused the bind: {_status_text(status)}; check notify.sms.system_id "
                "and notify.sms.secret"
            )
            raise DeliveryError(f"{self.name}: {advice}")
        return client

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client._socket is not None:
            with contextlib.suppress(OSError):
                client._socket.close()
            client._socket = None  # type: ignore[assignment]
            client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED

    # -- messages --------------------------------------------------------------------------
    def _submit(self, client: _Client, to: str, part: bytes, encoding: str, udh: bool) -> str:
        ton, npi, source = address_of(self.settings.sender)
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=client,
            service_type="",
            source_addr_ton=ton,
            source_addr_npi=npi,
            source_addr=source,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=to.removeprefix("+"),
            esm_class=ESM_UDHI if udh else 0,
            protocol_id=0,
            priority_flag=0,
            registered_delivery=1 if self.settings.delivery_receipts else 0,
            replace_if_present_flag=0,
            data_coding=DATA_CODING[encoding],
            sm_default_msg_id=0,
            short_message=part,
        )
        answer = self._request(client, pdu, "submit_sm")
        if answer.is_error():
            status = int(answer.status)
            raise DeliveryError(
                f"{self.name}: the SMSC refused the message: {_status_text(status)}; "
                + (
                    "check notify.sms.sender (the SMSC may want a registered sender ID)"
                    if status in (0x0A, 0x48, 0x49)
                    else "check the number and the account at the SMSC"
                )
            )
        return (
            (answer.message_id or b"").decode("ascii", "replace")
            if isinstance(answer.message_id, bytes)
            else str(answer.message_id or "")
        )

    def _request(self, client: _Client, pdu: Any, what: str) -> Any:
        """Send a PDU and read until its answer (same sequence number), handling what the
        SMSC sends meanwhile; bounded by notify.sms.timeout_seconds per read and overall."""
        try:
            client.send_pdu(pdu)
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError):
            raise _Dropped(f"the connection closed while sending {what}") from None
        deadline = time.monotonic() + self.settings.timeout_seconds
        while True:
            answer = self._read(client, f"answer to {what}")
            if answer.sequence == pdu.sequence and answer.command in (
                f"{what}_resp",
                "generic_nack",
            ):
                if answer.command == "generic_nack":
                    raise DeliveryError(
                        f"{self.name}: the SMSC did not understand {what}: "
                        f"{_status_text(int(answer.status))}"
                    )
                return answer
            self._handle(client, answer)
            if time.monotonic() > deadline:
                raise _Dropped(
                    f"no answer to {what} within {self.settings.timeout_seconds:g} s "
                    "(check notify.sms.timeout_seconds and the SMSC's load)"
                )

    def _read(self, client: _Client, what: str) -> Any:
        try:
            return client.read_pdu()
        except TimeoutError:
            raise _Dropped(
                f"no {what} within {self.settings.timeout_seconds:g} s (the SMSC is silent)"
            ) from None
        except smpplib.exceptions.ConnectionError:
            raise _Dropped(f"the SMSC closed the connection (waiting for the {what})") from None
        except (smpplib.exceptions.PDUError, smpplib.exceptions.UnknownCommandError) as exc:
            raise _Dropped(f"the SMSC sent a PDU that cannot be read: {exc}") from None
        except (ssl.SSLError, OSError) as exc:
            raise _Dropped(f"the connection failed: {exc}") from None

    def _handle(self, client: _Client, pdu: Any) -> None:
        """A PDU that answers nothing of ours: a delivery receipt (acknowledged, kept for the
        audit trail), an enquire_link (answered), or the SMSC's unbind (answered; dropped)."""
        if pdu.command == "deliver_sm":
            if int(pdu.esm_class or 0) & ESM_RECEIPT:
                self._receipts.append(_receipt(pdu))
            answer = smpplib.smpp.make_pdu("deliver_sm_resp", client=client)
            answer.sequence = pdu.sequence
            self._send_answer(client, answer)
        elif pdu.command == "enquire_link":
            answer = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
            answer.sequence = pdu.sequence
            self._send_answer(client, answer)
        elif pdu.command == "unbind":
            answer = smpplib.smpp.make_pdu("unbind_resp", client=client)
            answer.sequence = pdu.sequence
            try:
                self._send_answer(client, answer)
            finally:
                raise _Dropped("the SMSC ended the bind (unbind)")

    @staticmethod
    def _send_answer(client: _Client, pdu: Any) -> None:
        try:
            client.send_pdu(pdu)
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError):
            raise _Dropped("the connection closed") from None


def _receipt(pdu: Any) -> Receipt:
    """A delivery receipt from its TLVs, or else from the text SMSCs conventionally send
    (`id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD err:000 text:…`)."""
    raw = pdu.short_message or b""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    fields: dict[str, str] = {}
    for token in (
        text.replace("submit date:", "submit_date:").replace("done date:", "done_date:").split()
    ):
        key, sep, value = token.partition(":")
        if sep and key.lower() in ("id", "stat", "err"):
            fields[key.lower()] = value
    message_id = pdu.receipted_message_id
    if isinstance(message_id, bytes):
        message_id = message_id.decode("ascii", "replace")
    states = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD"}
    states.update({7: "UNKNOWN", 8: "REJECTD"})
    state = states.get(int(pdu.message_state)) if pdu.message_state is not None else None
    return Receipt(
        message_id=str(message_id or fields.get("id", "")),
        state=state or fields.get("stat", "UNKNOWN"),
        error=fields.get("err"),
    )


def _status_text(status: int) -> str:
    text = smpplib.consts.DESCRIPTIONS.get(status, "unknown status")
    return f"{text} (0x{status:08X})"
