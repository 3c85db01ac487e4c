"""SIGNET-MIB passes libsmi's smilint at its most demanding level (-l 6) with no error: only
warnings (severity 4 and up) are allowed, and the one expected is the placeholder root's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.snmp_peers import IETF_MIB_DIR, MIB_DIR

SEVERITY = re.compile(r"^(?P<where>\S+:\d+): \[(?P<level>\d)\] (?P<message>.*)$")


def smilint(path) -> list[tuple[int, str]]:
    if shutil.which("smilint") is None:
        pytest.fail("smilint not installed: run `make deps-test` (Debian smitools)")
    if not (IETF_MIB_DIR / "SNMPv2-SMI.mib").exists():
        pytest.fail(f"no IETF SMI modules in {IETF_MIB_DIR}: run `make deps-test`")
    run = subprocess.run(
        ["smilint", "-s", "-l", "6", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "SMIPATH": f"{IETF_MIB_DIR}:{MIB_DIR}"},
        timeout=60,
    )
    findings = []
    for line in (run.stdout + run.stderr).splitlines():
        match = SEVERITY.match(line)
        assert match, f"smilint said something unparsed: {line!r}"
        findings.append((int(match["level"]), f"{match['where']}: {match['message']}"))
    return findings


def test_the_mib_has_no_error_at_level_6():
    findings = smilint(MIB_DIR / "SIGNET-MIB.txt")
    errors = [text for level, text in findings if level <= 3]  # libsmi: 0-3 are errors
    assert not errors, "\n".join(errors)
    warnings = [text for level, text in findings if level > 3]
    assert all("implicit node definition" in text for text in warnings), warnings


def test_a_broken_mib_is_caught(tmp_path):
    """The check can fail: an object whose macro is misspelt is an error."""
    text = (MIB_DIR / "SIGNET-MIB.txt").read_text()
    broken = tmp_path / "SIGNET-MIB.txt"
    broken.write_text(text.replace("signetHsmStatus OBJECT-TYPE", "signetHsmStatus OBJECT-TYP"))
    assert any(level <= 3 for level, _ in smilint(broken))
