"""The forwarder's spool reads back what it wrote, and skips what would fail every round (a
line edited or torn on disk) instead of blocking the sink's queue."""

from __future__ import annotations

import json

from signet.events.messages import operational
from signet.events.spool import Spool


def test_spooled_events_read_back_and_poison_is_skipped(tmp_path) -> None:
    spool = Spool(str(tmp_path))
    down = operational(
        "hsm.unreachable", at="2026-12-03T20:00:00+00:00", actor="node:a", outcome="failure"
    )
    spool.append("siem", down)
    with (tmp_path / "siem.jsonl").open("a") as out:
        good = json.loads((tmp_path / "siem.jsonl").read_text())
        for poison in (
            {**good, "at": "yesterday"},
            {**good, "actor": 42},
            {**good, "kind": "audit", "integrity": "chained"},
            {**good, "extra": 1},
        ):
            out.write(json.dumps(poison) + "\n")
        out.write('{"kind": "operational", "eve')  # torn
    assert spool.load("siem") == [down]
    spool.replace("siem", [])
    assert not (tmp_path / "siem.jsonl").exists()
    # a second forwarder on the host gets no spool of its own, and says so
    assert Spool(str(tmp_path)).directory is None
    spool.close()
    assert Spool(str(tmp_path)).directory == tmp_path
