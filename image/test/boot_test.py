"""Boot the appliance image under qemu (TCG, OVMF, disk in snapshot mode, user networking
restricted to one forwarded HTTPS port and one SMTP line to this host) with site settings given
as systemd credentials, then check it as a site would: /health over TLS with the site's
certificate, the first administrator (password from the console) activates his credential with
the mailed code, authorizes with a mailed OTP and signs; openssl on this host verifies the
signature. Prints the boot-to-health time and the sandbox score the first boot reported."""

import argparse
import base64
import email
import email.policy
import hashlib
import re
import shutil
import signal
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

ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
SERVER_NAME = "signet.local"


class Mailbox:
    """SMTP sink the appliance's OTP gateway delivers to (aiosmtpd handler)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        # The text as the user reads it: transfer encoding undone, CRLF line ends gone.
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
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


def qemu_command(image: Path, work: Path, https_port: int, smtp_port: int) -> list[str]:
    vars_copy = work / "OVMF_VARS.fd"
    shutil.copy(OVMF_VARS, vars_copy)
    relay = f"{sys.executable} {Path(__file__).with_name('smtp_relay.py')} {smtp_port}"
    net = (
        f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{https_port}-:443,"
        f"guestfwd=tcp:10.0.2.100:25-cmd:{relay}"
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
        "-nic",
        net,
        # A short one as an SMBIOS type 11 string; files through fw_cfg.
        "-smbios",
        "type=11,value=io.systemd.credential:signet.admin-email=admin@signet.test",
    ]
    for name in ("settings", "tls-certificate", "tls-key"):
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


def sign_and_verify(base: str, ca: Path, password: str, mail: Mailbox, work: Path) -> None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--https-port", type=int, default=56501)
    parser.add_argument("--smtp-port", type=int, default=56502)
    parser.add_argument("--timeout", type=float, default=900, help="seconds until /health")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="signet-image-test."))
    ca = make_site_tls(work, SERVER_NAME)
    (work / "settings").write_text(
        '[notify]\nemail_backend = "smtp"\n\n[notify.smtp]\nhost = "10.0.2.100"\nport = 25\n'
        'security = "none"\nsender = "signet@signet.local"\n'
    )
    mail = Mailbox()
    smtp = Controller(mail, hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    base = f"https://{SERVER_NAME}:{args.https_port}"
    # The certificate names signet.local: resolve it to the forwarded port, verify it for real.
    session_resolve = {SERVER_NAME: "127.0.0.1"}
    _patch_resolution(session_resolve)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop qemu below
    started = time.monotonic()
    qemu = subprocess.Popen(qemu_command(args.image, work, args.https_port, args.smtp_port))
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
        sign_and_verify(base, ca, password, mail, work)
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
    shutil.rmtree(work)
    return 0


def _patch_resolution(names: dict[str, str]) -> None:
    """Resolve the certificate's name to loopback for this process (no /etc/hosts edit)."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, *rest, **kwargs):
        return real(names.get(host, host), *rest, **kwargs)

    socket.getaddrinfo = getaddrinfo


if __name__ == "__main__":
    sys.exit(main())
