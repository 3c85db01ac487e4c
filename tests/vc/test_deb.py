"""The signet-vc Debian package (make vc-deb, app/packaging/signet-vc): built with debhelper,
nothing for lintian to say, the files and modes it ships, and, installed with apt into a clean
Debian 12 container (the Molecule base image) that pulls its Depends from the mirror: p11-kit
lists the module, `signet-vc configure` writes the account, the agent runs from
/usr/bin/signet-vc, and pkcs11-tool signs through the module and the agent against the Signet
of conftest.py; the signature is verified here with OpenSSL."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.vc.conftest import SECRET, Card
from tests.vc.test_pkcs11_tool import key_ids

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "app" / "packaging" / "signet-vc" / "build-deb.sh"
IMAGE = os.environ.get("SIGNET_MOLECULE_IMAGE", "localhost/signet-molecule:bookworm")
CONTAINERS_CONF = ROOT / "tests" / "molecule" / "containers.conf"
MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/libsignet-vc.so"
PRIVATE = "/usr/lib/signet-vc/python/signet"
# path -> mode of what the package must ship (directories aside)
EXPECTED = {
    MODULE: 0o644,
    "/usr/bin/signet-vc": 0o755,
    "/usr/share/p11-kit/modules/signet-vc.module": 0o644,
    "/usr/lib/systemd/user/signet-vc-agent.service": 0o644,
    "/usr/lib/systemd/user/signet-vc-agent.socket": 0o644,
    "/usr/share/man/man1/signet-vc.1.gz": 0o644,
    "/usr/share/doc/signet-vc/copyright": 0o644,
    "/usr/share/doc/signet-vc/changelog.gz": 0o644,
    f"{PRIVATE}/__init__.py": 0o644,
    f"{PRIVATE}/algorithms.py": 0o644,
    f"{PRIVATE}/client/__init__.py": 0o644,
    f"{PRIVATE}/client/csc.py": 0o644,
    **{
        f"{PRIVATE}/vc/{p.name}": 0o644
        for p in (ROOT / "app" / "signet" / "vc").glob("*.py")
        if p.name != "build.py"
    },
}

# Runs as root in the container; /pkg holds the package, /out is shared with this test.
SCRIPT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
cp /pkg/signet-vc_*.deb /tmp/
(apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    /tmp/signet-vc_*.deb opensc p11-kit p11-kit-modules) >/out/apt.log 2>&1
p11-kit list-modules >/out/modules.txt 2>&1
signet-vc configure --server "$SIGNET_URL" --user alice --agent >/out/configure.txt 2>&1
mkdir -m 700 /tmp/run
export XDG_RUNTIME_DIR=/tmp/run
# (the image has no man-db to resolve Documentation=man:signet-vc(1); the page is listed below)
systemd-analyze --user --man=no verify /usr/lib/systemd/user/signet-vc-agent.service \
    /usr/lib/systemd/user/signet-vc-agent.socket >/out/verify.txt 2>&1
zcat /usr/share/man/man1/signet-vc.1.gz | head -n 1 >/out/man.txt
signet-vc agent >/out/agent.txt 2>&1 &
agent=$!
for i in $(seq 50); do [ -S /tmp/run/signet-vc/agent.sock ] && break; sleep 0.2; done
stat -c %a /tmp/run/signet-vc/agent.sock >/out/socket-mode
pkcs11-tool --module $MODULE --list-slots >/out/slots.txt 2>&1
pkcs11-tool --module /usr/lib/x86_64-linux-gnu/p11-kit-proxy.so --list-slots >/out/proxy.txt 2>&1
printf 'signed by the packaged virtual card\n' >/out/data.bin
pkcs11-tool --module $MODULE --login --pin "$SECRET" --sign --id "$KEY_ID" \
    -m SHA256-RSA-PKCS -i /out/data.bin -o /out/data.sig >/out/sign.txt 2>&1
kill $agent
"""


