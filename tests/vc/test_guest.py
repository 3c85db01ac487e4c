"""libsignet-vc.so is a guest in other people's processes: a host's Python settings cannot
break it, an unreachable service or a missing configuration is a PKCS#11 error and never a
crash, and the functions it does not implement say so."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.vc.conftest import MODULE, SECRET, Card


def tool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pkcs11-tool", "--module", str(MODULE), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_host_python_settings_are_ignored(card: Card) -> None:
    hostile = {
        **card.env,
        "PYTHONHOME": "/nonexistent",
        "PYTHONPATH": "/nonexistent",
        "PYTHONSTARTUP": "/nonexistent",
        "PATH": "/usr/bin:/bin",
    }
    done = tool(hostile, "--list-slots")
    assert done.returncode == 0, done.stderr
    assert "token label        : alice" in done.stdout


def test_unreachable_service_is_an_error_not_a_crash(card: Card) -> None:
    config = card.tmp / "unreachable.toml"
    config.write_text('[[account]]\nserver = "http://127.0.0.1:56999"\nuser = "alice"\n')
    done = tool({**card.env, "SIGNET_VC_CONFIG": str(config)}, "--login", "--pin", SECRET,
                "--list-objects")  # fmt: skip
    assert done.returncode == 1, done  # not killed by a signal
    assert "CKR_DEVICE_ERROR" in done.stderr


def test_no_configuration_no_slots(card: Card) -> None:
    done = tool({**card.env, "SIGNET_VC_CONFIG": str(card.tmp / "missing.toml")}, "-L")
    assert done.returncode in (0, 1), done  # pkcs11-tool ends 1 on an empty list
    assert "No slots" in done.stderr


def test_unsupported_functions(card: Card) -> None:
    data = card.tmp / "object.bin"
    data.write_bytes(b"no objects are written to a remote card")
    done = tool(card.env, "--write-object", str(data), "--type", "data", "--label", "x")
    assert done.returncode == 1
    assert "CKR_FUNCTION_NOT_SUPPORTED" in done.stderr


def test_fork_and_threads(card: Card) -> None:
    """A C host: dlopen RTLD_LOCAL, a thread calling in while the main thread forks twenty
    times; each child initializes again and works; C_Finalize and C_Initialize again."""
    exe = card.tmp / "fork_host"
    source = Path(__file__).with_name("fork_host.c")
    subprocess.run(
        ["gcc", "-O1", "-Wall", "-I/usr/include/p11-kit-1/p11-kit", "-pthread", "-o", str(exe),
         str(source), "-ldl"],
        check=True, capture_output=True,
    )  # fmt: skip
    done = subprocess.run(
        [str(exe), str(MODULE)], capture_output=True, text=True, env=card.env, timeout=120
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.strip() == "ok"
