"""Sinks: where forwarded events go. A Sink takes events in order and either delivers all of
them or raises SinkDown; the syslog sink speaks UDP, TCP with octet counting, TLS, and RELP
(plain or over TLS: acknowledged per message) (the SNMP sink is events.snmp;
signing.forwarding builds each from its settings)."""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Sequence
from typing import Protocol

from signet.config import EventsSettings, SyslogSinkSettings
from signet.events.messages import Forwarded, syslog_message
from signet.events.relp import RelpError, RelpSession


class SinkDown(Exception):
    """The sink did not take the events; the message names the sink and why. The forwarder
    keeps its cursor and tries again."""


class Sink(Protocol):
    """A destination for events. `send` delivers every event of the batch, in order, or raises
    SinkDown (some may have been delivered: delivery is at least once)."""

    name: str

    def send(self, events: Sequence[Forwarded]) -> None: ...

    def close(self) -> None: ...


class SyslogSink:
    """RFC 5424 messages to one collector: UDP datagrams (RFC 5426), or one TCP stream with
    octet counting (RFC 6587), with TLS (RFC 5425: the collector's certificate verified, an
    optional client certificate). The stream is kept open between batches and reopened after
    a failure."""

    def __init__(
        self,
        name: str,
        settings: SyslogSinkSettings,
        events: EventsSettings,
        *,
        host: str,
        procid: str,
        version: str,
    ) -> None:
        self.name = name
        self.settings = settings
        self._events = events
        self._host = host
        self._procid = procid
        self._version = version
        self._sock: socket.socket | None = None
        self._relp: RelpSession | None = None
        self._tls: ssl.SSLContext | None = None

    def _render(self, item: Forwarded) -> bytes:
        return syslog_message(
            item,
            body_format=self.settings.format,
            facility=self.settings.facility,
            host=self._host,
            app_name=self._events.app_name,
            procid=self._procid,
            enterprise_number=self._events.enterprise_number,
            version=self._version,
        )

    def _where(self) -> str:
        s = self.settings
        return f"sink {self.name} ({s.transport}://{s.host}:{s.effective_port})"

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            s = self.settings
            try:
                context = ssl.create_default_context(cafile=s.ca_file)
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                if s.client_cert_file and s.client_key_file:
                    context.load_cert_chain(s.client_cert_file, s.client_key_file)
            except (OSError, ssl.SSLError) as exc:
                raise SinkDown(
                    f"{self._where()}: cannot load its TLS files "
                    f"(events.sinks.{self.name}.ca_file / client_cert_file): {exc}"
                ) from exc
            self._tls = context
        return self._tls

    def _connect(self) -> socket.socket:
        s = self.settings
        if s.transport == "udp":
            family = socket.getaddrinfo(s.host, s.effective_port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family[0], socket.SOCK_DGRAM)
            sock.connect(family[4])
            return sock
        sock = socket.create_connection((s.host, s.effective_port), timeout=s.timeout_seconds)
        try:
            if s.transport in ("tls", "relp-tls"):
                sock = self._tls_context().wrap_socket(
                    sock, server_hostname=s.server_name or s.host
                )
            if s.transport in ("relp", "relp-tls"):
                self._relp = RelpSession(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _still_open(self, sock: socket.socket) -> bool:
        """Whether a kept stream is still open: a collector that closed it (a restart) would
        otherwise swallow the next batch into a socket it no longer reads. A collector sends
        nothing back, so anything readable is the end of the stream or an error."""
        if self.settings.transport == "udp":
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        sock.setblocking(False)
        try:
            # TLS 1.3 session tickets make a fresh stream readable: they are no end.
            return sock.recv(1) != b""
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False

    def send(self, events: Sequence[Forwarded]) -> None:
        try:
            if self._sock is not None and not self._still_open(self._sock):
                self.close()
            if self._sock is None:
                self._sock = self._connect()
            sock = self._sock
            if self.settings.transport == "udp":
                for item in events:
                    sock.send(self._render(item))
            elif self._relp is not None:
                sock.settimeout(self.settings.timeout_seconds)
                self._relp.send([self._render(item) for item in events])
            else:
                frames = b"".join(
                    b"%d %s" % (len(message), message)
                    for message in (self._render(item) for item in events)
                )
                sock.settimeout(self.settings.timeout_seconds)
                sock.sendall(frames)
        except (OSError, ValueError, RelpError) as exc:  # ssl.SSLError is an OSError
            self.close()
            raise SinkDown(f"{self._where()}: {exc}") from exc

    def close(self) -> None:
        if self._relp is not None:
            self._relp.close()
            self._relp = None
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
