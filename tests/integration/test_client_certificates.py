"""Logins with a TLS client certificate, on each database engine: gunicorn terminating TLS
itself (real handshakes by requests and openssl s_client), and a reverse proxy's header (from
a trusted address only). A valid certificate gets a token whose methods say x509 and with which
a PIN credential under the qualified policy signs; expired, revoked (CRL and OCSP), foreign and
unmapped certificates are refused with CSC error JSON and an audit record."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256
from sqlalchemy import select

from signet.store import AuditRecord
from tests.helpers import enrol, signet_cli
from tests.integration.csc_http import PASSWORD, SHA
from tests.x509_peers import CARD_POLICY, Pki, serve_pki

PKI_PORTS = range(56650, 56670)
SERVER_PORTS = range(56670, 56700)
PIN = "471193"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def pki(settings_env, tmp_path: Path, monkeypatch) -> Iterator[Pki]:
    """The test PKI, served; the settings enable certificate logins under its root (before
    the `services` fixture reads them, when a test names `pki` first)."""
    directory = tmp_path / "pki"
    directory.mkdir()
    with serve_pki(directory, PKI_PORTS) as served:
        for key, value in certificate_settings(served).items():
            monkeypatch.setenv(key, value)
        yield served


def certificate_settings(pki: Pki, **extra: str) -> dict[str, str]:
    settings = {
        "SIGNET_CLIENT_CERTIFICATES__ENABLED": "true",
        "SIGNET_CLIENT_CERTIFICATES__TRUST_ANCHORS": f'["{pki.anchor_file}"]',
        "SIGNET_CLIENT_CERTIFICATES__MAPPING": "subject_cn",
        "SIGNET_CLIENT_CERTIFICATES__REVOCATION": "crl",
        "SIGNET_CLIENT_CERTIFICATES__CARD_POLICIES": f'["{CARD_POLICY}"]',
    }
    settings.update({f"SIGNET_CLIENT_CERTIFICATES__{k.upper()}": v for k, v in extra.items()})
    return settings


@contextmanager
def tls_server(pki: Pki, env: dict[str, str]) -> Iterator[str]:
    """`signet serve` terminating TLS itself, asking for (optional) client certificates
    under the test PKI's root; yields its https URL once /health answers."""
    cert, key = pki.server_tls()
    port = next(p for p in SERVER_PORTS if _free(p))
    full = {
        **os.environ,
        **env,
        "SIGNET_WEB__TLS_CERTIFICATE": str(cert),
        "SIGNET_WEB__TLS_KEY": str(key),
        "SIGNET_WEB__TLS_CLIENT_CA": str(pki.anchor_file),
    }
    command = [str(Path(sys.executable).parent / "signet"), "serve", "--workers", "1"]
    command += ["--listen", f"127.0.0.1:{port}"]
    url = f"https://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=full, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(url + "/health", verify=pki.anchor_file, timeout=5).ok:
                        break
                except requests.RequestException:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise AssertionError(f"signet serve (TLS) did not come up:\n{log.read()}")
                time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            server.wait(30)


def login(url: str, pki: Pki, cert: tuple[Path, Path] | None, version: str = "v2"):
    return requests.post(
        f"{url}/csc/{version}/auth/login",
        json={},
        cert=(str(cert[0]), str(cert[1])) if cert else None,
        verify=pki.anchor_file,
        timeout=30,
    )


def audit(services, event: str) -> list[dict]:
    with services.database.transaction() as session:
        rows = session.execute(
            select(AuditRecord).where(AuditRecord.event == event).order_by(AuditRecord.seq)
        ).scalars()
        return [{"subject": r.subject, **json.loads(r.details)} for r in rows]


def add_alice(services) -> None:
    from signet.signing import admin

    admin.add_user(
        services,
        "alice",
        password=PASSWORD,
        display_name="Alice",
        email="alice@example.test",
        actor="test",
    )


def refused(response, words: str) -> str:
    assert response.status_code == 401, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == "authentication_error", body
    assert words in body["error_description"], body
    return body["error_description"]


