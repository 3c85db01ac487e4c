"""An insider with write access to the database, but not to the HSM's audit key, tampers with
the audit trail by SQL — as he would, recomputing every hash with Signet's own `record_hash`
— and `audit verify` names what he did. On SQLite and PostgreSQL, with the real SoftHSM key."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, text

from signet.events import verify_chain
from signet.events.audit import GENESIS, record_hash
from signet.signing import admin
from tests.helpers import signet_cli, signet_server

PASSWORD = "a long password"


def add_user(services, name: str) -> None:
    admin.add_user(
        services,
        name,
        password=PASSWORD,
        display_name=None,
        email=f"{name}@example.test",
        actor="test",
    )


def records(database_url: str) -> list[dict]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_records ORDER BY seq")).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def seq_of(database_url: str, event: str, subject: str) -> int:
    (match,) = [
        r["seq"] for r in records(database_url) if r["event"] == event and r["subject"] == subject
    ]
    return match


def rewrite_and_rechain(database_url: str, seq: int, **changes: str) -> None:
    """The insider's edit: change record `seq`, then recompute its hash and every later one's
    (each covers the one before) and the head's, so the plain hash chain is whole again."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        if changes:
            assignments = ", ".join(f"{column} = :{column}" for column in changes)
            conn.execute(
                text(f"UPDATE audit_records SET {assignments} WHERE seq = :seq"),
                {**changes, "seq": seq},
            )
        prev = (
            conn.execute(
                text("SELECT record_hash FROM audit_records WHERE seq = :s"), {"s": seq - 1}
            ).scalar()
            or GENESIS
        )
        for row in (
            conn.execute(
                text("SELECT * FROM audit_records WHERE seq >= :s ORDER BY seq"), {"s": seq}
            )
            .mappings()
            .all()
        ):
            digest = record_hash(
                row["seq"],
                row["at"],
                row["event"],
                row["actor"],
                row["subject"],
                row["outcome"],
                row["details"],
                prev,
            )
            conn.execute(
                text("UPDATE audit_records SET prev_hash = :p, record_hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row["seq"]},
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})
    engine.dispose()


