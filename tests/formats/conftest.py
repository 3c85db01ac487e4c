"""Fixtures for the signet.formats tests: a live test PKI on loopback and throw-away keys.

The certomancer PKI (tests/pki/certomancer.yml) is served by its werkzeug Animator on
127.0.0.1 with an ephemeral port, in a thread, for the whole session. The sign callables hold
throw-away private keys through ``cryptography`` -- test-only; production keys stay in the HSM.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import pem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pki"))

from formats_keys import KeyVariant, make_key_variant
from make_pdf import write_pdf
from signet_test_pki import TestPKI, serve_test_pki

from signet.formats import RevocationConfig, ServicesConfig, TsaConfig


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPKI]:
    with serve_test_pki(tmp_path_factory.mktemp("pki")) as running:
        yield running


@pytest.fixture(params=["rsa-pkcs1", "rsa-pss", "ec-p256"])
def key_variant(request: pytest.FixtureRequest, pki: TestPKI) -> KeyVariant:
    return make_key_variant(pki, request.param)


@pytest.fixture(scope="session")
def tsa_services(pki: TestPKI) -> ServicesConfig:
    """The test PKI's TSA; revocation data is fetched from the OCSP/CRL URLs in the certs."""
    return ServicesConfig(
        tsa=TsaConfig(url=pki.tsa_url, timeout=10, retries=1, retry_backoff=0.1),
        # The test PKI's OCSP answers in whole seconds: one second after genTime suffices.
        revocation=RevocationConfig(retries=1, retry_backoff=0.1, grace=1.0),
    )


@dataclass
class Trust:
    root_pem: Path
    nss_dir: Path


@pytest.fixture(scope="session")
def trust(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Trust:
    """The test root as a PEM file (openssl, xmlsec1) and in an NSS database (pdfsig)."""
    base = tmp_path_factory.mktemp("trust")
    root_pem = base / "root.pem"
    root_pem.write_bytes(pem.armor("CERTIFICATE", pki.root.dump()))
    nss_dir = base / "nss"
    nss_dir.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss_dir}", "--empty-password"], check=True)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{nss_dir}", "-n", "signet-test-root", "-t", "CT,C,C",
         "-i", str(root_pem)],
        check=True,
    )  # fmt: skip
    return Trust(root_pem=root_pem, nss_dir=nss_dir)


@pytest.fixture
def sample_pdf(tmp_path: Path) -> Path:
    return write_pdf(tmp_path / "document.pdf", 4096)


@pytest.fixture
def opened(monkeypatch):
    """Every temporary file the signDoc body readers (signet.web.signdoc.spool, .multipart) open, to
    check that none is left open."""
    files: list = []
    real = tempfile.TemporaryFile

    def tracked(*args, **kwargs):
        files.append(real(*args, **kwargs))
        return files[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", tracked)
    return files
