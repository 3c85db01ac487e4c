"""LibreOffice (Debian 12's 7.4, headless) signs a PDF with alice's remote key through
libsignet-vc.so: its PDF export (`SignPDF` with `SignatureCertificate`) signs with a personal
certificate of the NSS database that MOZILLA_CERTIFICATE_FOLDER names, into which the module
was added; pdfsig, with an NSS database that trusts only Signet's CA and knows nothing of the
module, finds the signature valid and alice's certificate trusted.

soffice is driven over its UNO socket by Debian's python3 (libreoffice/uno_sign.py). Two
things a person at the desktop does not need are done there, measured on 7.4.7:
- LibreOffice asks the token's password through its own dialog (its NSS password callback
  knows no protected authentication path), which headless soffice answers with nothing, so
  listing personal certificates fails (NoPasswordException). A Python macro inside soffice
  (libreoffice/signet_login.py) logs in through the same NSS instead, as that dialog would;
  the module then asks its askpass, as it does at each C_Sign (`context_login = false`).
- soffice's Python (pyuno) and the module's embedded Python share one libpython: whichever
  starts first owns the interpreter. The macro runs before NSS loads the module, and soffice
  is given the module's Python path (PYTHONPATH) for the shared interpreter. The other way
  round pyuno finds an interpreter it did not set up and LibreOffice's Python macros fail
  ("No module named 'pythonloader'")."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

from tests.helpers import port_in
from tests.vc.conftest import MODULE, ROOT, Card

HERE = Path(__file__).resolve().parent / "libreoffice"
SOFFICE = shutil.which("soffice")  # libreoffice-writer, installed by `make vc-test-deps`
PORTS = range(57420, 57430)


def _stop(office: subprocess.Popen[str]) -> None:
    """SIGTERM to soffice's own session (oosplash and soffice.bin), waiting until it is gone,
    so that the next start finds neither its port nor its profile taken."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(office.pid, sig)
        for _ in range(100):
            office.poll()
            try:
                os.killpg(office.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def test_libreoffice_signs_pdf(card: Card) -> None:
    assert SOFFICE is not None, "libreoffice-writer is not installed (make vc-test-deps)"
    tmp = card.tmp / "libreoffice"
    shutil.rmtree(tmp, ignore_errors=True)
    db, trust, profile = tmp / "nssdb", tmp / "trust", tmp / "profile"
    macros = profile / "user" / "Scripts" / "python"
    for folder in (db, trust, macros):
        folder.mkdir(parents=True)
    shutil.copy(HERE / "signet_login.py", macros)
    # the module's Python path, for the interpreter soffice and the module share
    module_path = [str(ROOT / "app"), sysconfig.get_paths()["purelib"]]
    env = {
        **card.sign_ask_env,
        "HOME": str(tmp),
        "PATH": "/usr/bin:/bin",
        "MOZILLA_CERTIFICATE_FOLDER": f"sql:{db}",
        "PYTHONPATH": ":".join(module_path),
    }
    env.pop("VIRTUAL_ENV", None)
    card.run("certutil", "-N", "-d", f"sql:{db}", "--empty-password")
    card.run("modutil", "-dbdir", f"sql:{db}", "-add", "signet-vc", "-libfile",
             str(MODULE), "-force", env_extra=env)  # fmt: skip

    port = port_in(PORTS)
    log = tmp / "soffice.log"
    office = subprocess.Popen(
        [SOFFICE, "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
         f"-env:UserInstallation={profile.as_uri()}",
         f"--accept=socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    card.askpass_log.unlink(missing_ok=True)
    out = tmp / "signed.pdf"
    driver = subprocess.Popen(
        ["/usr/bin/python3", str(HERE / "uno_sign.py"), str(port), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env, "PYTHONPATH": ""},
    )  # fmt: skip
    try:
        said, _ = driver.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        driver.kill()
        said = f"{driver.communicate()[0]}\n(no answer in 90 s)"
    finally:
        _stop(office)
    assert driver.returncode == 0, f"{said}\n{log.read_text()[-3000:]}"
    assert "macro login: logged in" in said, said

    # an independent check: poppler's pdfsig, trusting Signet's CA, without the module
    card.run("certutil", "-N", "-d", f"sql:{trust}", "--empty-password")
    card.run("certutil", "-A", "-d", f"sql:{trust}", "-n", "Signet CA", "-t", "C,C,C",
             "-i", str(card.root_pem))  # fmt: skip
    verified = card.run("pdfsig", "-nssdir", f"sql:{trust}", str(out)).stdout
    assert "Signature Validation: Signature is Valid." in verified, verified
    assert "Certificate Validation: Certificate is Trusted." in verified, verified
    assert "Signer full Distinguished Name: E=alice@example.test,CN=alice,O=Signet" in verified
    assert "Total document signed" in verified
    # soffice logged in to the token, then signed with alice's RSA credential through Signet
    asked = card.askpass_log.read_text().split("SIGNET_VC_APPLICATION=")[1:]
    assert all(a.startswith("soffice.bin") for a in asked), asked
    assert "SIGNET_VC_PROMPT=password" in asked[0], asked
    assert any("SIGNET_VC_CREDENTIAL=alice rsa-2048" in a and "SIGNET_VC_HASH=" in a for a in asked)
