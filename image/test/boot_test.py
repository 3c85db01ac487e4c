"""Boot the appliance image under qemu (TCG, OVMF, disk in snapshot mode, user networking
restricted to one forwarded HTTPS port and two lines to this host: SMTP and syslog) with site
settings given both ways the first boot reads them — systemd credentials (SMBIOS, fw_cfg) and a
second disk labelled SIGNET-SITE — then check it as a site would: /health over TLS with the
site's certificate, the first administrator (password from the console) activates his credential
with the mailed code, authorizes with a mailed OTP and signs; openssl on this host verifies the
signature, and the audit records of the service start and of that signature reach the syslog
collector. Prints the boot-to-health time and the sandbox score the first boot reported."""

import argparse
import base64
import email
import email.policy
import hashlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from image_pki import make_site_tls

from signet.client import CscClient
from signet.config import PLACEHOLDER_ENTERPRISE_NUMBER
from tests.siem_parsers import Syslog, parse_rfc5424

ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
SERVER_NAME = "signet.local"
REPOSITORY = Path(__file__).resolve().parents[2]
# The administrator's address: the SMBIOS credential; the site disk gives another, which loses.
ADMIN_EMAIL, DISK_ADMIN_EMAIL = "admin@signet.test", "not-this-one@signet.test"
# What the site disk carries: the OTP gateway (SMTP to the sink) and one syslog sink, TCP with
# octet counting, both reached through guestfwd lines to this host.
SITE_SETTINGS = """\
[notify]
email_backend = "smtp"

[notify.smtp]
host = "10.0.2.100"
port = 25
security = "none"
sender = "signet@signet.local"

[events.sinks.siem]
host = "10.0.2.100"
port = 514
transport = "tcp"
format = "rfc5424"
"""


