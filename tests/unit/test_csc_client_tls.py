"""The CSC client trusts the CA it is given even when REQUESTS_CA_BUNDLE names another bundle
(requests lets that variable override a session's verify; the appliance's boot test met it)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from signet.client import CscClient
from signet.client.csc import CscError
from tests.helpers import self_signed_tls


class _Info(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"name": "tls test"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = self_signed_tls(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Info)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


def test_given_ca_wins_over_requests_ca_bundle(https_server, monkeypatch) -> None:
    url, ca = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    monkeypatch.setenv("CURL_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    assert CscClient(url, verify=str(ca)).info() == {"name": "tls test"}


def test_server_outside_the_given_ca_is_refused(https_server, tmp_path) -> None:
    url, _ = https_server
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = self_signed_tls(other)
    with pytest.raises(CscError) as refused:
        CscClient(url, verify=str(other_ca)).info()
    assert refused.value.error == "tls_error"
