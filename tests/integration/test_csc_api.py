"""The CSC API over HTTP against gunicorn, on a real SoftHSM token, SQLite and PostgreSQL: the
whole flow, every signature verified against the certificate, and every rejection the SAM owes.

The test process shares the server's database and token, to enrol users and to age SADs."""

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import algos
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from sqlalchemy import select, update

from signet.algorithms import HASHES
from signet.signing import admin
from signet.store import AuditRecord, Credential, SignatureActivation
from tests.helpers import enrol
from tests.integration.csc_http import HASH_CLS, PASSWORD, SHA, Csc, enrol_alice, error_of


@pytest.fixture
def client(live_client):
    """These tests speak HTTP to gunicorn (tests/integration/conftest.py)."""
    return live_client


@pytest.fixture
def alice(services):
    rsa, ecc = enrol_alice(services, "rsa-2048", "ec-p256")
    return {"rsa": rsa, "ec": ecc}


def certificate(csc, credential_id):
    response = csc.post(
        "credentials/info",
        {
            "credentialID": credential_id,
            "certificates": "chain",
            "certInfo": True,
            "authInfo": True,
        },
    )
    assert response.status_code == 200, response.json
    return response.json, x509.load_der_x509_certificate(
        base64.b64decode(response.json["cert"]["certificates"][0])
    )


def pss_params(hash_name, salt):
    return base64.b64encode(
        algos.RSASSAPSSParams(
            {
                "hash_algorithm": {"algorithm": hash_name},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": hash_name}},
                "salt_length": salt,
                "trailer_field": "trailer_field_bc",
            }
        ).dump()
    ).decode()


def verify(cert, signature, digest, hash_name, scheme, salt=None):
    public = cert.public_key()
    algorithm = utils.Prehashed(HASH_CLS[hash_name]())
    if scheme == "pkcs1v15":
        public.verify(signature, digest, padding.PKCS1v15(), algorithm)
    elif scheme == "pss":
        public.verify(
            signature, digest, padding.PSS(padding.MGF1(HASH_CLS[hash_name]()), salt), algorithm
        )
    else:
        public.verify(signature, digest, ec.ECDSA(algorithm))


@pytest.mark.parametrize(
    ("key", "sign_algo", "hash_name", "scheme"),
    [
        ("rsa", "1.2.840.113549.1.1.11", "sha256", "pkcs1v15"),
        ("rsa", "1.2.840.113549.1.1.13", "sha512", "pkcs1v15"),
        ("rsa", "1.2.840.113549.1.1.1", "sha384", "pkcs1v15"),
        ("rsa", "1.2.840.113549.1.1.10", "sha256", "pss"),
        ("ec", "1.2.840.10045.4.3.2", "sha256", "ecdsa"),
        ("ec", "1.2.840.10045.4.3.3", "sha384", "ecdsa"),
    ],
)
def test_full_flow_signatures_verify(csc, alice, key, sign_algo, hash_name, scheme):
    csc.login()
    listed = csc.post("credentials/list", {"credentialInfo": True, "certificates": "chain"})
    assert set(listed.json["credentialIDs"]) == set(alice.values())
    info, cert = certificate(csc, alice[key])
    assert sign_algo in info["key"]["algo"]
    assert info["SCAL"] == "2" and "scal" not in info and info["auth"]["mode"] == "explicit"
    digests = [hashlib.new(hash_name, f"document {i}".encode()).digest() for i in range(3)]
    authorized = csc.authorize(alice[key], digests, hash_name)
    assert authorized.status_code == 200, authorized.json
    assert 0 < authorized.json["expiresIn"] <= 300
    salt = None
    params = None
    if scheme == "pss":
        salt = 2048 // 8 - 32 - 2  # the maximum, as pyHanko asks
        params = pss_params(hash_name, salt)
    signed = csc.sign(alice[key], authorized.json["SAD"], digests, sign_algo, hash_name, params)
    assert signed.status_code == 200, signed.json
    signatures = [base64.b64decode(s) for s in signed.json["signatures"]]
    assert len(signatures) == 3
    for digest, signature in zip(digests, signatures, strict=True):  # request order
        verify(cert, signature, digest, hash_name, scheme, salt)
    with pytest.raises(InvalidSignature):
        verify(cert, signatures[0], digests[1], hash_name, scheme, salt)
    # Spent: the same SAD signs nothing more.
    again = csc.sign(alice[key], authorized.json["SAD"], digests[:1], sign_algo, hash_name, params)
    assert again.status_code == 400 and "numSignatures" in again.json["error_description"]
    with csc.services.database.transaction() as session:
        events = [
            e for (e,) in session.execute(select(AuditRecord.event).order_by(AuditRecord.seq))
        ]
        created = session.execute(
            select(AuditRecord.details).where(AuditRecord.event == "signature.created")
        ).scalar_one()
    assert events[-5:] == [
        "otp.verified",
        "credential.authorized",
        "sad.spent",
        "signature.created",
        "sad.rejected",
    ]
    assert "otp.sent" in events
    assert base64.b64encode(digests[0]).decode() in created and sign_algo in created


