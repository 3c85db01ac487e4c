"""The certificates of each account's credentials, kept after a login in the user's cache
($XDG_CACHE_HOME/signet-vc/), so that applications see the certificates and public keys before
they sign in (as they do with a smart card); private keys appear only after C_Login."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from asn1crypto import x509 as asn1_x509

from signet.client.csc import AuthFactor
from signet.vc.objects import Credential


def cache_file(serial: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "signet-vc" / f"{serial}.json"


def save(serial: str, credentials: list[Credential]) -> None:
    entries = [
        {
            "id": c.credential_id,
            "label": c.label,
            "certificate": base64.b64encode(c.certificate.dump()).decode(),
            "factor": [c.factor.kind, c.factor.label, c.factor.generator],
        }
        for c in credentials
    ]
    path = cache_file(serial)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"credentials": entries}))
        temporary.replace(path)
    except OSError:
        pass  # a read-only home only costs the certificates before login


def load(serial: str) -> list[Credential]:
    try:
        data = json.loads(cache_file(serial).read_text())
        return [
            Credential(
                str(e["id"]),
                str(e["label"]),
                asn1_x509.Certificate.load(base64.b64decode(e["certificate"])),
                AuthFactor(*[str(x) for x in e["factor"]]),
            )
            for e in data["credentials"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []
