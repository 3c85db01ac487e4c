"""Bad input never reaches a 500: deep JSON, lone surrogates, XML with a DTD or entities, and
requests gunicorn itself refuses each get a CSC error JSON with the right status; a client that
trickles its request cannot stall `signet serve` for others.

The Flask-client tests run on SQLite and PostgreSQL (the `client` fixture); the gunicorn tests
run one `signet serve` (one worker, two threads) on SQLite: what they test is in the HTTP
layer, before any database."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from tests.helpers import enrol, free_port, served_env, signet_cli, signet_server

PIN = "975310"
PASSWD = "root:x:0:0"  # what /etc/passwd starts with: must never be in an answer
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
DEEP = b"[" * 100_000 + b"]" * 100_000
XXE_DOCS = {
    "external entity": b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM '
    b'"file:///etc/passwd">]>\n<r>&x;</r>\n',
    "external DTD": b'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "file:///etc/passwd">\n<r>a</r>\n',
    "parameter entity": b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY % p SYSTEM '
    b'"file:///etc/passwd"> %p;]>\n<r>a</r>\n',
    "entity expansion": b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<r>&b;&b;</r>\n',
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csc_error(response, status: int, needle: str = "") -> str:
    """The error_description of a CSC error JSON with this status (Flask or requests)."""
    assert response.status_code == status, (response.status_code, _text(response))
    body = response.json if isinstance(getattr(response, "json", None), dict) else None
    if body is None:
        body = response.json() if callable(response.json) else response.json
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == "invalid_request", body
    assert needle in body["error_description"], body
    return str(body["error_description"])


def _text(response) -> str:
    data = response.data if hasattr(response, "data") else response.content
    return data[:300].decode("latin-1")


@pytest.fixture
def alice(services, client):
    from signet.signing import admin

    admin.add_user(
        services,
        "alice",
        password="long password",
        display_name="Alice",
        email="alice@example.test",
        actor="test",
    )
    credential = enrol(
        services, "alice", key="ec-p256", actor="test", activation="pin", policy="basic", pin=PIN
    ).credential_id
    login = client.post(
        "/csc/v2/auth/login", headers={"Authorization": "Basic " + b64(b"alice:long password")}
    )
    assert login.status_code == 200, login.json
    return {
        "credential": credential,
        "headers": {"Authorization": f"Bearer {login.json['access_token']}"},
    }


def post(client, alice, method: str, data: bytes | str, version: str = "v2", **headers):
    return client.post(
        f"/csc/{version}/{method}",
        data=data,
        headers={**alice["headers"], "Content-Type": "application/json", **headers},
    )


def authorize(client, alice, digest: bytes) -> str:
    response = client.post(
        "/csc/v2/credentials/authorize",
        headers=alice["headers"],
        json={
            "credentialID": alice["credential"],
            "numSignatures": 1,
            "hashes": [b64(digest)],
            "hashAlgorithmOID": SHA256,
            "authData": [{"id": "PIN", "value": PIN}],
        },
    )
    assert response.status_code == 200, response.json
    return str(response.json["SAD"])


def audit_count(services) -> int:
    from signet.store import AuditRecord

    with services.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditRecord)))


# -- JSON -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "method"),
    [
        ("v2", "credentials/list"),
        ("v1", "credentials/list"),
        ("v2", "credentials/info"),
        ("v2", "signatures/signHash"),
        ("v2", "signatures/signDoc"),
        ("v2", "info"),
    ],
)
def test_json_nested_100000_deep_is_a_400(client, alice, version, method):
    for body in (
        DEEP,
        b'{"documents": ' + DEEP + b"}",
        b'{"a": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
    ):
        csc_error(post(client, alice, method, body, version), 400, "nested deeper than 32")
    assert post(client, alice, "credentials/list", b"{}").status_code == 200


def test_deep_json_in_a_multipart_sign_doc_is_a_400(client, alice):
    boundary = "b0undary"
    body = (
        (f'--{boundary}\r\nContent-Disposition: form-data; name="request"\r\n\r\n').encode()
        + DEEP
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = post(
        client,
        alice,
        "signatures/signDoc",
        body,
        **{"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    csc_error(response, 400, "The request part is not acceptable JSON: nested deeper")


@pytest.mark.parametrize(
    "name",
    [
        "credentialID",
        "SAD",
        "userID",
        "pageToken",
        "signAlgo",
        "hashAlgorithmOID",
        "description",
        "\\ud800key",
    ],
)
def test_a_lone_surrogate_never_reaches_the_database_or_the_hsm(client, services, alice, name):
    before = audit_count(services)
    value = '"\\ud800"'
    body = {
        "credentialID": alice["credential"],
        "SAD": "x",
        "hashes": [b64(bytes(32))],
        "signAlgo": ECDSA_SHA256,
        "numSignatures": 1,
    }
    text = json.dumps(body)[:-1] + f', "{name}": {value}' + "}"
    if name == "\\ud800key":
        name = "(the body) (a key)"
    for method in (
        "credentials/list",
        "credentials/info",
        "credentials/authorize",
        "credentials/extendTransaction",
        "signatures/signHash",
        "signatures/signDoc",
        "signatures/timestamp",
        "auth/revoke",
    ):
        description = csc_error(post(client, alice, method, text), 400, "lone UTF-16 surrogate")
        assert f"Invalid parameter {name}:" in description, description
    # In an array, a nested object, a surrogate pair split in two
    for text in (
        '{"hashes": ["AAAA", "\\udfff"]}',
        '{"authData": [{"id": "PIN", "value": "\\ud83d"}]}',
        '{"documents": [{"document": "QUJD\\udc00"}]}',
    ):
        csc_error(post(client, alice, "signatures/signHash", text), 400, "surrogate")
        csc_error(post(client, alice, "signatures/signDoc", text), 400, "surrogate")
    # A proper pair is a character like any other: refused for what it is, not as a surrogate.
    pair = post(client, alice, "credentials/info", '{"credentialID": "\\ud83d\\ude00"}')
    assert pair.status_code in (400, 404) and "surrogate" not in pair.json["error_description"]
    assert audit_count(services) == before  # nothing was recorded, nothing was signed
    assert post(client, alice, "credentials/list", b"{}").json["credentialIDs"] == [
        alice["credential"]
    ]


def test_bodies_that_are_not_utf8_json_name_the_problem(client, alice):
    csc_error(
        post(client, alice, "credentials/info", b'{"credentialID": "\xff\xfe"}'), 400, "not UTF-8"
    )
    csc_error(
        post(client, alice, "credentials/info", b'{"credentialID": 1} x'),
        400,
        "not JSON: Extra data",
    )
    csc_error(
        post(client, alice, "credentials/info", b'["credentialID"]'), 400, "must be a JSON object"
    )
    csc_error(
        post(client, alice, "credentials/info", b'{"credentialID": ["x"]}'), 400, "credentialID"
    )
    csc_error(
        post(
            client,
            alice,
            "credentials/authorize",
            json.dumps({"credentialID": alice["credential"], "numSignatures": 10**300}),
        ),
        400,
    )
    csc_error(post(client, alice, "credentials/list", b'{"maxResults": 1e999}'), 400, "maxResults")
    basic = "Basic " + b64(b"\xff\xfe:\xed\xa0\x80")  # not UTF-8, a CESU surrogate
    login = client.post("/csc/v2/auth/login", headers={"Authorization": basic})
    assert login.status_code in (400, 401) and login.json["error"] in (
        "invalid_request",
        "invalid_token",
    )


# -- XML ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(XXE_DOCS))
@pytest.mark.parametrize("packaging", ["Enveloped", "Enveloping"])
def test_xades_input_with_a_dtd_or_entities_is_a_400(client, services, alice, case, packaging):
    document = XXE_DOCS[case]
    sad = authorize(client, alice, hashlib.sha256(document).digest())
    response = client.post(
        "/csc/v2/signatures/signDoc",
        headers=alice["headers"],
        json={
            "credentialID": alice["credential"],
            "SAD": sad,
            "documents": [
                {
                    "document": b64(document),
                    "signature_format": "X",
                    "signAlgo": ECDSA_SHA256,
                    "signed_envelope_property": packaging,
                }
            ],
        },
    )
    description = csc_error(response, 400, "DOCTYPE is refused")
    assert PASSWD not in response.get_data(as_text=True) and "root:" not in description
    # The refusal gave the signature back: the same SAD signs the document without its DTD.
    plain = b'<?xml version="1.0"?>\n<r>a</r>\n'
    sad = authorize(client, alice, hashlib.sha256(plain).digest())
    signed = client.post(
        "/csc/v2/signatures/signDoc",
        headers=alice["headers"],
        json={
            "credentialID": alice["credential"],
            "SAD": sad,
            "documents": [
                {
                    "document": b64(plain),
                    "signature_format": "X",
                    "signAlgo": ECDSA_SHA256,
                    "signed_envelope_property": packaging,
                }
            ],
        },
    )
    assert signed.status_code == 200, signed.json


@pytest.mark.parametrize("case", list(XXE_DOCS))
def test_signet_verify_refuses_xml_with_a_dtd(tmp_path, case):
    path = tmp_path / "signed.xml"
    path.write_bytes(
        XXE_DOCS[case].replace(
            b"<r>", b'<r><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'
        )
    )
    done = signet_cli("verify", str(path))
    assert done.returncode != 0
    assert "DOCTYPE is refused" in done.stderr + done.stdout, done.stderr
    assert "Traceback" not in done.stderr and PASSWD not in done.stdout + done.stderr


# -- gunicorn -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(softhsm, tmp_path_factory):
    """`signet serve`, one worker with two threads, on SQLite."""
    tmp = tmp_path_factory.mktemp("served")
    port = free_port()
    env = served_env(softhsm, tmp, port, SIGNET_WEB__THREADS="2")
    assert signet_cli("init", env=env).returncode == 0
    with signet_server(env=env, workers=1, port=port) as url:
        yield url, port


def raw_exchange(port: int, request: bytes, *, half_close: bool = False) -> tuple[int, dict, bytes]:
    """Send bytes, read the answer until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= int(length[0].split(b":")[1]):
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def info_answers(url: str, within: float) -> float:
    start = time.monotonic()
    response = requests.post(f"{url}/csc/v2/info", json={}, timeout=within)
    assert response.status_code == 200
    return time.monotonic() - start


