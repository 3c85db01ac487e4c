"""OpenSC's pkcs11-tool drives libsignet-vc.so: slots, objects after login, signatures with
every mechanism family, each verified by OpenSSL against the credential's certificate."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.vc.conftest import MODULE, SECRET, Card

DATA = b"Signet virtual card test message\n" * 7


def tool(card: Card, *args: str, check: bool = True):
    return card.run("pkcs11-tool", "--module", str(MODULE), *args, check=check)


def objects(card: Card) -> str:
    return tool(card, "--login", "--pin", SECRET, "--list-objects").stdout


def key_ids(card: Card) -> dict[str, str]:
    """label -> CKA_ID (hex) of the private keys."""
    listing = objects(card)
    found = {}
    for block in listing.split("Private Key Object")[1:]:
        label = re.search(r"label:\s+(.*)", block).group(1).strip()
        found[label] = re.search(r"ID:\s+([0-9a-f]+)", block).group(1)
    return found


@pytest.fixture(scope="module")
def certs(card: Card) -> dict[str, str]:
    """label -> the certificate's PEM file, read through the module."""
    out = {}
    for label, key_id in key_ids(card).items():
        der = card.tmp / f"{key_id}.der"
        tool(card, "--read-object", "--type", "cert", "--id", key_id, "-o", str(der))
        pem = card.tmp / f"{key_id}.pem"
        card.run("openssl", "x509", "-inform", "DER", "-in", str(der), "-out", str(pem))
        out[label] = str(pem)
    return out


def test_slot_and_token(card: Card) -> None:
    listing = tool(card, "--list-slots").stdout
    assert "token label        : alice" in listing
    assert "login required" in listing


def test_objects_pair_by_id_and_label(card: Card) -> None:
    listing = objects(card)
    for kind in ("Certificate Object", "Public Key Object", "Private Key Object"):
        assert listing.count(kind) == 2, listing
    ids = re.findall(r"ID:\s+([0-9a-f]+)", listing)
    assert len(set(ids)) == 2 and all(ids.count(i) == 3 for i in set(ids))
    assert "alice rsa-2048" in listing and "alice ec-p256" in listing
    # without a login: the certificates and public keys cached at the last login
    public = tool(card, "--list-objects").stdout
    assert "Private Key Object" not in public
    assert public.count("Certificate Object") == 2 and public.count("Public Key Object") == 2


def test_wrong_pin(card: Card) -> None:
    done = tool(card, "--login", "--pin", "999999999", "--list-objects", check=False)
    assert done.returncode != 0
    assert "CKR_PIN_INCORRECT" in done.stderr


def _sign(card: Card, key_id: str, mechanism: str, data: bytes, *extra: str) -> bytes:
    src, sig = card.tmp / "in.bin", card.tmp / "out.sig"
    src.write_bytes(data)
    sig.unlink(missing_ok=True)
    tool(card, "--login", "--pin", SECRET, "--sign", "--id", key_id, "-m", mechanism,
         "-i", str(src), "-o", str(sig), *extra)  # fmt: skip
    return sig.read_bytes()


def _verify(card: Card, cert_pem: str, data: bytes, sig: bytes, *opts: str) -> None:
    pub = card.tmp / "pub.pem"
    card.run("openssl", "x509", "-in", cert_pem, "-pubkey", "-noout", "-out", str(pub))
    (card.tmp / "v.bin").write_bytes(data)
    (card.tmp / "v.sig").write_bytes(sig)
    done = card.run(
        "openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(card.tmp / "v.sig"),
        *opts, str(card.tmp / "v.bin"),
    )  # fmt: skip
    assert "Verified OK" in done.stdout


def test_rsa_mechanisms(card: Card, certs: dict[str, str]) -> None:
    key_id = key_ids(card)["alice rsa-2048"]
    cert = certs["alice rsa-2048"]
    _verify(card, cert, DATA, _sign(card, key_id, "SHA256-RSA-PKCS", DATA))
    # CKM_RSA_PKCS over a DigestInfo the caller made: pkcs11-tool hashes nothing itself
    digest_info = (
        bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(DATA).digest()
    )
    _verify(card, cert, DATA, _sign(card, key_id, "RSA-PKCS", digest_info))
    pss = ("-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32")
    signed = _sign(card, key_id, "SHA256-RSA-PKCS-PSS", DATA, "--mgf", "MGF1-SHA256")
    _verify(card, cert, DATA, signed, *pss)
    raw = _sign(card, key_id, "RSA-PKCS-PSS", hashlib.sha256(DATA).digest(),
                "--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256")  # fmt: skip
    _verify(card, cert, DATA, raw, *pss)


def test_ecdsa_mechanisms(card: Card, certs: dict[str, str]) -> None:
    key_id = key_ids(card)["alice ec-p256"]
    cert = certs["alice ec-p256"]
    raw = _sign(card, key_id, "ECDSA-SHA256", DATA)
    assert len(raw) == 64  # PKCS#11's r||s
    der = _sign(card, key_id, "ECDSA-SHA256", DATA, "--signature-format", "openssl")
    _verify(card, cert, DATA, der)
    prehashed = _sign(card, key_id, "ECDSA", hashlib.sha256(DATA).digest(),
                      "--signature-format", "openssl")  # fmt: skip
    _verify(card, cert, DATA, prehashed)


def test_wrong_mechanism_for_the_key(card: Card) -> None:
    key_id = key_ids(card)["alice ec-p256"]
    (card.tmp / "x.bin").write_bytes(DATA)
    done = tool(card, "--login", "--pin", SECRET, "--sign", "--id", key_id, "-m",
                "SHA256-RSA-PKCS", "-i", str(card.tmp / "x.bin"), check=False)  # fmt: skip
    assert done.returncode != 0
    assert "CKR_KEY_TYPE_INCONSISTENT" in done.stderr


def test_self_test_stops_only_at_sha1(card: Card) -> None:
    """`pkcs11-tool --test`: random numbers and the first signature pass; its RSA test then
    signs a SHA-1 DigestInfo, which Signet refuses (SHA-2 only): CKR_DATA_INVALID there."""
    done = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET,
                    "--test", check=False)  # fmt: skip
    assert "C_GenerateRandom" in done.stdout and "seems to be OK" in done.stdout, done.stdout
    assert "testing key 0 (alice rsa-2048)" in done.stdout
    assert done.returncode == 1 and "C_Sign failed: rv = CKR_DATA_INVALID" in done.stderr
    sha1 = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET,
                    "--sign", "-m", "SHA1-RSA-PKCS", "-i", "/dev/null", check=False)  # fmt: skip
    assert sha1.returncode == 1 and "CKR_MECHANISM_INVALID" in sha1.stderr, sha1.stderr
