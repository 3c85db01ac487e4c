"""The SIEM field mapping: monitoring/siem-fields.md and the JSON schema beside it agree with
signet.events.messages, and the three bodies parse back (with parsers of their own) to the
values that went in, escaping included. The [events] settings refuse what cannot work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from signet.config import PLACEHOLDER_ENTERPRISE_NUMBER, EventsSettings
from signet.events.messages import (
    CEF_LABELS,
    FIELDS,
    SEVERITY,
    Forwarded,
    syslog_message,
)
from tests.siem_parsers import parse_cef, parse_rfc5424

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
TABLE = MONITORING / "siem-fields.md"
SCHEMA = json.loads((MONITORING / "signet-event.schema.json").read_text())


def _table(heading: str) -> list[list[str]]:
    section = TABLE.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_field_table_matches_the_code() -> None:
    table = [(r[0], r[1], r[2], r[3]) for r in _table("Fields")]
    code = [(f.name, f.json_key, f.cef_key, f.sd_param) for f in FIELDS]
    assert table == code
    # The CEF labels the table names for cs1..cs3 are the ones sent.
    labels = dict(re.findall(r"\| `(cs\d)` \|.*?CEF label `(\w+)`", TABLE.read_text()))
    assert labels == CEF_LABELS


def test_severity_table_matches_the_code() -> None:
    assert {event: int(sev) for event, sev in _table("Severities")} == SEVERITY


def test_json_schema_lists_every_field() -> None:
    assert set(SCHEMA["required"]) == {f.json_key for f in FIELDS} == set(SCHEMA["properties"])


NASTY = 'a|b\\c=d"e]f\ng\r'
# In structured data and the text body, control characters are written \uXXXX.
NASTY_ONE_LINE = 'a|b\\c=d"e]f\\u000ag\\u000d'


def _item(**changes: object) -> Forwarded:
    values: dict[str, object] = dict(
        kind="audit",
        event="login.failed",
        at="2026-12-03T07:58:54.123456+00:00",
        actor=NASTY,
        outcome="failure",
        details={"reason": NASTY, "source": "192.0.2.7"},
        subject=NASTY,
        seq=41,
        record_hash="a" * 64,
        prev_hash="b" * 64,
        integrity="chained",
    )
    values.update(changes)
    return Forwarded(**values)  # type: ignore[arg-type]


def _render(item: Forwarded, body: str) -> str:
    return syslog_message(
        item,
        body_format=body,
        facility=13,
        host="node-1",
        app_name="signet",
        procid="4242",
        enterprise_number=PLACEHOLDER_ENTERPRISE_NUMBER,
        version="0.1.0",
    ).decode()


def test_rfc5424_frame_and_structured_data_escaping() -> None:
    parsed = parse_rfc5424(_render(_item(), "rfc5424"))
    assert (parsed.version, parsed.hostname, parsed.app, parsed.procid, parsed.msgid) == (
        1,
        "node-1",
        "signet",
        "4242",
        "login.failed",
    )
    assert parsed.timestamp == "2026-12-03T07:58:54.123456Z"
    assert (parsed.facility, parsed.severity) == (13, 5)  # CEF 4 → notice
    sd = parsed.sd[f"signet@{PLACEHOLDER_ENTERPRISE_NUMBER}"]
    assert sd == {
        "seq": "41",
        "severity": "4",
        "kind": "audit",
        "actor": NASTY_ONE_LINE,
        "subject": NASTY_ONE_LINE,
        "outcome": "failure",
        "hash": "a" * 64,
        "prev": "b" * 64,
        "integrity": "chained",
    }
    assert parsed.msg.startswith(f"login.failed by {NASTY_ONE_LINE} on {NASTY_ONE_LINE}: failure")
    assert "\n" not in parsed.msg


def test_json_body_validates_and_round_trips() -> None:
    body = json.loads(parse_rfc5424(_render(_item(), "json")).msg)
    jsonschema.validate(body, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert body["actor"] == NASTY and body["details"]["reason"] == NASTY
    assert (body["seq"], body["severity"], body["host"]) == (41, 4, "node-1")
    operational = _item(kind="operational", seq=None, record_hash=None, prev_hash=None)
    with pytest.raises(jsonschema.ValidationError):  # an operational event is never "chained"
        jsonschema.validate(json.loads(parse_rfc5424(_render(operational, "json")).msg), SCHEMA)


def test_cef_header_and_extension_escaping() -> None:
    cef = parse_cef(parse_rfc5424(_render(_item(event="hsm.unreachable"), "cef")).msg)
    assert (cef.version, cef.vendor, cef.product, cef.product_version) == (
        "0",
        "Signet",
        "Signet",
        "0.1.0",
    )
    assert (cef.signature_id, cef.name, cef.severity) == ("hsm.unreachable", "hsm unreachable", "9")
    ext = cef.extension
    # Extension values: '\' and '=' escaped, CR and LF written \r and \n (a lone CR too).
    assert ext["suser"] == NASTY and ext["duser"] == NASTY
    assert json.loads(ext["msg"]) == {"reason": NASTY, "source": "192.0.2.7"}
    assert ext["externalId"] == "41" and ext["rt"] == "1796284734123"
    assert (ext["cs1"], ext["cs1Label"], ext["cs3"], ext["cs3Label"]) == (
        "a" * 64,
        "recordHash",
        "chained",
        "integrity",
    )


def test_cef_header_pipes_and_backslashes_are_escaped() -> None:
    cef = parse_cef(parse_rfc5424(_render(_item(event="odd|event\\x"), "cef")).msg)
    assert cef.signature_id == "odd|event\\x" and cef.severity == "5"


def test_a_record_found_edited_is_severity_ten() -> None:
    cef = parse_cef(parse_rfc5424(_render(_item(integrity="hash-mismatch"), "cef")).msg)
    assert cef.severity == "10" and cef.extension["cs3"] == "hash-mismatch"


@pytest.mark.parametrize(
    ("sinks", "message"),
    [
        ({"a": {"host": "h", "transport": "udp", "ca_file": "/x"}}, "ca_file applies to"),
        ({"a": {"host": "h", "client_cert_file": "/c"}}, "client_key_file"),
        ({"A b": {"host": "h"}}, "sink name 'A b'"),
        ({"a": {"host": "h", "format": "leef"}}, "format"),
        ({"a": {"transport": "tcp"}}, "host"),
    ],
)
def test_events_settings_name_what_is_wrong(sinks: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        EventsSettings(sinks=sinks)


def test_load_settings_names_the_sink_setting(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from signet.config import ConfigError, load_settings

    config = tmp_path / "signet.toml"
    config.write_text('[events.sinks.siem]\nhost = "siem.example"\ntransport = "sctp"\n')
    monkeypatch.setenv("SIGNET_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"events\.sinks\.siem\.transport"):
        load_settings()