def sign_with_pin(url: str, pki: Pki, token: str, credential_id: str) -> bytes:
    """authorize (PIN) and signHash one digest; the signature."""
    digest = hashlib.sha256(b"signed after a certificate login").digest()
    auth = {"Authorization": f"Bearer {token}"}
    common = {"verify": pki.anchor_file, "timeout": 30, "headers": auth}
    authorized = requests.post(
        f"{url}/csc/v2/credentials/authorize",
        json={
            "credentialID": credential_id,
            "numSignatures": 1,
            "hashes": [base64.b64encode(digest).decode()],
            "hashAlgorithmOID": SHA["sha256"],
            "authData": [{"id": "PIN", "value": PIN}],
        },
        **common,
    )
    assert authorized.status_code == 200, (authorized.status_code, authorized.text)
    signed = requests.post(
        f"{url}/csc/v2/signatures/signHash",
        json={
            "credentialID": credential_id,
            "SAD": authorized.json()["SAD"],
            "hashes": [base64.b64encode(digest).decode()],
            "hashAlgorithmOID": SHA["sha256"],
            "signAlgo": "1.2.840.10045.4.3.2",
        },
        **common,
    )
    assert signed.status_code == 200, signed.text
    info = requests.post(
        f"{url}/csc/v2/credentials/info", json={"credentialID": credential_id}, **common
    ).json()
    cert = x509.load_der_x509_certificate(base64.b64decode(info["cert"]["certificates"][0]))
    signature = base64.b64decode(signed.json()["signatures"][0])
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(SHA256())))
    return signature


