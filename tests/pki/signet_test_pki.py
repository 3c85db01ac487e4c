"""Throw-away test PKI (certomancer) served on loopback for the formats tests and benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, KeyLabel
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Response

CONFIG_PATH = Path(__file__).with_name("certomancer.yml")
ARCH = "signet"

# key label -> generator; RSA-2048 everywhere except the EC P-256 signer
_KEY_SPECS = {
    "root": "rsa2048",
    "interm": "rsa2048",
    "ocsp": "rsa2048",
    "tsa": "rsa2048",
    "signer-rsa": "rsa2048",
    "signer-ec": "p256",
}


def generate_keys(key_dir: Path) -> None:
    """Write fresh unencrypted PEM keys; they live only in a temporary directory."""
    key_dir.mkdir(parents=True, exist_ok=True)
    for label, spec in _KEY_SPECS.items():
        key: Any
        if spec == "p256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (key_dir / f"{label}.key.pem").write_bytes(pem)


UNAVAILABLE_OCSP = "unavailable"


class _WholeSecondAnimator(Animator):
    """Animator whose OCSP/TSA/CRL times carry no fractional seconds (NSS rejects them), and
    whose ``unavailable`` OCSP responder is down (HTTP 503)."""

    def at_time(self, request: Any) -> datetime:
        return super().at_time(request).replace(microsecond=0)

    def serve_ocsp_response(self, request: Any, *, label: str, arch: str) -> Any:
        if label == UNAVAILABLE_OCSP:
            return Response("OCSP responder unavailable", status=503)
        return super().serve_ocsp_response(request, label=label, arch=arch)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


class _LateBoundApp:
    """WSGI app that lets the server bind its port before the PKI (whose URLs embed it) exists."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


@dataclass
class TestPKI:
    """A running test PKI: certificates, private keys (throw-away) and service URLs."""

    __test__ = False  # not a pytest test class despite the name

    base_url: str
    arch: Any
    key_dir: Path

    def cert(self, label: str) -> asn1_x509.Certificate:
        return self.arch.get_cert(CertLabel(label))

    def private_key_pem(self, label: str) -> bytes:
        return (self.key_dir / f"{label}.key.pem").read_bytes()

    @property
    def root(self) -> asn1_x509.Certificate:
        return self.cert("root")

    @property
    def interm(self) -> asn1_x509.Certificate:
        return self.cert("interm")

    @property
    def tsa_url(self) -> str:
        return f"{self.base_url}/{ARCH}/tsa/tsa"

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/{ARCH}/ocsp/interm"


@contextmanager
def serve_test_pki(work_dir: Path) -> Iterator[TestPKI]:
    """Generate keys, bind 127.0.0.1 on an ephemeral port, serve the PKI in a thread."""
    key_dir = work_dir / "keys"
    generate_keys(key_dir)
    holder = _LateBoundApp()
    server = make_server("127.0.0.1", 0, holder, threaded=True, request_handler=_QuietHandler)
    base_url = f"http://127.0.0.1:{server.server_port}"
    config = CertomancerConfig.from_file(
        str(CONFIG_PATH), key_search_dir=str(key_dir), external_url_prefix=base_url
    )
    arch = config.get_pki_arch(ArchLabel(ARCH))
    holder.app = _WholeSecondAnimator(AnimatorArchStore({arch.arch_label: arch}), with_web_ui=False)
    thread = threading.Thread(target=server.serve_forever, name="test-pki", daemon=True)
    thread.start()
    try:
        yield TestPKI(base_url=base_url, arch=arch, key_dir=key_dir)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


__all__ = ["ARCH", "KeyLabel", "TestPKI", "serve_test_pki"]
