"""What you see is what you sign: a one-time code approves the one request it was issued for, the
e-mail shows that request (never the code in its subject), and no database row stands for a
code its writer chose."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.security.conftest import SHA256, audit_events, digests, error_of, text_of

HASHES = digests("contract", "annex")
REQUEST = {
    "numSignatures": 2,
    "hashes": HASHES,
    "hashAlgorithmOID": SHA256,
    "description": "Lease of flat 4B",
    "signet_labels": ["contract.pdf", "annex.pdf"],
}


def fingerprint(hashes: list[str]) -> str:
    """The fingerprint as docs/csc.md defines it, computed independently of Signet."""
    digest = hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()[:16]
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


def credential_row(services, credential_id):
    from signet.store import Credential

    with services.database.transaction(read_only=True) as session:
        return session.get(Credential, credential_id)


def test_a_code_approves_only_the_request_it_was_issued_for(csc, services, alice):
    csc.login()
    others = [
        {**REQUEST, "hashes": digests("contract", "other")},
        {**REQUEST, "numSignatures": 3},
        {**REQUEST, "signet_labels": ["contract.pdf", "invoice.pdf"]},
        {**REQUEST, "description": "Sale of flat 4B"},
    ]
    for number, other in enumerate(others, start=1):
        code = csc.code_in(csc.send_otp(alice, **REQUEST))
        refused = error_of(csc.authorize(alice, code, **other), 400, "invalid_otp")
        assert "issued for another request" in refused
        # The right code for the wrong request is counted, and it is void afterwards.
        assert credential_row(services, alice).failed_attempts == number
        assert "already been used" in error_of(
            csc.authorize(alice, code, **REQUEST), 400, "invalid_otp"
        )
    code = csc.code_in(csc.send_otp(alice, **REQUEST))
    # The same request in another order (hashes and labels are multisets) is the same request.
    same = {**REQUEST, "hashes": HASHES[::-1], "signet_labels": ["annex.pdf", "contract.pdf"]}
    authorized = csc.authorize(alice, code, **same)
    assert authorized.status_code == 200, authorized.json and authorized.json["SAD"]
    assert credential_row(services, alice).failed_attempts == 0
    events = [event for event, _ in audit_events(services)]
    assert events.count("otp.failed") == 4 and events.count("otp.reused") == 4
    assert events.count("credential.authorized") == 1


def test_the_mail_shows_labels_count_fingerprint_and_true_lifetime_never_the_code_in_subject(
    csc, services, alice
):
    csc.login()
    for lifetime, said in (
        (30, "valid for 30 seconds"),
        (120, "valid for 2 minutes"),
        (90, "valid for 1 minute 30 seconds"),
    ):
        services.settings.sam.otp_lifetime_seconds = lifetime
        mail = csc.send_otp(alice, **REQUEST)
        code, body = csc.code_in(mail), text_of(mail)
        assert mail["To"] == "alice@example.test"
        assert code not in mail["Subject"] and mail["Subject"].endswith("for 2 signatures")
        assert "Documents:   annex.pdf, contract.pdf" in body
        assert "Description: Lease of flat 4B" in body
        assert "Signatures:  2" in body
        assert f"2 SHA-256, fingerprint {fingerprint(HASHES)}" in body
        assert said in body and "0 minutes" not in body
    sent = [details for event, details in audit_events(services) if event == "otp.sent"]
    assert sent[-1]["bound"] is True and sent[-1]["fingerprint"] == fingerprint(HASHES)


def test_a_challenge_row_inserted_by_sql_never_works(csc, services, alice):
    """A database insider writes challenge rows for a code of his choosing: under the old
    scheme (SHA-256 of credential:code), and as an HMAC under a key he chose, bound and not."""
    from signet.store import OtpChallenge, SignatureActivation

    csc.login()
    code = "424242"
    binding = json.dumps(
        {
            "description": REQUEST["description"],
            "hash_algorithm": SHA256,
            "hashes": sorted(HASHES),
            "labels": sorted(REQUEST["signet_labels"]),
            "num_signatures": 2,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    forged = [
        (hashlib.sha256(f"{alice}:{code}".encode()).hexdigest(), None),
        (hmac.new(b"insider key", f"{alice}:{code}".encode(), "sha256").hexdigest(), binding),
        (hmac.new(b"insider key", f"{alice}:{code}".encode(), "sha256").hexdigest(), None),
    ]
    for number, (code_hash, bound) in enumerate(forged, start=1):
        stamp = datetime.now(UTC)
        with services.database.transaction() as session:
            session.add(
                OtpChallenge(
                    credential_id=alice,
                    code_hash=code_hash,
                    binding=bound,
                    purpose="authorize",
                    created_at=stamp,
                    used=False,
                    expires_at=stamp + timedelta(minutes=5),
                )
            )
        assert "The OTP is invalid" in error_of(
            csc.authorize(alice, code, **REQUEST), 400, "invalid_otp"
        )
        assert credential_row(services, alice).failed_attempts == number
    with services.database.transaction(read_only=True) as session:
        assert session.execute(select(SignatureActivation)).first() is None
    assert [e for e, _ in audit_events(services)].count("otp.failed") == len(forged)


def test_v1_send_otp_binds_the_code_on_first_use(client, services, alice):
    from signet.store import OtpChallenge
    from tests.security.conftest import Csc

    v1 = Csc(client, services, version="v1")
    v1.login()
    mail = v1.send_otp(alice)
    assert "approves the first signing request that uses it" in text_of(mail)
    code = v1.code_in(mail)
    assert code not in mail["Subject"]
    first = v1.authorize(alice, code, numSignatures=1, hash=digests("first"))
    assert first.status_code == 200, first.json
    with services.database.transaction(read_only=True) as session:
        bound = session.execute(
            select(OtpChallenge.binding).where(OtpChallenge.purpose == "authorize")
        ).scalar_one()
    assert json.loads(bound)["hashes"] == digests("first")
    # Another request with the same code: already used, not a failed try.
    assert "already been used" in error_of(
        v1.authorize(alice, code, numSignatures=1, hash=digests("second")), 400, "invalid_otp"
    )
    assert credential_row(services, alice).failed_attempts == 0
    verified = [d for e, d in audit_events(services) if e == "otp.verified"]
    assert verified == [verified[0]] and verified[0]["bound_on_use"] is True


def test_send_otp_refuses_a_malformed_request_to_come(csc, alice):
    csc.login()
    bad = [
        ({"signet_labels": "contract.pdf"}, "signet_labels"),
        ({"signet_labels": [""]}, "signet_labels"),
        ({"description": "x" * 501}, "description"),
        ({"hashes": ["not base64!"]}, "base64"),
        ({"numSignatures": 1}, "numSignatures"),
        ({"numSignatures": 0}, "numSignatures"),
        ({"numSignatures": True}, "numSignatures"),
        ({"hashAlgorithmOID": "1.2.3"}, "hashAlgorithmOID"),
    ]
    for change, named in bad:
        sent = csc.post("credentials/sendOTP", {"credentialID": alice, **REQUEST, **change})
        assert named in error_of(sent, 400)
    labels_only = {"credentialID": alice, "signet_labels": ["contract.pdf"]}
    assert "hashes" in error_of(csc.post("credentials/sendOTP", labels_only), 400)
    # Only the credential's activation mail: no code was sent.
    assert [m["Subject"] for m in csc.mails()] == ["Activate your signing credential"]