def test_v1_flavour_flow(client, services, alice):
    csc = Csc(client, services, "v1")
    csc.login()
    assert csc.post("credentials/list", {}).json["credentialIDs"]
    info = csc.post(
        "credentials/info", {"credentialID": alice["ec"], "certificates": "chain", "authInfo": True}
    )
    assert info.json["SCAL"] == "2" and info.json["OTP"]["presence"] == "true"
    assert info.json["authMode"] == "explicit"
    digest = hashlib.sha256(b"v1").digest()
    sad = csc.authorize(alice["ec"], [digest]).json["SAD"]
    signed = csc.sign(alice["ec"], sad, [digest], "1.2.840.10045.4.3.2")
    assert signed.status_code == 200, signed.json
    cert = x509.load_der_x509_certificate(base64.b64decode(info.json["cert"]["certificates"][0]))
    verify(cert, base64.b64decode(signed.json["signatures"][0]), digest, "sha256", "ecdsa")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_credentials_list_pages(client, services, alice, version):
    third = enrol(services, "alice", key="rsa-3072", actor="test").credential_id
    csc = Csc(client, services, version)
    csc.login()
    everything = csc.post("credentials/list", {}).json
    assert set(everything["credentialIDs"]) == {alice["rsa"], alice["ec"], third}
    assert "nextPageToken" not in everything
    seen, body = [], {"maxResults": 2}
    while True:
        listed = csc.post("credentials/list", body)
        assert listed.status_code == 200, listed.json
        assert 1 <= len(listed.json["credentialIDs"]) <= 2
        seen += listed.json["credentialIDs"]
        if "nextPageToken" not in listed.json:
            break
        body = {"maxResults": 2, "pageToken": listed.json["nextPageToken"]}
    assert seen == everything["credentialIDs"]
    for bad, needle in [
        ({"maxResults": "2"}, "maxResults"),
        ({"maxResults": 0}, "maxResults"),
        ({"pageToken": "bm9uc2Vuc2U="}, "pageToken"),
        ({"pageToken": "YWZ0ZXI6OQ=="}, "pageToken"),  # after:9, past the end
        ({"pageToken": 3}, "pageToken"),
        # more digits than Python's int() takes from a string
        ({"pageToken": base64.urlsafe_b64encode(b"after:" + b"1" * 5000).decode()}, "pageToken"),
    ]:
        assert needle in error_of(csc.post("credentials/list", bad), 400)


def test_sad_rejections(csc, services, alice):
    csc.login()
    d1, d2 = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()
    sad = csc.authorize(alice["rsa"], [d1], num=2).json["SAD"]
    rsa256 = "1.2.840.113549.1.1.11"
    # A hash the SAD is not bound to.
    assert "not authorized" in error_of(csc.sign(alice["rsa"], sad, [d2], rsa256), 400)
    # Another hash algorithm than authorized.
    d384 = hashlib.sha384(b"one").digest()
    assert "hash algorithm" in error_of(
        csc.sign(alice["rsa"], sad, [d384], "1.2.840.113549.1.1.12", "sha384"), 400
    )
    # Another credential of the same user.
    error_of(csc.sign(alice["ec"], sad, [d1], "1.2.840.10045.4.3.2"), 400)
    # A forged SAD.
    assert (
        error_of(csc.sign(alice["rsa"], "forged" + sad[6:], [d1], rsa256), 400)
        == "Invalid parameter SAD"
    )
    # Count exceeded: two hashes asked under a SAD for... the bound one, twice.
    assert "numSignatures" in error_of(csc.sign(alice["rsa"], sad, [d1, d1, d1], rsa256), 400)
    # The bound hash once more than it was authorized (count 2, [d1] once).
    assert "already signed" in error_of(csc.sign(alice["rsa"], sad, [d1, d1], rsa256), 400)
    # (Expiry is part of the SAD's MAC-checked binding: tests/security covers it.)


