"""A credential whose second factor is a one-time code by e-mail: the module has the code sent
at C_SignInit and asks it (through askpass, which here reads the test's mailbox) at C_Sign;
the service checks it with the one hash it authorizes. Runs after the tests that count
alice's objects, since it gives her a third credential."""

from __future__ import annotations

import hashlib
import re
import sys

from tests.helpers import activate_over_api, activation_code_in_mail, signet_cli
from tests.vc.conftest import MODULE, SECRET, Card

DATA = b"signed with a one-time code\n"
READ_CODE = """
import mailbox, re, sys
found = None
for message in mailbox.Maildir(sys.argv[1], create=False):
    body = message.get_payload(decode=True).decode()
    if sys.argv[2] in body and "activation" not in body.lower():
        match = re.search(r"^\\s+(\\d{6,8})\\s*$", body, re.M)
        if match:
            found = match.group(1)
print(found or "")
"""


def test_otp_credential(card: Card, softhsm) -> None:
    maildir = card.tmp / "mail"
    made = signet_cli("credentials", "create", "alice", "--key", "ec-p256", "--description",
                      "alice otp", env=card.server_env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    credential_id = made.stdout.split()[1]
    activate_over_api(card.url, "alice", SECRET, credential_id,
                      activation_code_in_mail(maildir, credential_id))  # fmt: skip
    reader = card.tmp / "read_code.py"
    reader.write_text(READ_CODE)
    askpass = card.tmp / "otp-askpass"
    askpass.write_text(
        f"#!/bin/sh\nenv | grep ^SIGNET_VC_ | sort >> {card.askpass_log}\n"
        f'if [ "$SIGNET_VC_PROMPT" = OTP ]; then '
        f"exec {sys.executable} {reader} {maildir} {credential_id}; fi\necho {SECRET}\n"
    )
    askpass.chmod(0o755)
    config = card.tmp / "otp.toml"
    config.write_text(
        f'[[account]]\nserver = "{card.url}"\nuser = "alice"\nlabel = "alice"\n'
        f'askpass = "{askpass}"\ncontext_login = false\n'
    )
    env = {"SIGNET_VC_CONFIG": str(config)}
    listing = card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET,
                       "--list-objects", env_extra=env).stdout  # fmt: skip
    objects = re.split(r"\n(?=\S)", listing)  # one object a chunk: a heading, indented lines
    block = next(o for o in objects if o.startswith("Private Key") and "label:      alice otp" in o)
    key_id = re.search(r"ID:\s+([0-9a-f]+)", block).group(1)
    (card.tmp / "otp.in").write_bytes(DATA)
    card.askpass_log.unlink(missing_ok=True)
    card.run("pkcs11-tool", "--module", str(MODULE), "--login", "--pin", SECRET, "--sign",
             "--id", key_id, "-m", "ECDSA-SHA256", "--signature-format", "openssl",
             "-i", str(card.tmp / "otp.in"), "-o", str(card.tmp / "otp.sig"),
             env_extra=env)  # fmt: skip
    shown = card.askpass_log.read_text()
    assert "SIGNET_VC_PROMPT=OTP" in shown
    assert f"SIGNET_VC_HASH={hashlib.sha256(DATA).hexdigest()}" in shown
    pub = card.tmp / "otp-pub.pem"
    cert = card.certificate(credential_id)
    card.run("openssl", "x509", "-in", str(cert), "-pubkey", "-noout", "-out", str(pub))
    verified = card.run("openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                        str(card.tmp / "otp.sig"), str(card.tmp / "otp.in"))  # fmt: skip
    assert "Verified OK" in verified.stdout