def cut_tail(database_url: str, keep: int) -> None:
    """The insider's cut: delete every record after `keep` and point the head at it."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq > :k"), {"k": keep})
        last_hash = conn.execute(
            text("SELECT record_hash FROM audit_records WHERE seq = :k"), {"k": keep}
        ).scalar_one()
        conn.execute(
            text("UPDATE audit_head SET last_seq = :k, last_hash = :h WHERE id = 1"),
            {"k": keep, "h": last_hash},
        )
    engine.dispose()


def hashes_alone(services) -> list:
    """What the unkeyed hash chain says (the check before the trail was keyed)."""
    with services.database.transaction(read_only=True) as session:
        session.info.pop("audit_mac")
        return verify_chain(session)[1]


def test_an_intact_trail_verifies_with_its_macs_and_checkpoints(services, database_url):
    add_user(services, "alice")
    admin.checkpoint_audit(services, actor="test")
    add_user(services, "bob")
    admin.set_user_status(services, "bob", "disabled", actor="test")
    admin.checkpoint_audit(services, actor="test")

    check = admin.verify_audit(services)
    assert check.findings == []
    assert check.checkpoints == 2 and check.records == len(records(database_url))
    # Every append ended with a keyed record: each of these added one.
    rows = records(database_url)
    assert [(r["event"], bool(r["mac"])) for r in rows[-5:]] == [
        ("user.created", True),
        ("audit.checkpoint", True),
        ("user.created", True),
        ("user.disabled", True),
        ("audit.checkpoint", True),
    ]


def test_a_record_edited_and_the_chain_and_head_recomputed_is_found(services, database_url):
    add_user(services, "alice")
    add_user(services, "mallory")
    add_user(services, "bob")
    edited = seq_of(database_url, "user.created", "mallory")
    rewrite_and_rechain(database_url, edited, subject="someone-else")

    assert hashes_alone(services) == []  # the plain chain is fooled
    findings = admin.verify_audit(services).findings
    assert findings[0].seq == edited
    assert "MAC does not match: records rewritten" in findings[0].problem
    # Every later MAC fails too (their hashes were recomputed): one finding says so.
    assert len(findings) == 1 and "later records fail too" in findings[0].problem


def test_records_forged_at_the_end_with_the_head_moved_are_found(services, database_url):
    add_user(services, "alice")
    last = records(database_url)[-1]
    forged = last["seq"] + 1
    details = "{}"
    at = last["at"]
    digest = record_hash(
        forged, at, "user.enabled", "admin", "mallory", "success", details, last["record_hash"]
    )
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_records (seq, at, event, actor, subject, outcome, details, "
                "prev_hash, record_hash) VALUES (:s, :at, 'user.enabled', 'admin', 'mallory', "
                "'success', :d, :p, :h)"
            ),
            {"s": forged, "at": at, "d": details, "p": last["record_hash"], "h": digest},
        )
        conn.execute(
            text("UPDATE audit_head SET last_seq = :s, last_hash = :h WHERE id = 1"),
            {"s": forged, "h": digest},
        )
    engine.dispose()

    assert hashes_alone(services) == []
    findings = admin.verify_audit(services).findings
    assert [(f.seq, f.problem.split(" (")[0]) for f in findings] == [
        (forged, f"record {forged} not covered by any MAC")
    ]


def test_the_tail_cut_and_the_head_rewritten_is_found_against_the_checkpoint(
    services, database_url
):
    add_user(services, "alice")
    keep = records(database_url)[-1]["seq"]
    add_user(services, "bob")
    anchored = records(database_url)[-1]["seq"]
    checkpoint = admin.checkpoint_audit(services, actor="test")
    assert checkpoint.seq == anchored
    add_user(services, "carol")
    cut_tail(database_url, keep)  # bob, the checkpoint and carol are gone

    assert hashes_alone(services) == []  # whole as far as the chain and the MACs go
    check = admin.verify_audit(services)
    assert [str(f) for f in check.findings] == [
        f"record {anchored}: missing, yet the checkpoint of {checkpoint.at} "
        f"({check.checkpoint_file} line 1) anchors it: the tail was cut (or the record deleted)"
    ]


def test_a_rewritten_checkpoint_record_and_its_anchor_are_found(services, database_url):
    add_user(services, "alice")
    checkpoint = admin.checkpoint_audit(services, actor="test")
    rewrite_and_rechain(database_url, checkpoint.seq, actor="someone-else")
    problems = [str(f) for f in admin.verify_audit(services).findings]
    assert (
        f"record {checkpoint.seq}: its hash differs from the checkpoint of {checkpoint.at}"
        in "\n".join(problems)
    )


def test_a_forged_checkpoint_line_is_found(services, database_url):
    add_user(services, "alice")
    add_user(services, "bob")  # records enough that the checkpoint anchors one after record 2
    checkpoint = admin.checkpoint_audit(services, actor="test")
    path = Path(services.settings.audit.checkpoint_file)
    # The insider, to hide a cut at record 2, writes a checkpoint that anchors it: he can
    # copy a MAC but not make one. (Record 2 is not the one the real checkpoint anchors.)
    two = records(database_url)[1]
    assert two["seq"] == 2 and checkpoint.seq != 2
    forged = {
        "event": "audit.checkpoint",
        "seq": 2,
        "record_hash": two["record_hash"],
        "at": checkpoint.at,
        "mac": checkpoint.mac,
    }
    with path.open("a") as export:
        export.write(json.dumps(forged) + "\n")
        export.write("not json\n")
    check = admin.verify_audit(services)
    assert [str(f) for f in check.findings] == [
        f"{path} line 2: forged checkpoint (MAC does not match) claiming record 2",
        f"{path} line 3: not a checkpoint statement",
    ]
    assert check.checkpoints == 1


def test_the_cli_exits_non_zero_with_a_line_naming_the_record(
    settings_env, services, database_url, tmp_path
):
    add_user(services, "alice")
    add_user(services, "mallory")
    add_user(services, "bob")
    checkpoint = admin.checkpoint_audit(services, actor="test")
    intact = signet_cli("audit", "verify", env=settings_env)
    assert intact.returncode == 0, intact.stderr
    assert "audit trail intact" in intact.stdout and "1 checkpoint(s)" in intact.stdout

    edited = seq_of(database_url, "user.created", "mallory")
    rewrite_and_rechain(database_url, edited, outcome="failure")
    result = signet_cli("audit", "verify", env=settings_env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"TAMPERED record {edited}: MAC does not match: records rewritten" in result.stdout
    assert "audit trail broken" in result.stderr

    # The same against a copy of the checkpoints named on the command line, after a cut.
    copy = tmp_path / "elsewhere.jsonl"
    copy.write_bytes(Path(services.settings.audit.checkpoint_file).read_bytes())
    cut_tail(database_url, edited - 1)
    result = signet_cli("audit", "verify", "--checkpoints", str(copy), env=settings_env)
    assert result.returncode != 0
    assert (
        f"TAMPERED record {checkpoint.seq}: missing, yet the checkpoint of "
        f"{checkpoint.at} ({copy} line 1) anchors it"
    ) in result.stdout
    absent = signet_cli(
        "audit", "verify", "--checkpoints", str(tmp_path / "nope"), env=settings_env
    )
    assert absent.returncode != 0 and "checkpoint file" in absent.stderr


def test_signet_init_records_the_creation_of_every_key(softhsm, database_url, tmp_path):
    """A token of its own: the session's shared one already holds the SAM's keys."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNET_")}
    env["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "fresh",
            "--so-pin",
            "12345678",
            "--pin",
            "4321",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    (tmp_path / "pin").write_text("4321")
    env.update(
        {
            "SIGNET_DATABASE__URL": database_url,
            "SIGNET_HSM__MODULE": softhsm["module"],
            "SIGNET_HSM__TOKEN_LABEL": "fresh",
            "SIGNET_HSM__PIN_FILE": str(tmp_path / "pin"),
            "SIGNET_AUDIT__CHECKPOINT_FILE": str(tmp_path / "checkpoints.jsonl"),
        }
    )
    first = signet_cli("init", env=env)
    assert first.returncode == 0, first.stderr
    created = [
        (r["event"], r["subject"], json.loads(r["details"]).get("purpose"))
        for r in records(database_url)
    ]
    assert created == [
        ("key.generated", "signet-pin-hmac", "sam"),
        ("key.generated", "signet-sam-hmac", "sam"),
        ("key.generated", "signet-audit-hmac", "sam"),
        ("key.generated", "signet-local-ca", "ca"),
        ("ca.created", "local", None),
    ]
    again = signet_cli("init", env=env)
    assert again.returncode == 0 and len(records(database_url)) == len(created)
    verified = signet_cli("audit", "verify", env=env)
    assert verified.returncode == 0 and "intact: 5 records" in verified.stdout


def test_serve_records_its_start_and_stop_and_a_checkpoint_each_once(services, database_url):
    with signet_server(workers=2):  # settings_env (through services) set the environment
        pass
    started = [r for r in records(database_url) if r["event"] == "service.started"]
    stopped = [r for r in records(database_url) if r["event"] == "service.stopped"]
    assert len(started) == len(stopped) == 1  # not one per worker
    details = json.loads(started[0]["details"])
    assert set(details) == {"settings_sha256", "version"} and len(details["settings_sha256"]) == 64
    lines = Path(services.settings.audit.checkpoint_file).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [started[0]["seq"], stopped[0]["seq"]]
    assert admin.verify_audit(services).findings == []


def test_serve_does_not_start_when_its_start_cannot_be_recorded(settings_env, tmp_path):
    env = {**settings_env, "SIGNET_AUDIT__CHECKPOINT_FILE": str(tmp_path / "no" / "such.jsonl")}
    assert signet_cli("init", env=env).returncode == 0
    result = signet_cli("serve", "--listen", "127.0.0.1:9", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "signet: error: cannot record the service's start in the audit trail: "
        "audit.checkpoint_file: cannot append to"
    ) in result.stderr
