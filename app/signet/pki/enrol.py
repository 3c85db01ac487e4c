"""Enrolment of a key: generate it in the HSM, request (CSR) and receive its certificate chain."""

from __future__ import annotations

from asn1crypto import x509 as asn1_x509

from signet.algorithms import KeySpec
from signet.hsm import Hsm, HsmError
from signet.pki.connector import CAConnector, CAError, IssueRequest
from signet.pki.x509build import build_csr, make_name, public_key_info


def enrol_key(
    hsm: Hsm,
    connector: CAConnector,
    *,
    key_label: str,
    spec: KeySpec,
    common_name: str,
    email: str | None,
    validity_days: int,
    qc_statements: bool,
) -> list[asn1_x509.Certificate]:
    """Generate the key, have the CA certify it; on any failure the new key is destroyed."""
    hsm.generate_key(key_label, spec)
    try:
        spki = public_key_info(hsm.public_key(key_label))
        csr = build_csr(
            make_name(common_name, email=email),
            spki,
            lambda digest, hash_name, scheme: hsm.sign_digest(key_label, digest, hash_name, scheme),
        )
        chain = connector.issue(
            IssueRequest(
                csr=csr,
                common_name=common_name,
                email=email,
                validity_days=validity_days,
                qc_statements=qc_statements,
            )
        )
        if chain[0].public_key.dump() != spki.dump():
            raise CAError(f"CA {connector.name!r} certified another key than the one requested")
        return chain
    except (CAError, HsmError, ValueError):
        hsm.destroy_key(key_label)
        raise