def test_hsm_failure_gives_the_count_back(csc, services, alice):
    """If the HSM fails, the SAD keeps its count (and its spent markers) and the trail says
    why: the spend, committed before the HSM signed, is refunded."""
    csc.login()
    digest = hashlib.sha256(b"doomed").digest()
    sad = csc.authorize(alice["ec"], [digest, digest], num=2).json["SAD"]
    services.hsm.destroy_key(alice["ec"])  # the key is gone: C_Sign cannot happen
    failed = csc.sign(alice["ec"], sad, [digest, digest], "1.2.840.10045.4.3.2")
    assert error_of(failed, 503, "temporarily_unavailable")
    with services.database.transaction() as session:
        (remaining,) = session.execute(select(SignatureActivation.remaining)).one()
        events = [
            e
            for (e,) in session.execute(
                select(AuditRecord.event).order_by(AuditRecord.seq.desc()).limit(3)
            )
        ]
    assert remaining == 2
    # The trail is written once a request: nothing of the spend that was undone.
    assert events == ["signature.failed", "credential.authorized", "otp.verified"]


def test_another_users_sad_is_refused(csc, client, services, alice):
    admin.add_user(
        services,
        "mallory",
        password=PASSWORD,
        display_name="M",
        email="m@example.test",
        actor="test",
    )
    csc.login()
    digest = hashlib.sha256(b"alice's").digest()
    sad = csc.authorize(alice["rsa"], [digest]).json["SAD"]
    mallory = Csc(client, services)
    mallory.login("mallory")
    # Mallory can neither see Alice's credential nor use her SAD with it.
    error_of(mallory.post("credentials/info", {"credentialID": alice["rsa"]}), 400)
    error_of(mallory.sign(alice["rsa"], sad, [digest], "1.2.840.113549.1.1.11"), 400)
    assert csc.sign(alice["rsa"], sad, [digest], "1.2.840.113549.1.1.11").status_code == 200


@pytest.mark.parametrize("status", ["disabled", "revoked"])
def test_disabled_or_revoked_credential_cannot_sign(csc, services, alice, status):
    csc.login()
    digest = hashlib.sha256(b"x").digest()
    sad = csc.authorize(alice["ec"], [digest]).json["SAD"]
    admin.set_credential_status(services, alice["ec"], status, actor="admin")
    assert status.rstrip("d") in error_of(
        csc.sign(alice["ec"], sad, [digest], "1.2.840.10045.4.3.2"), 400
    )
    error_of(
        csc.post("credentials/authorize", {"credentialID": alice["ec"], "numSignatures": 1}), 400
    )


def test_otp_is_single_use_and_five_failures_lock(csc, services, alice):
    csc.login()
    digest = hashlib.sha256(b"otp").digest()
    code = csc.otp(alice["rsa"])
    assert csc.authorize(alice["rsa"], [digest], otp=code).status_code == 200
    # A used code is refused but not counted as a failed try: its sender knew it.
    assert "already been used" in error_of(
        csc.authorize(alice["rsa"], [digest], otp=code), 400, "invalid_otp"
    )
    csc.otp(alice["rsa"])
    for attempt in range(4):
        error_of(csc.authorize(alice["rsa"], [digest], otp="000000"), 400, "invalid_otp")
    locked = csc.authorize(alice["rsa"], [digest], otp="000000")
    assert "locked" in error_of(locked, 403, "access_denied")
    # Even the right code does not help now, nor a new one.
    error_of(csc.post("credentials/sendOTP", {"credentialID": alice["rsa"]}), 403, "access_denied")
    admin.set_credential_status(services, alice["rsa"], "unlock", actor="admin")
    assert csc.authorize(alice["rsa"], [digest]).status_code == 200
    with services.database.transaction() as session:
        events = [e for (e,) in session.execute(select(AuditRecord.event))]
    assert events.count("otp.failed") == 5 and "credential.locked" in events
    assert "credential.unlocked" in events


