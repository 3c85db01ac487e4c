"""The SMS gateways against real peers on loopback: an SMPP 3.4 SMSC (tests/smsc.js, the npm
`smpp` package) and an HTTP gateway (http.server); and `[notify.sms]` as the settings schema
reads it."""

import json
import time
from urllib.parse import parse_qs

import pytest

from signet.config import ConfigError, NotifySettings, load_settings
from signet.config.sms import HttpSmsSettings, SmppSmsSettings
from signet.notify import DeliveryError
from signet.notify.http_gateway import HttpGateway
from signet.notify.smpp import SmppGateway, encode_text
from signet.notify.sms import e164, mask_phone
from tests.helpers import self_signed_tls
from tests.sms_peers import SMPP_PASSWORD, SYSTEM_ID, free_tcp_port, http_gateway, smsc

PHONE = "+32470123456"


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "sms.secret"
    path.write_text(SMPP_PASSWORD + "\n")
    return path


def smpp_settings(port, secret_file, **extra):
    values = {
        "type": "smpp",
        "url": f"smpp://127.0.0.1:{port}",
        "system_id": SYSTEM_ID,
        "secret": f"file:{secret_file}",
        "timeout_seconds": 3,
        **extra,
    }
    return SmppSmsSettings(**values)


def test_smpp_submit_sm_reaches_the_smsc_with_a_receipt_asked_for(tmp_path, secret_file):
    with smsc(tmp_path) as center:
        gateway = SmppGateway(smpp_settings(center.port, secret_file, system_type="OTP"))
        try:
            sent = gateway.send(PHONE, "123456 is your code [ok] {x} €")
        finally:
            gateway.close()
        (bind,) = center.records("bind_transmitter")
        assert bind == {
            "event": "bind_transmitter",
            "system_id": SYSTEM_ID,
            "system_type": "OTP",
            "interface_version": 0x34,
            "status": 0,
        }
        (submit,) = center.records("submit_sm")
        # GSM 7-bit: the extension characters ([ ] { } €) escaped, read back by node's coder
        assert submit["data_coding"] == 0 and submit["text"] == "123456 is your code [ok] {x} €"
        assert submit["destination_addr"] == "32470123456"
        assert (submit["dest_addr_ton"], submit["dest_addr_npi"]) == (1, 1)
        assert (submit["source_addr"], submit["source_addr_ton"]) == ("Signet", 5)
        assert submit["registered_delivery"] == 1
        assert sent.message_ids == (submit["message_id"],) and sent.encoding == "gsm7"
        center.wait_for("unbind")


def test_smpp_ucs2_and_concatenated_parts(tmp_path, secret_file):
    text = "Код 654321 — подпись договора. " * 5  # Cyrillic: no GSM 7-bit septets
    with smsc(tmp_path) as center:
        gateway = SmppGateway(smpp_settings(center.port, secret_file))
        try:
            sent = gateway.send(PHONE, text)
        finally:
            gateway.close()
        submits = center.records("submit_sm")
        assert sent.encoding == "ucs2" and sent.parts == len(submits) == 3
        assert {s["data_coding"] for s in submits} == {8}
        assert {s["esm_class"] & 0x40 for s in submits} == {0x40}
        assert center.texts() == [text]


def test_encoding_never_splits_an_escape_or_a_surrogate_pair():
    name, parts = encode_text("€" * 100)  # 200 septets: escape pairs
    assert name == "gsm7" and len(parts) == 2
    assert all(len(p) - 6 <= 153 and (len(p) - 6) % 2 == 0 for p in parts)
    name, parts = encode_text("😀" * 40)  # surrogate pairs in UTF-16
    assert name == "ucs2"
    assert all((len(p) - 6) % 4 == 0 for p in parts)
    assert b"".join(p[6:] for p in parts).decode("utf-16-be") == "😀" * 40
    assert encode_text("plain", "ucs2")[0] == "ucs2"
    assert encode_text("back`tick")[0] == "ucs2"  # ` has no GSM septet


