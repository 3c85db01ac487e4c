"""OpenSSL 3 through libp11's pkcs11 engine (Debian 12 has no pkcs11-provider) with
libsignet-vc.so: a signature and a CSR made with the remote key, and TLS 1.2 and 1.3 client
authentication (1.3 signs with RSA-PSS) against `openssl s_server -Verify`."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.vc.conftest import MODULE, SECRET, Card

TLS_PORTS = iter(range(56970, 56990))  # the server of conftest takes 56951
ENGINE = Path("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so")
DATA = b"signed through OpenSSL's pkcs11 engine\n"


def uri(label: str) -> str:
    """The key's RFC 7512 URI, with alice's password for the token login."""
    object_label = label.replace(" ", "%20")
    return f"pkcs11:token=alice;object={object_label};type=private?pin-value={SECRET}"


@pytest.fixture(scope="module")
def ossl(card: Card) -> dict[str, str]:
    """The consumer's environment with an openssl.cnf that loads the engine on our module."""
    if not ENGINE.exists():
        pytest.fail("libengine-pkcs11-openssl is not installed: run make vc-test")
    conf = card.tmp / "openssl.cnf"
    conf.write_text(
        "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n"
        f"[pkcs11]\nengine_id = pkcs11\ndynamic_path = {ENGINE}\nMODULE_PATH = {MODULE}\n"
        "init = 0\n[req]\ndistinguished_name = dn\n[dn]\n"
    )
    # libp11 asks CKA_ALWAYS_AUTHENTICATE keys' PIN through OpenSSL's UI, whose callback data
    # (-passin) is gone by signing time; with a protected authentication path it logs in with
    # no PIN and the module asks through the account's askpass command instead
    return {**card.askpass_env, "OPENSSL_CONF": str(conf)}


def openssl(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, env=env, timeout=120, **kw
    )
    assert done.returncode == 0, f"openssl {args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.mark.parametrize("key", ["rsa-2048", "ec-p256"])
def test_dgst_sign(card: Card, ossl: dict[str, str], key: str) -> None:
    data, sig = card.tmp / "dgst.bin", card.tmp / f"dgst-{key}.sig"
    data.write_bytes(DATA)
    openssl(ossl, "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine",
            "-sign", uri(f"alice {key}"), "-out", str(sig), str(data))  # fmt: skip
    cert = card.certificate(card.rsa if key.startswith("rsa") else card.ec)
    pub = card.tmp / f"{key}.pub"
    openssl(card.env, "x509", "-in", str(cert), "-pubkey", "-noout", "-out", str(pub))
    done = openssl(card.env, "dgst", "-sha256", "-verify", str(pub), "-signature", str(sig),
                   str(data))  # fmt: skip
    assert "Verified OK" in done.stdout


def test_csr(card: Card, ossl: dict[str, str]) -> None:
    csr = card.tmp / "alice.csr"
    openssl(ossl, "req", "-new", "-engine", "pkcs11", "-keyform", "engine",
            "-key", uri("alice rsa-2048"), "-subj", "/CN=alice virtual card", "-out", str(csr))  # fmt: skip
    done = openssl(card.env, "req", "-in", str(csr), "-verify", "-noout", "-subject")
    assert "verify OK" in (done.stdout + done.stderr)
    assert "alice virtual card" in done.stdout


def _server(card: Card, port: int, version: str) -> subprocess.Popen[str]:
    cert = card.tmp / "server.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(card.tmp / "server.key"), "-out", str(cert),
             "-subj", "/CN=localhost", "-days", "2"],
            check=True, capture_output=True, env=card.env,
        )  # fmt: skip
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(card.tmp / "server.key"), "-Verify", "2", "-verify_return_error",
         "-CAfile", str(card.root_pem), f"-{version}", "-www"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=card.env,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.kill()
    raise AssertionError("s_server did not start")


@pytest.mark.parametrize(
    ("version", "key"),
    [("tls1_2", "rsa-2048"), ("tls1_3", "rsa-2048"), ("tls1_2", "ec-p256"), ("tls1_3", "ec-p256")],
)
def test_tls_client_authentication(card: Card, ossl: dict[str, str], version: str, key: str):
    port = next(TLS_PORTS)
    server = _server(card, port, version)
    cert = card.certificate(card.rsa if key.startswith("rsa") else card.ec)
    card.askpass_log.unlink(missing_ok=True)
    try:
        client = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", f"-{version}",
             "-engine", "pkcs11", "-keyform", "engine", "-key", uri(f"alice {key}"),
             "-cert", str(cert), "-ign_eof"],
            input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, env=ossl, timeout=120,
        )  # fmt: skip
    finally:
        server.kill()
    out, _ = server.communicate(timeout=60)
    assert client.returncode == 0, client.stderr
    page = client.stdout  # s_server -www: the session as the server saw it
    assert ("TLSv1.3" if version == "tls1_3" else "TLSv1.2") in page
    assert "Client certificate" in page, page
    assert "verify error" not in out
    # the CertificateVerify went through the module: the askpass saw the hash and mechanism
    shown = card.askpass_log.read_text()
    assert "SIGNET_VC_HASH=" in shown and "SIGNET_VC_APPLICATION=openssl" in shown
    if key.startswith("rsa"):
        # TLS 1.3 signs with RSA-PSS only; TLS 1.2 with PSS or PKCS#1 v1.5, as negotiated
        expected = "pss" if version == "tls1_3" else ""
        assert f"SIGNET_VC_MECHANISM={expected}" in shown, shown
    else:
        assert "SIGNET_VC_MECHANISM=ecdsa sha256" in shown, shown
