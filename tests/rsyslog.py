"""A real rsyslog of the test's own (own configuration, pid file and work directory) on
loopback, receiving over UDP, TCP (octet counting) and TLS (RFC 5425, client certificate
required), writing each message as it arrived, one per line, into a file per transport."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Ports given to this area (56400-56449).
UDP_PORT, TCP_PORT, TLS_PORT = 56401, 56402, 56403
RELP_PORT, RELP_TLS_PORT = 56404, 56405


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: a sink trusting it must refuse the server


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_pki(base: Path) -> Pki:
    """A throw-away CA, a server certificate for localhost/127.0.0.1 and a client one."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str, path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    ca_key, ca_cert = ca("SIEM test CA", base / "ca.pem")
    ca("Unrelated CA", base / "other-ca.pem")

    def leaf(cn: str, usage: x509.ObjectIdentifier, stem: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        (base / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, base / f"{stem}.key")

    leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH, "server")
    leaf("signet-node", ExtendedKeyUsageOID.CLIENT_AUTH, "client")
    return Pki(
        base / "ca.pem",
        base / "server.pem",
        base / "server.key",
        base / "client.pem",
        base / "client.key",
        base / "other-ca.pem",
    )


_CONFIG = """
global(workDirectory="{work}" maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="{pki.ca}"
       DefaultNetstreamDriverCertFile="{pki.server_cert}"
       DefaultNetstreamDriverKeyFile="{pki.server_key}")
module(load="imudp")
module(load="imtcp" MaxSessions="50")
module(load="imrelp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="udp") {{ action(type="omfile" file="{out}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{out}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{out}/tls.log" template="raw") }}
ruleset(name="relp") {{ action(type="omfile" file="{out}/relp.log" template="raw") }}
ruleset(name="relp-tls") {{ action(type="omfile" file="{out}/relp-tls.log" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls"
      StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
input(type="imrelp" address="127.0.0.1" port="{relp}" ruleset="relp")
input(type="imrelp" address="127.0.0.1" port="{relp_tls}" ruleset="relp-tls"
      tls="on" tls.caCert="{pki.ca}" tls.myCert="{pki.server_cert}"
      tls.myPrivKey="{pki.server_key}" tls.authMode="certvalid")
"""


class Rsyslog:
    """Start, stop (to play a collector that is down) and read one rsyslog instance."""

    def __init__(self, base: Path, pki: Pki) -> None:
        self.base, self.pki = base, pki
        self.work, self.out = base / "work", base / "out"
        self.work.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self.conf = base / "rsyslog.conf"
        self.pidfile = base / "rsyslog.pid"
        self.conf.write_text(
            _CONFIG.format(
                work=self.work,
                out=self.out,
                pki=pki,
                udp=UDP_PORT,
                tcp=TCP_PORT,
                tls=TLS_PORT,
                relp=RELP_PORT,
                relp_tls=RELP_TLS_PORT,
            )
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = base / "rsyslogd.stderr"

    def start(self) -> None:
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        check = subprocess.run([rsyslogd, "-N1", "-f", str(self.conf)], capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [rsyslogd, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                for port in (TLS_PORT, RELP_PORT, RELP_TLS_PORT):
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        pass
                with socket.create_connection(("127.0.0.1", TCP_PORT), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"rsyslogd did not start:\n{self.log.read_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def lines(self, transport: str) -> list[str]:
        """The complete lines so far: rsyslog may be midway through writing the last one."""
        path = self.out / f"{transport}.log"
        text = path.read_text() if path.exists() else ""
        return text[: text.rfind("\n") + 1].splitlines()

    def wait_for(self, transport: str, count: int, timeout: float = 30) -> list[str]:
        """The messages received so far, once there are at least `count` (rsyslog writes
        asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines(transport)
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)