def test_smpp_wrong_password_is_named(tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    with smsc(tmp_path) as center:
        gateway = SmppGateway(smpp_settings(center.port, wrong))
        with pytest.raises(
            DeliveryError, match=r"SMPP 127\.0\.0\.1:\d+: .*ESME_RINVPASWD.*notify\.sms\.secret"
        ):
            gateway.send(PHONE, "x")
        gateway = SmppGateway(smpp_settings(center.port, tmp_path / "wrong", system_id="other"))
        with pytest.raises(DeliveryError, match="ESME_RINVSYSID.*notify.sms.system_id"):
            gateway.send(PHONE, "x")
        assert center.records("submit_sm") == []


def test_smpp_secret_unreadable_or_too_long(tmp_path):
    gateway = SmppGateway(smpp_settings(free_tcp_port(), tmp_path / "absent"))
    with pytest.raises(DeliveryError, match="notify.sms.secret: cannot read"):
        gateway.send(PHONE, "x")
    long = tmp_path / "long"
    long.write_text("123456789")
    with pytest.raises(DeliveryError, match="at most 8"):
        SmppGateway(smpp_settings(free_tcp_port(), long)).send(PHONE, "x")


@pytest.mark.parametrize("how", ["drop", "unbind"])
def test_smpp_dropped_bind_is_made_again(tmp_path, secret_file, how):
    with smsc(tmp_path) as center:
        gateway = SmppGateway(smpp_settings(center.port, secret_file))
        try:
            gateway.send(PHONE, "first")
            center.command(how)  # the SMSC cuts the connection, or ends the bind
            time.sleep(0.2)
            gateway.send(PHONE, "second")
        finally:
            gateway.close()
        assert len(center.records("bind_transmitter")) == 2
        assert center.texts() == ["first", "second"]


def test_smpp_transceiver_passes_delivery_receipts_on(tmp_path, secret_file):
    with smsc(tmp_path) as center:
        gateway = SmppGateway(smpp_settings(center.port, secret_file, bind="transceiver"))
        try:
            first = gateway.send(PHONE, "one")
            center.wait_for("receipt_sent")
            second = gateway.send(PHONE, "two")
        finally:
            gateway.close()
        assert first.receipts == ()
        (receipt,) = second.receipts
        assert (receipt.message_id, receipt.state, receipt.error) == (
            first.message_ids[0],
            "DELIVRD",
            "000",
        )


def test_smpp_unreachable_silent_or_refusing_smsc_is_named_within_bounds(tmp_path, secret_file):
    port = free_tcp_port()  # nothing listens there
    with pytest.raises(DeliveryError, match=f"SMPP 127.0.0.1:{port}: unreachable.*notify.sms.url"):
        SmppGateway(smpp_settings(port, secret_file)).send(PHONE, "x")
    with smsc(tmp_path) as center:
        center.command("silent")
        gateway = SmppGateway(smpp_settings(center.port, secret_file, timeout_seconds=1))
        started = time.monotonic()
        with pytest.raises(
            DeliveryError, match="bind_transmitter failed: no answer to bind_transmitter within 1 s"
        ):
            gateway.send(PHONE, "x")
        assert time.monotonic() - started < 5
    with smsc(tmp_path) as center:
        center.command("refuse 88")  # ESME_RTHROTTLED
        gateway = SmppGateway(smpp_settings(center.port, secret_file))
        with pytest.raises(DeliveryError, match="refused the message: Throttling error"):
            gateway.send(PHONE, "x")
        gateway.close()


def test_smpp_over_tls(tmp_path, secret_file):
    cert, key = self_signed_tls(tmp_path)
    with smsc(tmp_path, tls=(cert, key)) as center:
        url = f"smpps://localhost:{center.port}"
        gateway = SmppGateway(smpp_settings(center.port, secret_file, url=url, ca_file=str(cert)))
        try:
            gateway.send(PHONE, "over TLS")
        finally:
            gateway.close()
        assert center.texts() == ["over TLS"]
        untrusted = SmppGateway(smpp_settings(center.port, secret_file, url=url))
        with pytest.raises(DeliveryError, match="TLS failed.*notify.sms.ca_file"):
            untrusted.send(PHONE, "x")


def http_settings(url, **extra):
    return HttpSmsSettings(**{"type": "http", "url": url, "timeout_seconds": 2, **extra})


def test_http_json_body_with_a_bearer_token(tmp_path, monkeypatch):
    monkeypatch.setenv("SMS_TOKEN", "tok-123")
    with http_gateway() as peer:
        peer.answer = lambda request: (201, {"messages": [{"status": "queued", "id": "m-7"}]})
        gateway = HttpGateway(
            http_settings(
                peer.url,
                body='{"messages": [{"to": "{to}", "from": "{sender}", "body": "{text}"}]}',
                headers={"X-Api-Version": "2"},
                auth="bearer",
                secret="env:SMS_TOKEN",
                success_field="messages.0.status",
                success_pattern="queued|sent",
                message_id_field="messages.0.id",
            )
        )
        sent = gateway.send(PHONE, 'Code 123456 "quoted" ü')
        (request,) = peer.requests
        assert request["method"] == "POST" and request["path"] == "/api/sms"
        assert request["headers"]["authorization"] == "Bearer tok-123"
        assert request["headers"]["x-api-version"] == "2"
        assert json.loads(request["body"]) == {
            "messages": [{"to": PHONE, "from": "Signet", "body": 'Code 123456 "quoted" ü'}]
        }
        assert sent.message_ids == ("m-7",)
        peer.answer = lambda request: (200, {"messages": [{"status": "rejected"}]})
        with pytest.raises(DeliveryError, match="messages.0.status is 'rejected'"):
            gateway.send(PHONE, "x")


def test_http_form_body_with_basic_auth_and_get(tmp_path):
    secret = tmp_path / "api.key"
    secret.write_text("k3y\n")
    with http_gateway() as peer:
        gateway = HttpGateway(
            http_settings(
                peer.url,
                body_format="form",
                body="dest={to_digits}&src={sender}&msg={text}&ref={reference}",
                auth="basic",
                username="signet",
                secret=f"file:{secret}",
            )
        )
        sent = gateway.send(PHONE, "Code 123456 & more")
        form = parse_qs(peer.requests[0]["body"].decode())
        assert form["dest"] == ["32470123456"] and form["msg"] == ["Code 123456 & more"]
        assert form["ref"] == [sent.reference]
        assert peer.requests[0]["headers"]["authorization"].startswith("Basic ")
        getter = HttpGateway(
            http_settings(
                peer.url,
                method="GET",
                body_format="form",
                body="to={to}&text={text}",
                auth="header",
                auth_header="X-API-Key",
                secret=f"file:{secret}",
            )
        )
        getter.send(PHONE, "hi")
        got = peer.requests[1]
        assert got["method"] == "GET" and "to=%2B32470123456" in got["path"]
        assert got["headers"]["x-api-key"] == "k3y"


def test_http_refusals_are_named(tmp_path):
    with http_gateway() as peer:
        gateway = HttpGateway(http_settings(peer.url))
        peer.answer = lambda request: (401, {"error": "bad key"})
        with pytest.raises(DeliveryError, match="HTTP 401.*notify.sms.secret"):
            gateway.send(PHONE, "x")
        peer.answer = lambda request: (503, {"error": "maintenance"})
        with pytest.raises(DeliveryError, match="HTTP 503.*failing or busy"):
            gateway.send(PHONE, "x")
        peer.answer = lambda request: (200, {})
        peer.delay = 3
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="no answer within 2 s"):
            gateway.send(PHONE, "x")
        assert time.monotonic() - started < 3
    port = free_tcp_port()
    with pytest.raises(
        DeliveryError, match=f"HTTP gateway http://127.0.0.1:{port}/api/sms: unreachable"
    ):
        HttpGateway(http_settings(f"http://127.0.0.1:{port}/api/sms")).send(PHONE, "x")