@pytest.mark.parametrize(
    ("request_bytes", "status", "needle"),
    [
        (
            b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
            400,
            "CONTENT-LENGTH",
        ),
        (
            b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
            400,
            "CONTENT-LENGTH",
        ),
        (
            b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
            b"\r\n{}",
            400,
            "CONTENT-LENGTH",
        ),
        (b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431, ""),
        (b"POST /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, ""),
        (
            b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n{}\r\n0\r\n\r\n",
            400,
            "chunk",
        ),
        (
            b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}",
            400,
            "TRANSFER-ENCODING",
        ),
        (b"GARBAGE\r\n\r\n", 400, ""),
    ],
)
def test_protocol_errors_are_csc_json(served, request_bytes, status, needle):
    url, port = served
    got, headers, body = raw_exchange(port, request_bytes)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert (
        error["error"] == "invalid_request" and needle.lower() in error["error_description"].lower()
    ), error
    assert info_answers(url, 10) < 5


def test_a_body_shorter_than_its_content_length_is_a_400(served):
    url, port = served
    got, headers, body = raw_exchange(
        port,
        b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}",
        half_close=True,
    )
    assert got == 400 and headers["content-type"] == "application/json", body
    assert json.loads(body)["error"] == "invalid_request"
    assert info_answers(url, 10) < 5


