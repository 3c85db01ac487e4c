"""otp_gateways: Signet's [notify] settings, private credentials, and mail relayed by Postfix."""

import time
import tomllib
import uuid


def notify(host):
    return tomllib.loads(host.file("/etc/signet/signet.toml").content_string)["notify"]


def test_signet_submits_to_the_local_relay(host):
    settings = notify(host)
    assert settings["email_backend"] == "smtp"
    assert settings["smtp"] == {
        "host": "127.0.0.1", "port": 25, "security": "none",
        "sender": "otp@signet.molecule.test", "timeout_seconds": 10,
    }


def test_sms_gateway_section(host):
    sms = notify(host)["sms"]
    assert sms == {
        "type": "smpp", "url": "smpp://smsc.molecule.test:2775", "sender": "Signet",
        "timeout_seconds": 10, "secret": "file:/etc/signet/sms.credentials",
        "system_id": "signet", "system_type": "", "bind": "transceiver",
        "delivery_receipts": True, "encoding": "auto",
    }
    assert host.file("/etc/signet/sms.credentials").content_string == "smsecret\n"


def test_credential_files_private(host):
    for path in ("/etc/signet/sms.credentials", "/etc/signet/signet.toml"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "signet", 0o640), path
    sasl = host.file("/etc/postfix/sasl_passwd")
    assert (sasl.user, sasl.mode) == ("root", 0o600)
    assert host.file("/etc/postfix/sasl_passwd.db").exists


def test_postfix_listens_on_loopback_only(host):
    assert host.service("postfix").is_running
    assert host.socket("tcp://127.0.0.1:25").is_listening
    assert not host.socket("tcp://0.0.0.0:25").is_listening


def test_mail_is_relayed_to_the_mail_server(host):
    subject = f"OTP {uuid.uuid4()}"
    host.check_output(
        "python3 -c \"import smtplib, sys; smtplib.SMTP('127.0.0.1', 25).sendmail("
        "'otp@signet.molecule.test', ['alice@example.org'], "
        "'Subject: ' + sys.argv[1] + '\\n\\nYour code is 123456\\n')\" %s", subject)
    deadline = time.time() + 30
    while time.time() < deadline:
        log = host.file("/var/log/standin-smtp.log")
        if log.exists and subject in log.content_string:
            return
        time.sleep(1)
    raise AssertionError(host.check_output("postqueue -p; tail -20 /var/log/standin-smtp.log"))


def test_no_local_delivery(host):
    main_cf = host.file("/etc/postfix/main.cf").content_string
    assert "mydestination =\n" in main_cf
    assert "inet_interfaces = loopback-only" in main_cf


def test_web_push_with_a_private_p256_vapid_key(host):
    assert notify(host)["web_push"] == {
        "vapid_key_file": "/etc/signet/vapid.pem",
        "contact": "mailto:operator@signet.molecule.test",
        "ttl_seconds": 120,
    }
    key = host.file("/etc/signet/vapid.pem")
    assert (key.user, key.group, key.mode) == ("root", "signet", 0o640)
    assert "prime256v1" in host.check_output("openssl ec -in /etc/signet/vapid.pem -noout -text")