def test_tls_login_maps_verifies_and_signs(pki, services, tmp_path):
    add_alice(services)
    # The qualified policy needs two kinds of factor: a password and a PIN are one.
    credential = enrol(
        services, "alice", key="ec-p256", activation="pin", pin=PIN, policy="qualified"
    ).credential_id
    alice = pki.issue("alice", "alice")
    revoked = pki.issue("revoked", "alice")
    pki.revoked.add(revoked[2].serial_number)
    mallory = pki.issue("mallory", "mallory")
    expired = pki.issue("expired", "alice", expired=True)
    foreign = Pki(tmp_path, pki.base_url, name="Foreign CA").issue("foreign", "alice")
    with tls_server(pki, certificate_settings(pki)) as url:
        answer = login(url, pki, alice[:2])
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        (record,) = [r for r in audit(services, "login") if r.get("method") == "x509"]
        assert record["subject"] == "alice" and record["auth_methods"] == ["x509"]
        assert record["loa"] == "low"  # one factor kind on its own
        assert login(url, pki, alice[:2], version="v1").status_code == 200
        sign_with_pin(url, pki, token, credential)
        # After a password login the same PIN is the second thing she knows: one kind.
        by_password = requests.post(
            f"{url}/csc/v2/auth/login", json={}, auth=("alice", PASSWORD),
            verify=pki.anchor_file, timeout=30,
        ).json()["access_token"]  # fmt: skip
        with pytest.raises(AssertionError, match="403"):
            sign_with_pin(url, pki, by_password, credential)

        refused(login(url, pki, revoked[:2]), "revoked")
        refused(login(url, pki, mallory[:2]), "maps to no user")
        # No certificate and no Basic credentials: what is needed is said.
        refused_plain = login(url, pki, None)
        assert refused_plain.status_code == 401, refused_plain.text
        assert "client certificate" in refused_plain.json()["error_description"]
        # OpenSSL refuses these in the handshake already (CERT_OPTIONAL with the client CA).
        for bad in (expired, foreign):
            with pytest.raises(requests.exceptions.SSLError):
                login(url, pki, bad[:2])
        failures = audit(services, "login.failed")
        reasons = [f["reason"] for f in failures if f.get("method") == "x509"]
        assert any("revoked" in r for r in reasons), reasons
        assert any("maps to no user" in r for r in reasons), reasons

        # openssl s_client: a real handshake with the certificate, an HTTP request over it.
        host_port = url.removeprefix("https://")
        request = (
            f"POST /csc/v2/auth/login HTTP/1.1\r\nHost: {host_port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        done = subprocess.run(
            ["openssl", "s_client", "-quiet", "-connect", host_port, "-cert", str(alice[0]),
             "-key", str(alice[1]), "-CAfile", str(pki.anchor_file)],
            input=request.encode(), capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert b"HTTP/1.1 200" in done.stdout and b"access_token" in done.stdout, done


def test_disabled_user_and_throttle(pki, services):
    from signet.signing import admin

    add_alice(services)
    admin.set_user_status(services, "alice", "disabled", actor="test")
    alice = pki.issue("alice", "alice")
    env = {**certificate_settings(pki), "SIGNET_LOGIN__MAX_FAILURES_PER_USER": "2"}
    with tls_server(pki, env) as url:
        refused(login(url, pki, alice[:2]), "disabled")
        refused(login(url, pki, alice[:2]), "disabled")
        throttled = login(url, pki, alice[:2])
        assert throttled.status_code == 429, throttled.text
        assert throttled.headers["Retry-After"]
    assert audit(services, "login.blocked")


# --- the reverse proxy's header, in process (the app behind a proxy at 127.0.0.1) -----------


@pytest.fixture
def proxied(settings_env, pki, monkeypatch):
    """A factory: the Flask app with the given certificate settings, behind 127.0.0.1."""
    from signet.config import load_settings
    from signet.signing import Services
    from signet.web import create_app

    made = []

    def make(**extra: str):
        for key, value in certificate_settings(pki, **extra).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SIGNET_WEB__TRUSTED_PROXIES", '["127.0.0.1/32"]')
        services = Services(load_settings())
        made.append(services)
        app = create_app(services=services)
        app.testing = True
        return services, app.test_client()

    yield make
    for services in made:
        services.database.dispose()


def header_login(client, cert_path: Path, peer: str = "127.0.0.1"):
    escaped = quote(cert_path.read_text(), safe="")
    return client.post(
        "/csc/v2/auth/login",
        json={},
        headers={"X-SSL-Client-Cert": escaped, "X-Forwarded-For": "198.51.100.20"},
        environ_base={"REMOTE_ADDR": peer},
    )


def test_proxy_header_only_from_trusted_proxies(pki, services, proxied):
    add_alice(services)
    alice = pki.issue("alice", "alice", card=True)
    expired = pki.issue("expired", "alice", expired=True)
    no_client_auth = pki.issue("codesign", "alice", client_auth=False)
    _, client = proxied(mapping="fingerprint")
    digest = alice[2].fingerprint(SHA256()).hex()
    # Not registered yet: maps to no one under the fingerprint rule.
    assert header_login(client, alice[0]).status_code == 401
    signet_cli("users", "cert-add", "alice", str(alice[0]), "--label", "card")
    listed = signet_cli("users", "cert-list", "alice", "--json")
    assert digest in listed.stdout

    answer = header_login(client, alice[0])
    assert answer.status_code == 200, answer.json
    (record,) = [r for r in audit(services, "login") if r.get("method") == "x509"]
    # A card certificate (the configured policy OID): two factor kinds, eIDAS high.
    assert record["auth_methods"] == ["x509_card"] and record["loa"] == "high"
    assert record["source"] == "198.51.100.20"

    # The same header from an address that is no trusted proxy: ignored, and recorded.
    ignored = header_login(client, alice[0], peer="192.0.2.66")
    assert ignored.status_code == 401 and "Basic" in ignored.json["error_description"]
    (noted,) = audit(services, "login.certificate_header_ignored")
    assert noted["peer"] == "192.0.2.66"

    # Signet re-verifies what the proxy passed: nginx's optional_no_ca lets these through.
    assert "expired" in header_login(client, expired[0]).json["error_description"]
    description = header_login(client, no_client_auth[0]).json["error_description"]
    assert "clientAuth" in description or "extended key usage" in description.lower()

    signet_cli("users", "cert-remove", "alice", digest)
    assert header_login(client, alice[0]).status_code == 401
    assert audit(services, "user.certificate_added") and audit(services, "user.certificate_removed")


def test_ocsp_and_san_email(pki, services, proxied):
    add_alice(services)
    good = pki.issue("good", "Alice Example", email="Alice@Example.test", crl=False, ocsp_url=True)
    revoked = pki.issue("revoked", "x", email="alice@example.test", crl=False, ocsp_url=True)
    pki.revoked.add(revoked[2].serial_number)
    qualified = pki.issue(
        "qscd", "y", email="alice@example.test", crl=False, ocsp_url=True, qc_sscd=True
    )
    _, client = proxied(mapping="san_email", revocation="ocsp", card_policies="[]")
    assert header_login(client, good[0]).status_code == 200
    # The QcStatement QcSSCD alone (no configured policy OID) makes it a card certificate.
    assert header_login(client, qualified[0]).status_code == 200
    levels = [(r["auth_methods"], r["loa"]) for r in audit(services, "login")]
    assert levels == [(["x509"], "low"), (["x509_card"], "high")], levels
    assert "revoked" in header_login(client, revoked[0]).json["error_description"]
    pki.ocsp_down = True
    # Hard fail (the default): no answer, no login.
    down = header_login(client, good[0])
    assert down.status_code == 401 and "unknown" in down.json["error_description"], down.json
    _, soft = proxied(mapping="san_email", revocation="ocsp", soft_fail="true")
    assert header_login(soft, good[0]).status_code == 200
    assert audit(services, "login.revocation_unknown")


def test_a_crl_under_another_key_is_no_answer(pki, services, proxied):
    add_alice(services)
    revoked = pki.issue("revoked", "alice")
    pki.revoked.add(revoked[2].serial_number)
    # An empty CRL under another key, as an attacker on its plain HTTP would serve it.
    pki.crl_forger = ec.generate_private_key(ec.SECP256R1())
    _, client = proxied()  # CRLs kept 300 s: a forged one must not be
    forged = header_login(client, revoked[0])
    assert forged.status_code == 401, forged.json
    assert "not signed by the certificate's issuer" in forged.json["error_description"]
    pki.crl_forger = None
    assert "revoked" in header_login(client, revoked[0]).json["error_description"]
    (failure, *_) = [f for f in audit(services, "login.failed") if f.get("method") == "x509"]
    assert failure["via"] == "proxy" and "not signed" in failure["reason"]


def test_an_unreadable_anchor_file_is_a_503_naming_it(pki, services, proxied, tmp_path):
    alice = pki.issue("alice", "alice")
    missing = tmp_path / "gone.pem"
    _, client = proxied(trust_anchors=f'["{missing}"]')
    answer = header_login(client, alice[0])
    assert answer.status_code == 503, answer.json
    assert str(missing) in answer.json["error_description"]


# --- a real nginx in front, as the signet_app role sets it up ---------------------------------

NGINX = "/usr/sbin/nginx"


@contextmanager
def nginx_in_front(tmp_path: Path, pki: Pki, upstream: str) -> Iterator[str]:
    """nginx terminating TLS on a loopback port, asking for an optional client certificate
    it does not verify (optional_no_ca) and passing it, URL-escaped, to `upstream`."""
    cert, key = pki.server_tls()
    port = next(p for p in reversed(SERVER_PORTS) if _free(p))
    base = tmp_path / "nginx"
    base.mkdir()
    user = "user root root;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"{kind}_temp_path {base / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (base / "nginx.conf").write_text(f"""
{user}
daemon off;
pid {base / "nginx.pid"};
error_log {base / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_verify_client optional_no_ca;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        # nginx's own verdict on a certificate (expired...) goes to Signet, which says why.
        error_page 495 = @signet;
        location / {{
            proxy_pass {upstream};
        }}
        location @signet {{
            proxy_pass {upstream};
        }}
    }}
}}
""")
    server = subprocess.Popen(
        [NGINX, "-p", str(base), "-c", str(base / "nginx.conf"), "-e", str(base / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/health", verify=pki.anchor_file, timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((base / "error.log").read_text())
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def test_behind_nginx(pki, services, tmp_path, monkeypatch):
    from tests.helpers import signet_server

    assert os.path.exists(NGINX), f"{NGINX} is missing: make deps-test installs nginx"

    add_alice(services)
    alice = pki.issue("alice", "alice")
    mallory = pki.issue("mallory", "mallory")
    expired = pki.issue("expired", "alice", expired=True)
    foreign = Pki(tmp_path, pki.base_url, name="Foreign CA").issue("foreign", "alice")
    monkeypatch.setenv("SIGNET_WEB__TRUSTED_PROXIES", '["127.0.0.1/32"]')
    upstream_port = lambda: next(p for p in SERVER_PORTS if _free(p))  # noqa: E731
    with (
        signet_server(workers=1, port=upstream_port) as upstream,
        nginx_in_front(tmp_path, pki, upstream) as url,
    ):
        answer = login(url, pki, alice[:2])
        assert answer.status_code == 200, answer.text
        (record,) = [r for r in audit(services, "login") if r.get("method") == "x509"]
        assert record["subject"] == "alice" and record["source"] == "127.0.0.1"
        # nginx lets these through (optional_no_ca); Signet refuses them itself.
        refused(login(url, pki, expired[:2]), "expired")
        refused(login(url, pki, foreign[:2]), "no valid path to a trust anchor")
        # A client's own header never passes nginx: without a certificate it is dropped,
        # with one it is replaced by the certificate of the handshake.
        forged = {"X-SSL-Client-Cert": quote(alice[0].read_text(), safe="")}
        plain = requests.post(
            f"{url}/csc/v2/auth/login", json={}, headers=forged,
            verify=pki.anchor_file, timeout=30,
        )  # fmt: skip
        assert plain.status_code == 401 and "Basic" in plain.json()["error_description"]
        swapped = requests.post(
            f"{url}/csc/v2/auth/login", json={}, headers=forged,
            cert=(str(mallory[0]), str(mallory[1])), verify=pki.anchor_file, timeout=30,
        )  # fmt: skip
        refused(swapped, "maps to no user")
    failed = [f for f in audit(services, "login.failed") if f.get("method") == "x509"]
    assert {f["via"] for f in failed} == {"proxy"} and len(failed) == 3
