"""Net-SNMP peers for the SNMP tests: our own snmptrapd and snmpd on loopback (own
configuration, persistent directory and pid file, never the system's), reading SIGNET-MIB
from monitoring/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIB_DIR = ROOT / "monitoring"
# The IETF modules SIGNET-MIB imports (SNMPv2-SMI, -TC, -CONF; SNMPv2-MIB for the trap
# header): Debian has them only in non-free snmp-mibs-downloader, so `make deps-test` takes
# them from the npm package net-snmp, which ships them.
IETF_MIB_DIR = ROOT / "build" / "npm" / "node_modules" / "net-snmp" / "lib" / "mibs"
MIB_PATH = f"+{MIB_DIR}:{IETF_MIB_DIR}"
# The ports this project's tests may open for SNMP peers.
PORTS = range(56450, 56500)
# SNMPv2-MIB names sysUpTime and snmpTrapOID.
MIBS = "SNMPv2-MIB:SIGNET-MIB"
ENGINE_ID = "8000000001020304"
USER = "signet-nms"
AUTH_PASSPHRASE = "auth-passphrase-for-tests"
PRIV_PASSPHRASE = "priv-passphrase-for-tests"
COMMUNITY = "signet-test-community"


def need_net_snmp(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make deps-test`")
    probe = subprocess.run(
        ["snmptranslate", "-M", MIB_PATH, "-m", MIBS, "-On", "SIGNET-MIB::signetMIB"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.fail(
            "net-snmp cannot read monitoring/SIGNET-MIB.txt with the IETF modules of "
            f"{IETF_MIB_DIR} (run `make deps-test`, which installs them):\n{probe.stderr}"
        )


def free_udp_port() -> int:
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free UDP port in 56450-56499")


def write_secret(directory: Path, name: str, value: str) -> str:
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return f"file:{path}"


@dataclass
class TrapReceiver:
    port: int
    log: Path

    def lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.startswith("NOTE ")]

    def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, str]]:
        """The first `count` notifications received, each as {"how": ..., name: value}."""
        deadline = time.monotonic() + timeout
        while len(self.lines()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = self.lines()
        if count == 0:  # all received so far
            return [_decoded(line) for line in lines]
        assert len(lines) >= count, f"snmptrapd received {len(lines)} of {count}:\n{lines}"
        return [_decoded(line) for line in lines[:count]]


def _decoded(line: str) -> dict[str, str]:
    how, *varbinds = line.removeprefix("NOTE ").split("\t")
    fields = {"how": how}
    for varbind in varbinds:
        name, _, value = varbind.partition(" = ")
        fields[name] = value
    return fields


@contextmanager
def snmptrapd(tmp: Path) -> Iterator[TrapReceiver]:
    """snmptrapd on a loopback port: the v2c community, and the SNMPv3 user both for traps
    (the sender's engine ID) and for informs (snmptrapd's own), authPriv only. Each
    notification is one line: NOTE <how>\\t<name> = <value>\\t..., decoded with SIGNET-MIB."""
    need_net_snmp("snmptrapd", "snmptranslate")
    port = free_udp_port()
    (tmp / "persist").mkdir(parents=True, exist_ok=True)
    conf = tmp / "snmptrapd.conf"
    user = f'{USER} SHA-256 "{AUTH_PASSPHRASE}" AES "{PRIV_PASSPHRASE}"'
    conf.write_text(
        f"authCommunity log {COMMUNITY}\n"
        f"createUser -e 0x{ENGINE_ID} {user}\n"
        f"createUser {user}\n"
        f"authUser log {USER} priv\n"
        "format2 NOTE %P\\t%v\\n\n"
    )
    log = tmp / "snmptrapd.log"
    log.touch()
    process = subprocess.Popen(
        [
            "snmptrapd",
            "-C",
            "-c",
            str(conf),
            "-f",
            "-Lf",
            str(log),
            "-M",
            MIB_PATH,
            "-m",
            MIBS,
            f"udp:127.0.0.1:{port}",
        ],
        env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "persist")},
    )
    try:
        deadline = time.monotonic() + 10
        while "NET-SNMP version" not in log.read_text():
            assert process.poll() is None, f"snmptrapd exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"snmptrapd did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield TrapReceiver(port, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Agent:
    port: int
    log: Path

    def walk(self, oid: str = "SIGNET-MIB::signetMIB", *, v3: bool = False) -> dict[str, str]:
        """snmpwalk (or, for a scalar instance, snmpget) of `oid`, decoded with SIGNET-MIB:
        {name.instance: "TYPE: value"}."""
        if v3:
            security = ["-v3", "-l", "authPriv", "-u", USER, "-a", "SHA-256", "-A"]
            security += [AUTH_PASSPHRASE, "-x", "AES", "-X", PRIV_PASSPHRASE]
        else:
            security = ["-v2c", "-c", COMMUNITY]
        # the first request starts the agent, which may take seconds on a busy host
        command = ["snmpwalk", *security, "-M", MIB_PATH, "-m", MIBS, "-t", "30", "-r", "0"]
        done = subprocess.run(
            [*command, f"udp:127.0.0.1:{self.port}", oid],
            capture_output=True,
            text=True,
            env={**os.environ, "SNMPCONFPATH": str(self.log.parent)},
            timeout=60,
        )
        agent_log = (self.log.parent / "agent.log").read_text()
        assert done.returncode == 0, f"snmpwalk failed: {done.stderr}\n{agent_log}"
        values = {}
        for line in done.stdout.splitlines():
            name, _, value = line.partition(" = ")
            values[name.removeprefix("SIGNET-MIB::")] = value
        return values


@contextmanager
def snmpd(tmp: Path, env: dict[str, str]) -> Iterator[Agent]:
    """net-snmp's snmpd on a loopback port, serving SIGNET-MIB through `signet snmp-agent`
    (pass_persist) started with `env`; read-only to the v2c community from 127.0.0.1 and to
    the SNMPv3 user (authPriv)."""
    need_net_snmp("snmpd", "snmpwalk")
    port = free_udp_port()
    (tmp / "snmpd-persist").mkdir(exist_ok=True)
    signet = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "signet"
    if not signet.exists():
        import sys

        signet = Path(sys.executable).parent / "signet"
    base_oid = env.get("SIGNET_SNMP__BASE_OID", "1.3.6.1.4.1.32473.1")
    conf = tmp / "snmpd.conf"
    conf.write_text(
        f"agentaddress udp:127.0.0.1:{port}\n"
        f"rocommunity {COMMUNITY} 127.0.0.1\n"
        f'createUser {USER} SHA-256 "{AUTH_PASSPHRASE}" AES "{PRIV_PASSPHRASE}"\n'
        f"rouser {USER} authpriv\n"
        f"pass_persist .{base_oid} {signet} snmp-agent\n"
    )
    log = tmp / "snmpd.log"
    log.touch()
    process = subprocess.Popen(
        ["snmpd", "-f", "-C", "-c", str(conf), "-Lf", str(log), "-p", str(tmp / "snmpd.pid")],
        env={**env, "SNMP_PERSISTENT_DIR": str(tmp / "snmpd-persist")},
        # the agent's own log (pass_persist's stderr) goes where snmpd's stderr goes
        stderr=(tmp / "agent.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 15
        while "NET-SNMP version" not in log.read_text():
            assert process.poll() is None, f"snmpd exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"snmpd did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield Agent(port, log)
    finally:
        process.terminate()
        process.wait(timeout=15)
