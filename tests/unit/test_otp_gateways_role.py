"""The otp_gateways role's [notify] fragment: what an inventory's SMS gateway renders to is TOML
that Signet's own schema accepts, with the same values (the lead's Molecule run checks the
role on a host)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jinja2
import yaml

from signet.config import NotifySettings
from signet.config.sms import HttpSmsSettings, SmppSmsSettings

ROLE = Path(__file__).resolve().parents[2] / "roles" / "otp_gateways"


def _render(**variables: object) -> NotifySettings:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool
    env.trim_blocks = True  # as Ansible's template module renders
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    role_vars = {
        "otp_gateways_effective_smtp": {
            "host": "localhost", "port": 587, "security": "starttls", "username": "",
            "password": "",
        },
        "otp_gateways_smtp_password_file": "/etc/signet/smtp.password",
        "otp_gateways_smtp_ca_file": "/etc/signet/smtp-ca.pem",
        "otp_gateways_sms_credentials_file": "/etc/signet/sms.credentials",
        "otp_gateways_sms_ca_file": "/etc/signet/sms-ca.pem",
    }  # fmt: skip
    template = env.from_string((ROLE / "templates" / "notify.toml.j2").read_text())
    text = template.render(
        {
            **defaults,
            **role_vars,
            "ansible_managed": "managed",
            "otp_gateways_smtp_sender": "signet@example.org",
            **variables,
        }
    )
    return NotifySettings(**tomllib.loads(text)["notify"])


def test_without_sms_there_is_no_sms_section() -> None:
    assert _render().sms is None


def test_an_smsc_renders_to_the_settings_signet_reads() -> None:
    sms = _render(
        otp_gateways_sms_enabled=True,
        otp_gateways_sms_type="smpp",
        otp_gateways_sms_url="smpps://smsc.example.org:3550",
        otp_gateways_sms_username="signet",
        otp_gateways_sms_password="secret12",
        otp_gateways_sms_ca_certificate="-----BEGIN CERTIFICATE-----",
        otp_gateways_sms_smpp_bind="transceiver",
        otp_gateways_sms_smpp_system_type="OTP",
    ).sms
    assert isinstance(sms, SmppSmsSettings)
    assert (sms.host, sms.port, sms.tls, sms.system_id, sms.system_type, sms.bind) == (
        "smsc.example.org", 3550, True, "signet", "OTP", "transceiver",
    )  # fmt: skip
    assert sms.secret == "file:/etc/signet/sms.credentials"
    assert sms.ca_file == "/etc/signet/sms-ca.pem" and sms.delivery_receipts is True


def test_an_http_gateway_renders_to_the_settings_signet_reads() -> None:
    sms = _render(
        otp_gateways_sms_enabled=True,
        otp_gateways_sms_url="https://sms.example.org/api/v1/messages",
        otp_gateways_sms_password="api-key",
        otp_gateways_sms_http_auth="header",
        otp_gateways_sms_http_auth_header="X-API-Key",
        otp_gateways_sms_http_body='{"messages": [{"to": "{to}", "text": "{text}"}]}',
        otp_gateways_sms_http_headers={"X-Api-Version": 2, "Accept": "application/json"},
        otp_gateways_sms_http_success_status=[200, "202"],
        otp_gateways_sms_http_success_field="messages.0.status",
        otp_gateways_sms_http_success_pattern="queued|sent",
        otp_gateways_sms_http_message_id_field="messages.0.id",
    ).sms
    assert isinstance(sms, HttpSmsSettings)
    assert (sms.auth, sms.auth_header, sms.secret) == (
        "header", "X-API-Key", "file:/etc/signet/sms.credentials",
    )  # fmt: skip
    assert sms.headers == {"Accept": "application/json", "X-Api-Version": "2"}
    assert sms.success_status == [200, 202] and sms.success_pattern == "queued|sent"
    assert json.loads(sms.body) == {"messages": [{"to": "{to}", "text": "{text}"}]}
    assert sms.username is None and sms.message_id_field == "messages.0.id"


def test_a_form_gateway_with_basic_auth_and_the_example_inventory() -> None:
    sms = _render(
        otp_gateways_sms_enabled=True,
        otp_gateways_sms_url="https://sms.example.org/send",
        otp_gateways_sms_username="signet",
        otp_gateways_sms_password="pw",
        otp_gateways_sms_http_method="GET",
        otp_gateways_sms_http_body_format="form",
        otp_gateways_sms_http_body="to={to_digits}&text={text}",
    ).sms
    assert isinstance(sms, HttpSmsSettings)
    assert (sms.method, sms.auth, sms.username) == ("GET", "basic", "signet")
    inventory = Path(__file__).resolve().parents[2] / "inventories" / "example" / "cluster"
    example = yaml.safe_load((inventory / "group_vars" / "signet" / "vars.yml").read_text())
    sms_vars = {k: v for k, v in example.items() if k.startswith("otp_gateways_sms")}
    assert isinstance(_render(**sms_vars).sms, HttpSmsSettings)