def test_deep_json_and_surrogates_through_gunicorn(served):
    url, _ = served
    for body, needle in ((DEEP, "nested deeper"), (b'{"x": "\\ud800"}', "surrogate")):
        response = requests.post(
            f"{url}/csc/v2/info",
            data=body,
            timeout=30,
            headers={"Content-Type": "application/json"},
        )
        csc_error(response, 400, needle)


def trickle(port: int, request: bytes, stop: threading.Event, answers: list[bytes]) -> None:
    """Send a request one byte a second until stopped; keep what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for byte in request:
            if stop.is_set():
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if stop.wait(1):
                break
        sock.settimeout(5)
        try:
            answers.append(sock.recv(65536))
        except OSError:
            answers.append(b"")


def test_slow_clients_do_not_stall_the_server(served):
    url, port = served
    heads = b"POST /csc/v2/info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    slow = [heads + b"Content-Length: 200\r\n\r\n{" + b" " * 198 + b"}"] * 3  # a slow body
    slow += [heads + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"] * 3  # slow headers
    stop, answers = threading.Event(), []
    clients = [
        threading.Thread(target=trickle, args=(port, request, stop, answers)) for request in slow
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(3)  # every slow client is connected and sending
        # Six slow clients against one worker with two threads: the others are still served.
        took = [info_answers(url, 10) for _ in range(5)]
        assert max(took) < 2, took
        # Headers that do not end within 10 s get a 408 in CSC shape.
        deadline = time.monotonic() + 20
        while len(answers) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(answers) >= 3, answers
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=20)
    timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
    assert len(timed_out) >= 3, answers
    body = timed_out[0].partition(b"\r\n\r\n")[2]
    assert json.loads(body)["error"] == "invalid_request"
    assert "not received in time" in json.loads(body)["error_description"]
    assert info_answers(url, 10) < 2


def test_cli_help_and_docs_name_the_limits():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "csc.md").read_text()
    from signet.web import worker
    from signet.web.jsonbody import MAX_DEPTH

    assert f"{MAX_DEPTH} levels" in docs
    assert f"{worker.HEAD_TIMEOUT:g} s" in docs and f"{worker.BODY_TIMEOUT:g} s" in docs
    assert f"{worker.MIN_RATE // 1024} KiB" in docs