def _run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    """The package, built once by the same script as make vc-deb."""
    if not shutil.which("dpkg-buildpackage") or not shutil.which("lintian"):
        pytest.fail("debhelper and lintian are missing: make vc-deb-deps installs them")
    out = tmp_path_factory.mktemp("vc-deb")
    built = _run(str(BUILD), str(out), cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("signet-vc_*_amd64.deb")
    return found


def test_lintian_has_nothing_to_say(deb: Path) -> None:
    done = _run("lintian", "--pedantic", "--info", "--display-experimental", str(deb))
    assert done.returncode == 0 and done.stdout == "", done.stdout


def test_files_and_modes(deb: Path) -> None:
    listing = _run("dpkg-deb", "-c", str(deb)).stdout
    shipped = {}
    for line in listing.splitlines():
        perms, owner, _size, _day, _time, name = line.split(None, 5)
        assert owner == "root/root", line
        if not perms.startswith("d"):
            mode = sum(
                bit
                for char, bit in zip(perms[1:], (0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 4, 2, 1))
                if char != "-"
            )
            shipped[name.removeprefix(".")] = mode
    assert shipped == EXPECTED
    fields = _run("dpkg-deb", "-f", str(deb), "Depends").stdout
    for needed in ("libpython3.11", "python3-requests", "python3-asn1crypto",
                   "python3-cffi-backend"):  # fmt: skip
        assert needed in fields, fields


def test_installed_in_a_clean_container_signs(deb: Path, card: Card, tmp_path: Path) -> None:
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman runc iptables)")
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    made = _run(str(ROOT / "tests" / "molecule" / "build-base-image.sh"), env=env)
    assert made.returncode == 0, made.stderr
    key_id = key_ids(card)["alice rsa-2048"]
    out = tmp_path / "out"
    out.mkdir()
    ran = _run(
        "podman", "run", "--rm", "--network", "host",
        "-v", f"{deb.parent}:/pkg:ro", "-v", f"{out}:/out",
        "-e", f"SIGNET_URL={card.url}", "-e", f"SECRET={SECRET}", "-e", f"KEY_ID={key_id}",
        "-e", f"MODULE={MODULE}", IMAGE, "sh", "-c", SCRIPT,
        env=env,
    )  # fmt: skip
    logs = {p.name: p.read_text(errors="replace") for p in out.iterdir() if p.suffix != ".sig"}
    logs["apt.log"] = logs.get("apt.log", "")[-2000:]
    assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}\n{logs}"
    assert "signet-vc: libsignet-vc.so" in logs["modules.txt"]
    assert "Signet Desktop Virtual Card" in logs["modules.txt"]
    assert f"alice at {card.url}" in logs["configure.txt"]
    assert logs["verify.txt"] == ""
    assert logs["man.txt"].startswith(".TH SIGNET-VC 1")
    assert "listening on /tmp/run/signet-vc/agent.sock" in logs["agent.txt"]
    assert logs["socket-mode"].strip() == "600"
    for listing in (logs["slots.txt"], logs["proxy.txt"]):
        assert f"Signet alice at {card.url}" in listing, listing
    # the login and the signature went through the agent, which showed the hash
    data = (out / "data.bin").read_bytes()
    shown = (
        f"signs with credential {card.rsa} (pkcs1v15 sha256): {hashlib.sha256(data).hexdigest()}"
    )
    assert shown in logs["agent.txt"], logs["agent.txt"]
    pub = tmp_path / "pub.pem"
    card.run("openssl", "x509", "-in", str(card.certificate(card.rsa)), "-pubkey", "-noout",
             "-out", str(pub))  # fmt: skip
    verified = card.run("openssl", "dgst", "-sha256", "-verify", str(pub),
                        "-signature", str(out / "data.sig"), str(out / "data.bin"))  # fmt: skip
    assert "Verified OK" in verified.stdout