def test_phone_numbers_in_e164_and_masked():
    assert e164("+32 470 12-34-56") == PHONE and e164("0032 (470) 123456") == PHONE
    for bad in ("0470123456", "+0470123456", "+32 470 abc", "+1234567890123456"):
        with pytest.raises(ValueError, match="phone number"):
            e164(bad)
    assert mask_phone(PHONE) == "+32******456"
    assert "470123" not in mask_phone(PHONE)


@pytest.mark.parametrize(
    ("sms", "named"),
    [
        ({"type": "smpp", "url": "http://x", "system_id": "a"}, "notify.sms.url"),
        (
            {"type": "smpp", "url": "smpp://x", "system_id": "a", "secret": "pw"},
            "notify.sms.secret",
        ),
        ({"type": "http", "url": "https://x/", "auth": "basic"}, "auth basic needs username"),
        ({"type": "http", "url": "https://x/", "body": '{"a": "{code}"}'}, "placeholder {code}"),
        (
            {"type": "http", "url": "https://x/", "headers": {"Authorization": "x"}},
            "notify.sms.headers",
        ),
        ({"type": "fax"}, "notify.sms: Input tag 'fax'"),
        (
            {"type": "http", "url": "https://x/", "sender": "A very long sender"},
            "notify.sms.sender",
        ),
    ],
)
def test_settings_name_the_bad_setting(monkeypatch, sms, named):
    monkeypatch.delenv("SIGNET_CONFIG", raising=False)
    with pytest.raises(ConfigError) as refused:
        load_settings(database={"url": "sqlite://"}, notify={"sms": sms})
    assert named in str(refused.value)


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.delenv("SIGNET_CONFIG", raising=False)
    monkeypatch.setenv("SIGNET_DATABASE__URL", "sqlite://")
    monkeypatch.setenv("SIGNET_NOTIFY__SMS__TYPE", "smpp")
    monkeypatch.setenv("SIGNET_NOTIFY__SMS__URL", "smpps://smsc.example:3550")
    monkeypatch.setenv("SIGNET_NOTIFY__SMS__SYSTEM_ID", "signet")
    sms = load_settings().notify.sms
    assert isinstance(sms, SmppSmsSettings) and (sms.host, sms.port, sms.tls) == (
        "smsc.example",
        3550,
        True,
    )
    assert NotifySettings().sms is None
