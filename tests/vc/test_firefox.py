"""Firefox (Debian's firefox-esr, headless) with libsignet-vc.so loaded into a fresh profile
authenticates TLS with alice's remote key: `openssl s_server -Verify 1` on loopback requires a
client certificate issued by Signet's CA, and Firefox sends alice's without a dialog.

Firefox is driven over Marionette (its JSON protocol on a socket; no geckodriver, and no
system access: only content commands). The module is added to the profile's NSS database with
modutil, as a user's Security Devices → Load does, and not by an enterprise policy, which
would need a policies.json in Firefox's own installation folder. Nothing is logged in or
cached beforehand: when the server asks for a certificate Firefox logs in to the token itself
— a token with a protected authentication path, so C_Login without a PIN, answered by the
account's askpass — and the signature of the handshake is a C_Sign that asks askpass again
(`context_login = false`), with Firefox's name and the hash in its environment."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from asn1crypto import pem, x509

from tests.helpers import port_in
from tests.vc.conftest import MODULE, Card

FIREFOX = shutil.which("firefox-esr")  # installed by `make vc-test-deps`
PORTS = range(57400, 57420)

# A fresh profile that starts quietly and offline from Mozilla's services, and answers a
# server's certificate request with the first of the certificates that fit, without asking.
PREFS = {
    "security.default_personal_cert": "Select Automatically",
    "security.remember_cert_checkbox_default_setting": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.proxy.type": 0,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "services.settings.server": "http://127.0.0.1:1/",
    "security.OCSP.enabled": 0,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
}


class Marionette:
    """Enough of Marionette's protocol: `length:json` frames, commands `[0, id, name, params]`,
    answers `[1, id, error, result]`."""

    def __init__(self, port: int, deadline: float) -> None:
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.reader = self.sock.makefile("rb")
        self.next_id = 0
        hello = self._read()
        assert hello.get("marionetteProtocol") == 3, hello

    def _read(self) -> Any:
        size = b""
        while not size.endswith(b":"):
            byte = self.reader.read(1)
            assert byte, "Marionette closed the connection"
            size += byte
        return json.loads(self.reader.read(int(size[:-1])))

    def __call__(self, name: str, **params: Any) -> Any:
        self.next_id += 1
        body = json.dumps([0, self.next_id, name, params]).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body)
        kind, answer_id, error, result = self._read()
        assert (kind, answer_id) == (1, self.next_id)
        assert error is None, f"{name}: {error}"
        return result

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _server_pki(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA for the TLS server (trusted in the profile) and its certificate for 127.0.0.1."""
    ca_key, ca, key, cert = (tmp / n for n in ("ca.key", "ca.pem", "server.key", "server.pem"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-subj", "/CN=firefox test CA",
         "-days", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-CA", str(ca), "-CAkey", str(ca_key), "-days", "2",
         "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=CA:FALSE",
         "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True,
    )  # fmt: skip
    return ca, key, cert


def _listening(port: int, process: subprocess.Popen[Any], deadline: float) -> None:
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def test_firefox_tls_client_auth(card: Card) -> None:
    assert FIREFOX is not None, "firefox-esr is not installed (make vc-test-deps)"
    tmp = card.tmp / "firefox"
    shutil.rmtree(tmp, ignore_errors=True)
    profile = tmp / "profile"
    profile.mkdir(parents=True)
    # its own home, and an empty certificate cache: the token shows nothing before a login
    env = {**card.sign_ask_env, "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / "cache")}
    env.pop("DISPLAY", None)
    ca, key, cert = _server_pki(tmp)

    # the profile's NSS database: the module as a security device, the server's CA trusted
    card.run("certutil", "-N", "-d", f"sql:{profile}", "--empty-password")
    card.run("modutil", "-dbdir", f"sql:{profile}", "-add", "signet-vc", "-libfile",
             str(MODULE), "-force", env_extra=env)  # fmt: skip
    card.run("certutil", "-A", "-d", f"sql:{profile}", "-n", "firefox test CA", "-t", "C,,",
             "-i", str(ca))  # fmt: skip
    marionette_port = port_in(PORTS)
    prefs = {**PREFS, "marionette.port": marionette_port}
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())
    )

    tls_port = port_in(range(marionette_port + 1, PORTS.stop))
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{tls_port}", "-cert", str(cert),
         "-key", str(key), "-Verify", "1", "-verify_return_error",
         "-CAfile", str(card.root_pem), "-www"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    firefox_log = tmp / "firefox.log"
    firefox = subprocess.Popen(
        [FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile)],
        env=env, stdout=firefox_log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    card.askpass_log.unlink(missing_ok=True)
    try:
        deadline = time.monotonic() + 40
        _listening(tls_port, server, deadline)
        browser = Marionette(marionette_port, deadline)
        try:
            # a dialog Firefox would wait on (a certificate or password prompt) fails the
            # page load after 30 s instead of hanging
            browser(
                "WebDriver:NewSession",
                capabilities={"acceptInsecureCerts": False, "timeouts": {"pageLoad": 30_000}},
            )
            browser("WebDriver:Navigate", url=f"https://127.0.0.1:{tls_port}/")
            page = browser("WebDriver:GetPageSource")["value"]
        finally:
            browser.close()
    finally:
        firefox.terminate()
        try:
            firefox.wait(timeout=20)
        except subprocess.TimeoutExpired:
            firefox.kill()
            firefox.wait()
        server.kill()
        server.communicate(timeout=30)

    # s_server -www shows the connection: TLS 1.3, and the client certificate it verified
    assert "TLSv1.3" in page, page[-3000:] + firefox_log.read_text()[-3000:]
    assert "Client certificate" in page, page[-3000:]
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    shown = page[page.index(begin) : page.index(end) + len(end)].encode()
    sent = x509.Certificate.load(pem.unarmor(shown)[2])
    alice = {
        x509.Certificate.load(pem.unarmor(card.certificate(c).read_bytes())[2]).sha256: c
        for c in (card.rsa, card.ec)
    }
    assert sent.sha256 in alice, sent.subject.human_friendly
    label = "alice rsa-2048" if alice[sent.sha256] == card.rsa else "alice ec-p256"
    # Firefox logged in to the token, then signed the handshake with that credential through
    # the module, each asked for in its name
    asked = card.askpass_log.read_text().split("SIGNET_VC_APPLICATION=")[1:]
    assert all(a.startswith("firefox") for a in asked), asked
    assert "SIGNET_VC_PROMPT=password" in asked[0], asked
    assert any(f"SIGNET_VC_CREDENTIAL={label}" in a and "SIGNET_VC_HASH=" in a for a in asked)