def test_expired_otp_is_refused(csc, services, alice):
    from signet.store import OtpChallenge

    csc.login()
    code = csc.otp(alice["ec"])
    with services.database.transaction() as session:
        session.execute(
            update(OtpChallenge).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert "expired" in error_of(
        csc.authorize(alice["ec"], [b"\0" * 32], otp=code), 400, "invalid_otp"
    )


def test_pin_credential(csc, services, alice):
    pin_cred = enrol(
        services,
        "alice",
        key="ec-p384",
        actor="test",
        activation="pin",
        policy="basic",
        pin="975310",
    ).credential_id
    csc.login()
    digest = hashlib.sha384(b"pin").digest()
    body = {
        "credentialID": pin_cred,
        "numSignatures": 1,
        "hashes": [base64.b64encode(digest).decode()],
        "hashAlgorithmOID": SHA["sha384"],
        "authData": [{"id": "PIN", "value": "11111"}],
    }
    error_of(csc.post("credentials/authorize", body), 400, "invalid_pin")
    with services.database.transaction() as session:
        stored = session.get(Credential, pin_cred).pin_hash
    # Only an HMAC keyed in the HSM is kept: nothing to guess the PIN against offline.
    assert re.fullmatch(r"hsm-hmac-sha256\$[0-9a-f]{64}", stored)
    body["authData"] = [{"id": "PIN", "value": "975310"}]
    sad = csc.post("credentials/authorize", body).json["SAD"]
    signed = csc.sign(pin_cred, sad, [digest], "1.2.840.10045.4.3.3", "sha384")
    _, cert = certificate(csc, pin_cred)
    verify(cert, base64.b64decode(signed.json["signatures"][0]), digest, "sha384", "ecdsa")


# What a client chooses for a signAlgo that names no hash: (hash, scheme).
BARE_ALGORITHMS = {
    "1.2.840.113549.1.1.1": ("sha384", "pkcs1v15"),
    "1.2.840.113549.1.1.10": ("sha512", "pss"),
    "1.2.840.10045.2.1": ("sha512", "ecdsa"),
}


def client_choice(sign_algo):
    """(hash name, scheme) for a listed signAlgo, as a client reads the OID (asn1crypto)."""
    if sign_algo in BARE_ALGORITHMS:
        return BARE_ALGORITHMS[sign_algo]
    algorithm = algos.SignedDigestAlgorithm({"algorithm": sign_algo})
    scheme = {"rsassa_pkcs1v15": "pkcs1v15", "ecdsa": "ecdsa"}[algorithm.signature_algo]
    return algorithm.hash_algo, scheme


@pytest.mark.parametrize("key", ["rsa", "ec"])
def test_every_listed_algorithm_signs(csc, alice, key):
    """A client that picks from credentials/info's key/algo can use every entry, and only
    entries that fit the key are listed (the service's info lists them all)."""
    csc.login()
    info, cert = certificate(csc, alice[key])
    listed = info["key"]["algo"]
    expected = (
        {
            "1.2.840.113549.1.1.1",
            "1.2.840.113549.1.1.10",
            "1.2.840.113549.1.1.11",
            "1.2.840.113549.1.1.12",
            "1.2.840.113549.1.1.13",
        }
        if key == "rsa"
        else {
            "1.2.840.10045.2.1",
            "1.2.840.10045.4.3.2",
            "1.2.840.10045.4.3.3",
            "1.2.840.10045.4.3.4",
        }
    )
    assert set(listed) == expected
    offered = csc.post("info", {}).json["signAlgorithms"]["algos"]
    assert set(listed) <= set(offered)
    plan = {algo: client_choice(algo) for algo in listed}
    digests = {algo: hashlib.new(plan[algo][0], algo.encode()).digest() for algo in listed}
    # One SAD for them all: no hashAlgorithmOID, as the hashes are of several algorithms.
    authorized = csc.post(
        "credentials/authorize",
        {
            "credentialID": alice[key],
            "numSignatures": len(listed),
            "hashes": [base64.b64encode(d).decode() for d in digests.values()],
            "authData": [{"id": "OTP", "value": csc.otp(alice[key])}],
        },
    )
    assert authorized.status_code == 200, authorized.json
    for algo in listed:
        hash_name, scheme = plan[algo]
        salt = HASHES[hash_name].length if scheme == "pss" else None
        params = pss_params(hash_name, salt) if scheme == "pss" else None
        signed = csc.sign(
            alice[key], authorized.json["SAD"], [digests[algo]], algo, hash_name, params
        )
        assert signed.status_code == 200, (algo, signed.json)
        signature = base64.b64decode(signed.json["signatures"][0])
        verify(cert, signature, digests[algo], hash_name, scheme, salt)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_authorize_refuses_a_hash_of_the_wrong_length(client, services, alice, version):
    csc = Csc(client, services, version)
    csc.login()
    code = csc.otp(alice["ec"])
    sha1_sized = hashlib.sha1(b"not a sha256 hash").digest()  # its length only
    refused = csc.authorize(alice["ec"], [hashlib.sha256(b"a").digest(), sha1_sized], otp=code)
    assert "20 bytes" in error_of(refused, 400)
    if version == "v2":  # a SHA-384 value under a SHA-256 hashAlgorithmOID
        refused = csc.authorize(alice["ec"], [hashlib.sha384(b"b").digest()], otp=code)
        assert "48 bytes" in error_of(refused, 400)
        assert "32 for sha256" in refused.json["error_description"]
    # refused before the second factor was looked at: the code still authorizes
    digest = hashlib.sha256(b"c").digest()
    authorized = csc.authorize(alice["ec"], [digest], otp=code)
    assert authorized.status_code == 200, authorized.json
    with services.database.transaction() as session:
        events = [e for (e,) in session.execute(select(AuditRecord.event))]
    assert events.count("credential.authorized") == 1
    assert not [e for e in events if e.endswith(".failed")], events


def test_extend_transaction(csc, services, alice):
    """SCAL2 multi-call: authorize 3 signatures for a first hash, then extendTransaction with
    the next hashes binds the new SAD to those hashes, with the count left, and not to the
    old ones."""
    csc.login()
    first, second, third = (hashlib.sha256(t).digest() for t in (b"one", b"two", b"three"))
    sad = csc.authorize(alice["ec"], [first], num=3).json["SAD"]
    assert csc.sign(alice["ec"], sad, [first], "1.2.840.10045.4.3.2").status_code == 200

    def extend(sad, digests, **extra):
        body = {
            "credentialID": alice["ec"],
            "SAD": sad,
            "hashes": [base64.b64encode(d).decode() for d in digests],
            "hashAlgorithmOID": SHA["sha256"],
            **extra,
        }
        return csc.post("credentials/extendTransaction", body)

    # SCAL2: an extension without hashes is refused, and leaves the SAD whole.
    assert "hashes" in error_of(
        csc.post("credentials/extendTransaction", {"credentialID": alice["ec"], "SAD": sad}), 400
    )
    assert "differs" in error_of(extend(sad, [second], hashAlgorithmOID=SHA["sha384"]), 400)
    assert "2 signature(s) left" in error_of(extend(sad, [second, third, first]), 400)
    extended = extend(sad, [second, third])
    assert extended.status_code == 200, extended.json
    assert extended.json["expiresIn"] > 0
    new = extended.json["SAD"]
    error_of(csc.sign(alice["ec"], sad, [second], "1.2.840.10045.4.3.2"), 400)  # replaced
    # Bound to the new hashes: the old one is refused, the new ones sign.
    assert "not authorized" in error_of(
        csc.sign(alice["ec"], new, [first], "1.2.840.10045.4.3.2"), 400
    )
    signed = csc.sign(alice["ec"], new, [second, third], "1.2.840.10045.4.3.2")
    assert signed.status_code == 200, signed.json
    _, cert = certificate(csc, alice["ec"])
    for signature, digest in zip(signed.json["signatures"], (second, third), strict=True):
        verify(cert, base64.b64decode(signature), digest, "sha256", "ecdsa")
    with services.database.transaction() as session:
        rows = {row.sad_hash: row for row in session.execute(select(SignatureActivation)).scalars()}
    stored = rows[hashlib.sha256(new.encode()).hexdigest()]
    assert stored.hashes.splitlines() == [base64.b64encode(d).decode() for d in (second, third)]
    assert (stored.num_signatures, stored.remaining) == (2, 0)
    assert rows[hashlib.sha256(sad.encode()).hexdigest()].remaining == 0


def test_tokens(csc, client, services, alice):
    assert error_of(csc.post("credentials/list", {}, token="nonsense"), 401, "invalid_token")
    response = client.post("/csc/v2/credentials/list", json={})
    error_of(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    basic = base64.b64encode(b"alice:wrong password").decode()
    bad = client.post("/csc/v2/auth/login", headers={"Authorization": f"Basic {basic}"})
    assert bad.status_code == 401
    error_of(client.post("/csc/v2/auth/login"), 401)
    token = csc.login()
    assert csc.post("auth/revoke", {"token": token}).status_code == 204
    error_of(csc.post("credentials/list", {}), 401, "invalid_token")
    from signet.store import AccessToken

    with services.database.transaction() as session:
        stored = session.execute(select(AccessToken.token_hash)).scalars().all()
    assert token not in stored and hashlib.sha256(token.encode()).hexdigest() in stored


@pytest.mark.parametrize(
    ("method", "body", "needle"),
    [
        ("credentials/info", {}, "credentialID"),
        ("credentials/info", {"credentialID": 7}, "credentialID"),
        ("credentials/info", {"credentialID": "x", "certificates": "all"}, "certificates"),
        ("credentials/list", {"credentialInfo": "yes"}, "credentialInfo"),
        ("credentials/authorize", {"credentialID": "x"}, "numSignatures"),
        ("credentials/authorize", {"credentialID": "x", "numSignatures": "1"}, "numSignatures"),
        (
            "credentials/authorize",
            {"credentialID": "x", "numSignatures": 1, "authData": "x"},
            "authData",
        ),
        ("signatures/signHash", {"credentialID": "x", "SAD": "y", "signAlgo": "1.2.3"}, "hashes"),
        (
            "signatures/signHash",
            {"credentialID": "x", "SAD": "y", "hashes": ["AA=="], "signAlgo": "1.2.3"},
            "signAlgo",
        ),
        (
            "signatures/signHash",
            {
                "credentialID": "x",
                "SAD": "y",
                "hashes": ["AA=="],
                "signAlgo": "1.2.840.10045.4.3.2",
                "operationMode": "A",
            },
            "operationMode",
        ),
    ],
)
def test_bad_requests_get_csc_errors(csc, alice, method, body, needle):
    csc.login()
    assert needle in error_of(csc.post(method, body), 400)


def test_malformed_inputs_never_500(csc, alice):
    csc.login()
    sad = csc.authorize(alice["rsa"], [hashlib.sha256(b"m").digest()]).json["SAD"]
    cases = [
        ({"hashes": ["!!notbase64!!"]}, "base64"),
        ({"hashes": [base64.b64encode(b"short").decode()]}, "32 bytes"),
        ({"signAlgo": "1.2.840.10045.4.3.2"}, "RSA key"),
        ({"signAlgo": "1.2.840.113549.1.1.10"}, "signAlgoParams"),
        ({"signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": "AAAA"}, "signAlgoParams"),
        (
            {"signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": pss_params("sha256", 999)},
            "salt length",
        ),
        ({"hashAlgorithmOID": "1.2.3.4"}, "hashAlgorithmOID"),
    ]
    for change, needle in cases:
        body = {
            "credentialID": alice["rsa"],
            "SAD": sad,
            "hashes": [base64.b64encode(hashlib.sha256(b"m").digest()).decode()],
            "hashAlgorithmOID": SHA["sha256"],
            "signAlgo": "1.2.840.113549.1.1.11",
        }
        body.update(change)
        assert needle in error_of(csc.post("signatures/signHash", body), 400), change
    raw = csc.client.post(
        "/csc/v2/credentials/info",
        data="{not json",
        headers={"Authorization": f"Bearer {csc.token}", "Content-Type": "application/json"},
    )
    error_of(raw, 400)
    # The SAD is still whole after all those refusals.
    ok = csc.sign(alice["rsa"], sad, [hashlib.sha256(b"m").digest()], "1.2.840.113549.1.1.11")
    assert ok.status_code == 200


def test_info(client):
    for version in ("v1", "v2"):
        info = client.post(f"/csc/{version}/info", json={}).json
        assert "signatures/signHash" in info["methods"]
        assert info["authType"] == ["basic", "oauth2code"] and info["oauth2"].startswith("http")
        # No TSA is configured here: timestamp is not offered, and says so with a 501.
        assert "signatures/timestamp" not in info["methods"]
        assert "not implemented" in error_of(
            client.post(f"/csc/{version}/signatures/timestamp", json={}), 501
        )
    assert client.post("/csc/v2/info").json["specs"] == "2.0.0.2"


def test_methods_not_offered_answer_501(csc, client, alice):
    csc.login()
    listed = client.post("/csc/v2/info", json={}).json["methods"]
    assert "credentials/authorizeCheck" in listed  # Mobile ID (test_mobile_id.py)
    for method in (
        "credentials/getChallenge",
        "signatures/signPolling",
    ):
        assert method not in listed
        assert method in error_of(csc.post(method, {}), 501)
        assert method in error_of(client.post(f"/csc/v2/{method}", json={}), 501)
    # A path the specification does not name is still not found.
    error_of(csc.post("credentials/nonsense", {}), 404)