class Mailbox:
    """SMTP sink the appliance's OTP gateway delivers to (aiosmtpd handler)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.recipients: set[str] = set()

    async def handle_DATA(self, server, session, envelope):
        # The text as the user reads it: transfer encoding undone, CRLF line ends gone.
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
        self.recipients.update(envelope.rcpt_tos)
        self.messages.append(body.get_content() if body is not None else "")
        return "250 OK"

    def wait_for(self, pattern: str, after: int, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages[after:]:
                if match := re.search(pattern, message, re.M):
                    return match.group(1)
            time.sleep(0.5)
        raise AssertionError(f"no mail matching {pattern!r} within {timeout:.0f} s")


class SyslogCatcher:
    """The SIEM's collector: tests/molecule/standin_receive.py taking RFC 6587 octet-counted
    frames on a loopback port, one message a line in a file, read back with the RFC 5424
    parser of tests/siem_parsers.py."""

    def __init__(self, port: int, work: Path) -> None:
        self.port, self.log = port, work / "siem.log"
        self.log.touch()
        receiver = REPOSITORY / "tests" / "molecule" / "standin_receive.py"
        self.process = subprocess.Popen(
            [sys.executable, str(receiver), "tcp-frames", str(port), str(self.log)]
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the syslog catcher did not listen on {port}") from None
                time.sleep(0.1)

    def messages(self) -> list[Syslog]:
        text = self.log.read_text(errors="replace")
        return [parse_rfc5424(line) for line in text[: text.rfind("\n") + 1].splitlines()]

    def wait_for(self, found, what: str, timeout: float = 120) -> list[Syslog]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found(messages := self.messages()):
                return messages
            time.sleep(1)
        raise AssertionError(f"the syslog collector never received {what}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def site_disk(work: Path, files: dict[str, str]) -> Path:
    """A small vfat disk labelled SIGNET-SITE with credential files, made without root."""
    disk = work / "site.img"
    subprocess.run(["mkfs.vfat", "-C", "-n", "SIGNET-SITE", str(disk), "2048"], check=True,
                   capture_output=True)  # fmt: skip
    for name, content in files.items():
        (work / name).write_text(content)
        subprocess.run(["mcopy", "-i", str(disk), str(work / name), f"::{name}"], check=True)
    return disk


def qemu_command(image: Path, work: Path, https_port: int, ports: dict[str, int]) -> list[str]:
    vars_copy = work / "OVMF_VARS.fd"
    shutil.copy(OVMF_VARS, vars_copy)
    relay = f"{sys.executable} {Path(__file__).with_name('guest_relay.py')}"
    net = (
        f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{https_port}-:443,"
        f"guestfwd=tcp:10.0.2.100:25-cmd:{relay} {ports['smtp']},"
        f"guestfwd=tcp:10.0.2.100:514-cmd:{relay} {ports['syslog']}"
    )
    command = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-machine",
        "q35",
        "-smp",
        "2",
        "-m",
        "2048",
        "-display",
        "none",
        "-nodefaults",
        "-serial",
        f"file:{work / 'serial.log'}",
        "-drive",
        f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
        "-drive",
        f"if=pflash,format=raw,file={vars_copy}",
        "-drive",
        f"if=virtio,format=raw,snapshot=on,file={image}",
        # The site disk: signet.settings and a losing signet.admin-email.
        "-drive",
        f"if=virtio,format=raw,readonly=on,file={work / 'site.img'}",
        "-nic",
        net,
        # A short one as an SMBIOS type 11 string; files through fw_cfg.
        "-smbios",
        f"type=11,value=io.systemd.credential:signet.admin-email={ADMIN_EMAIL}",
    ]
    for name in ("tls-certificate", "tls-key"):
        command += ["-fw_cfg", f"name=opt/io.systemd.credentials/signet.{name},file={work / name}"]
    return command


def wait_for_health(base: str, ca: Path, qemu: subprocess.Popen, timeout: float) -> dict:
    started, seen = time.monotonic(), None
    while time.monotonic() < started + timeout:
        if qemu.poll() is not None:
            raise AssertionError(f"qemu exited with status {qemu.returncode}")
        try:
            response = requests.get(f"{base}/health", verify=str(ca), timeout=10)
            if response.status_code == 200:
                return response.json()
            status = f"HTTP {response.status_code}"
        except (
            requests.ConnectionError,
            requests.Timeout,
        ):  # slirp accepts before the guest listens
            status = "no answer"
        if status != seen:
            print(f"[{time.monotonic() - started:4.0f} s] /health: {status}", flush=True)
            seen = status
        time.sleep(2)
    raise AssertionError(f"/health did not answer 200 within {timeout:.0f} s")


def console_value(serial: Path, pattern: str, timeout: float = 60) -> str:
    """The first group of `pattern` on the serial console (the first boot's banner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := re.search(pattern, serial.read_text(errors="replace")):
            return match.group(1)
        time.sleep(1)
    raise AssertionError(f"the console never showed {pattern!r}")


def sign_and_verify(
    base: str, ca: Path, password: str, mail: Mailbox, work: Path
) -> tuple[str, bytes]:
    """Sign a hash as admin and verify it here; return the credential's ID and the hash."""
    client = CscClient(base, verify=str(ca))
    client.login("admin", password)
    listing = client.call("credentials/list", {})
    assert listing["credentialIDs"], "the first boot made no credential for admin"
    credential_id = listing["credentialIDs"][0]
    code = mail.wait_for(r"^\s+([0-9A-Z]{5}-[0-9A-Z]{5})\s*$", 0)
    client.activate(credential_id, code)
    info = client.credential_info(credential_id)
    certificate = x509.load_der_x509_certificate(base64.b64decode(info["cert"]["certificates"][0]))

    document = b"signed by the Signet appliance boot test"
    digest = hashlib.sha256(document).digest()
    before = len(mail.messages)
    client.send_otp(credential_id)
    otp = mail.wait_for(r"^\s+(\d{6,8})\s*$", before)
    sad = client.authorize(credential_id, [digest], "sha256", factor="OTP", value=otp)
    signature = client.sign_hash(credential_id, sad, [digest], "sha256", ECDSA_SHA256)[0]

    (work / "document").write_bytes(document)
    (work / "signature").write_bytes(signature)
    (work / "public.pem").write_bytes(
        certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    result = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            work / "public.pem",
            "-signature",
            work / "signature",
            work / "document",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stdout + result.stderr
    print(
        f"signature by {certificate.subject.rfc4514_string()}: openssl says {result.stdout.strip()}"
    )
    assert mail.recipients == {ADMIN_EMAIL}, f"mail went to {mail.recipients}, not {ADMIN_EMAIL}"
    return credential_id, digest


def check_audit_forwarded(siem: SyslogCatcher, credential_id: str, digest: bytes) -> None:
    """The service start and the signature's record reached the collector, in RFC 5424 with
    Signet's SD-ID, chained, the signed hash in the record."""
    sd_id = f"signet@{PLACEHOLDER_ENTERPRISE_NUMBER}"
    signed = base64.b64encode(digest).decode()

    def signature(message: Syslog) -> bool:
        params = message.sd.get(sd_id, {})
        return (
            message.msgid == "signature.created"
            and params.get("subject") == credential_id
            and params.get("actor") == "admin"
            and signed in message.msg
        )

    messages = siem.wait_for(
        lambda got: any(m.msgid == "service.started" for m in got) and any(map(signature, got)),
        "service.started and the signature's signature.created",
    )
    audit = [m for m in messages if m.sd.get(sd_id, {}).get("kind") == "audit"]
    assert audit and all(m.sd[sd_id]["integrity"] == "chained" for m in audit), [
        (m.msgid, m.sd.get(sd_id)) for m in audit if m.sd[sd_id].get("integrity") != "chained"
    ]
    assert all(m.facility == 13 and m.hostname == "signet" for m in messages)
    # The forwarder's own probes see the HSM (its sandbox lets it open the token's files).
    down = [m.msg for m in messages if m.msgid == "hsm.unreachable"]
    assert not down, f"the forwarder reported the HSM down: {down[0]}"
    print(
        f"syslog collector: {len(messages)} messages ({len(audit)} audit records), "
        f"{', '.join(sorted({m.msgid for m in messages}))}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--https-port", type=int, default=56501)
    parser.add_argument("--smtp-port", type=int, default=56502)
    parser.add_argument("--syslog-port", type=int, default=56503)
    parser.add_argument("--timeout", type=float, default=900, help="seconds until /health")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="signet-image-test."))
    ca = make_site_tls(work, SERVER_NAME)
    # The site's settings from the disk only; the administrator's address from both (SMBIOS wins).
    site_disk(
        work, {"signet.settings": SITE_SETTINGS, "signet.admin-email": DISK_ADMIN_EMAIL + "\n"}
    )
    mail = Mailbox()
    smtp = Controller(mail, hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    siem = SyslogCatcher(args.syslog_port, work)
    base = f"https://{SERVER_NAME}:{args.https_port}"
    # The certificate names signet.local: resolve it to the forwarded port, verify it for real.
    session_resolve = {SERVER_NAME: "127.0.0.1"}
    _patch_resolution(session_resolve)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop qemu below
    started = time.monotonic()
    ports = {"smtp": args.smtp_port, "syslog": args.syslog_port}
    qemu = subprocess.Popen(qemu_command(args.image, work, args.https_port, ports))
    try:
        health = wait_for_health(base, ca, qemu, args.timeout)
        print(
            f"boot to /health over TLS: {time.monotonic() - started:.0f} s; {health.get('status')}"
        )
        password = console_value(work / "serial.log", r"password \(shown once\):\s*(\S+)")
        exposure = console_value(
            work / "serial.log", r"Overall exposure level for signet\.service:\s*([\d.]+ \w+)"
        )
        print(f"systemd-analyze security signet.service: {exposure}")
        # What the first boot's banner says it took from the site disk (names only) and what
        # it left to SMBIOS.
        taken = console_value(
            work / "serial.log", r"site disk /dev/\w+ \(vfat[^)]*\): (took [^\r\n]*)"
        )
        print(f"first boot, site disk: {taken}")
        assert taken.startswith("took signet.settings;") and taken.endswith(
            "the system credentials win over its signet.admin-email"
        ), taken
        forwarder = console_value(
            work / "serial.log", r"Event forwarder \(signet-events\): ([^\r\n]*)"
        )
        assert forwarder == "enabled for the sinks: siem", forwarder
        credential_id, digest = sign_and_verify(base, ca, password, mail, work)
        check_audit_forwarded(siem, credential_id, digest)
        assert exposure.split()[1] in ("SAFE", "OK"), f"signet.service exposure is {exposure}"
    except AssertionError as failure:
        print(f"FAILED: {failure}\n--- serial console (tail) ---", file=sys.stderr)
        print(
            "\n".join((work / "serial.log").read_text(errors="replace").splitlines()[-40:]),
            file=sys.stderr,
        )
        return 1
    finally:
        qemu.terminate()
        qemu.wait(timeout=30)
        smtp.stop()
        siem.stop()
    shutil.rmtree(work)
    return 0


def _patch_resolution(names: dict[str, str]) -> None:
    """Resolve the certificate's name to loopback for this process (no /etc/hosts edit)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *rest, **kwargs):
        return real(names.get(host, host), *rest, **kwargs)

    socket.getaddrinfo = getaddrinfo


if __name__ == "__main__":
    sys.exit(main())
