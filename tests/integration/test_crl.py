"""The local CA publishes its certificate and a CRL that openssl accepts and that lists
revoked credentials; its certificates point at both."""

import subprocess

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from signet.signing import admin


def test_crl_lists_revoked_certificates_and_validates(client, services, tmp_path):
    admin.add_user(
        services,
        "alice",
        password="long enough",
        display_name="A",
        email="a@example.test",
        actor="test",
    )
    keep = admin.create_credential(services, "alice", key="ec-p256", actor="test")
    gone = admin.create_credential(services, "alice", key="ec-p256", actor="test")
    admin.set_credential_status(services, gone.credential_id, "revoked", actor="test")

    root = client.get("/pki/local.crt")
    assert root.status_code == 200 and root.mimetype == "application/pkix-cert"
    crl = client.get("/pki/local.crl")
    assert crl.status_code == 200 and crl.mimetype == "application/pkix-crl"
    (tmp_path / "root.der").write_bytes(root.data)
    (tmp_path / "crl.der").write_bytes(crl.data)
    subprocess.run(
        [
            "openssl",
            "x509",
            "-inform",
            "DER",
            "-in",
            tmp_path / "root.der",
            "-out",
            tmp_path / "root.pem",
        ],
        check=True,
    )
    checked = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            tmp_path / "crl.der",
            "-CAfile",
            tmp_path / "root.pem",
            "-noout",
            "-text",
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout

    parsed = x509.load_der_x509_crl(crl.data)
    serials = {entry.serial_number for entry in parsed}
    with services.database.transaction() as session:
        from signet.store import Credential

        def ee(credential_id):
            return x509.load_der_x509_certificate(
                session.get(Credential, credential_id).certificates[0].der
            )

        kept, revoked = ee(keep.credential_id), ee(gone.credential_id)
    assert revoked.serial_number in serials and kept.serial_number not in serials
    dp = kept.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name[0].value.endswith("/pki/local.crl")
    aia = kept.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_method == AuthorityInformationAccessOID.CA_ISSUERS


def test_unknown_ca_is_404_json(client):
    response = client.get("/pki/other.crl")
    assert response.status_code == 404 and response.is_json
