#!/usr/bin/env python3
"""`make bench`, part 4: two nodes, one cluster (issue 18 §5).

Two Signet nodes (`signet serve`, 2 gunicorn workers each) on one PostgreSQL database and one
SoftHSM token — through the latency shim at 1 ms a round trip with 4 HSM sessions a worker by
default, the network HSM of bench_hsm_latency.py — behind nginx configured by the
`signet_balancer` role's own template (round robin, passive health checks, no retry of a POST
a node has seen). In the same run, EC P-256, one hash a request:

* one node, direct (gunicorn's port);
* one node through nginx (an upstream of one);
* two nodes through nginx;

each with the SAD reused (one authorize per 100 hashes) and with authorize + signHash per
request. Then the two nodes again with node A killed (SIGKILL to its master and workers) half
way: the rate before and after, and what the clients got (502 from nginx for the requests A
held; nothing else). At the end the database is checked — no hash signed twice, no SAD spent
beyond its count — and `signet audit verify` checks the trail against both nodes'
checkpoints.

On one 2-core machine the two nodes share the same cores (and the database, the balancer and
the clients run there too): the figure shows that the cluster is correct and what the balancer
costs, not how it scales out. Scale-out needs a machine per node (docs/scale.md).

Needs PostgreSQL (SIGNET_BENCH_DB, or the test cluster of tests/services/postgres): SQLite is
one file on one machine, no cluster. Knobs: SIGNET_BENCH_SECONDS (default 4),
SIGNET_BENCH_CLIENTS (default 2x8), SIGNET_BENCH_LATENCY_MS (default 1; "none": SoftHSM
directly, one serialised session a worker), SIGNET_BENCH_SESSIONS (default 4),
SIGNET_BENCH_PORTS (a range such as 57100-57149 to take ports from; default any free port)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("SIGNET_BENCH_CLIENTS", "2x8")
os.environ.setdefault("SIGNET_BENCH_KEYS", "ec-p256")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bench_sign as base

from tests.cluster import Node, balancer, stop

SHIM = base.ROOT / "build/bench/libsignet-latency.so"
KEY = "ec-p256"
WORKERS = 2
LATENCY = os.environ.get("SIGNET_BENCH_LATENCY_MS", "1").strip()
SESSIONS = int(os.environ.get("SIGNET_BENCH_SESSIONS", "4"))


def _port_picker() -> Any:
    spec = os.environ.get("SIGNET_BENCH_PORTS", "").strip()
    if not spec:
        return base.free_port
    low, _, high = spec.partition("-")
    taken: set[int] = set()

    def pick() -> int:
        import socket

        for port in range(int(low), int(high) + 1):
            if port in taken:
                continue
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            taken.add(port)
            return port
        raise SystemExit(f"SIGNET_BENCH_PORTS: no free port in {spec}")

    return pick


base.free_port = _port_picker()


class ClusterBench(base.Bench):
    def __init__(self) -> None:
        super().__init__()
        self.node_b: Node | None = None
        self.measured_pids: list[int] = []

    def shim_env(self) -> None:
        if LATENCY.lower() == "none":
            return
        if not SHIM.exists():
            raise SystemExit(f"bench: {SHIM} missing (make {SHIM.relative_to(base.ROOT)})")
        self.env.update(
            {
                "SIGNET_HSM__MODULE": str(SHIM),
                "SIGNET_HSM__SESSIONS": str(SESSIONS),
                "SIGNET_HSM__THREAD_SAFE": "true" if SESSIONS > 1 else "false",
                "SIGNET_HSM__LIBRARY_ENV": json.dumps(
                    {
                        "SIGNET_LATENCY_US": str(int(float(LATENCY) * 1000)),
                        "SOFTHSM2_CONF": self.hsm_env["SOFTHSM2_CONF"],
                    }
                ),
                "SIGNET_WEB__THREADS": str(max(4, SESSIONS)),
            }
        )

    def server_pids(self) -> tuple[list[int], list[int]]:
        """Node A's workers, node B's while it serves, nginx's processes while measured."""
        workers, backends = super().server_pids()
        if self.node_b is not None and self.node_b.process.poll() is None:
            workers += base.children(self.node_b.process.pid)
        return workers + self.measured_pids, backends

    def measure(self, label: str, port: int, token: str, cred: str) -> list[dict[str, Any]]:
        rows = []
        self.port = port
        for in_loop in (False, True):
            result = self.run_api(token, cred, "ec", 1, in_loop)
            result.update(config=label, path="auth+sign" if in_loop else "SAD reused")
            result["verified"] = self.verify(self.cert, "ec", result["samples"])
            rows.append(result)
            base.log(
                f"{label}, {result['path']}: {result['req_per_s']:.0f} req/s, p50 "
                f"{result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, {result['errors']} errors"
                + (f" e.g. {_sample(result)}" if result["errors"] else "")
            )
        return rows

    def kill_run(self, port: int, token: str, cred: str, node_a: int) -> dict[str, Any]:
        """Two nodes through nginx, SAD reused; node A killed half way through."""
        assert self.server is not None
        victim = self.server
        done = threading.Event()

        def kill() -> None:
            time.sleep(base.WARMUP + 0.3 + base.SECONDS / 2)
            os.killpg(victim.pid, signal.SIGKILL)
            done.set()

        killer = threading.Thread(target=kill, daemon=True)
        killer.start()
        self.port = port
        result = self.run_api(token, cred, "ec", 1, in_loop=False)
        killer.join(timeout=60)
        victim.wait(timeout=30)
        base.log(
            f"two nodes, A killed half way: {result['req_per_s']:.0f} req/s over the run, "
            f"{result['errors']} errors" + (f" e.g. {_sample(result)}" if result["errors"] else "")
        )
        # The survivor serves: a short run after the kill.
        after = self.run_api(token, cred, "ec", 1, in_loop=False)
        result["after"] = after
        result["verified"] = self.verify(self.cert, "ec", result["samples"] + after["samples"])
        base.log(
            f"after the kill (node B alone behind nginx): {after['req_per_s']:.0f} req/s, "
            f"{after['errors']} errors"
        )
        return result

    def checks(self, checkpoint_files: list[Path]) -> list[str]:
        """No hash signed twice, no SAD over its count; the audit trail verifies."""
        import psycopg

        assert self.pg_admin and self.pg_db
        url = self.pg_admin.rsplit("/", 1)[0] + "/" + self.pg_db
        with psycopg.connect(url, connect_timeout=5) as conn:
            created = conn.execute(
                "SELECT details FROM audit_records WHERE event = 'signature.created'"
            ).fetchall()
            sads = conn.execute("SELECT num_signatures, remaining, spent FROM sads").fetchall()
        signed = Counter(h for (details,) in created for h in json.loads(details)["hashes"])
        twice = sum(1 for n in signed.values() if n > 1)
        over = 0
        for num, remaining, spent in sads:
            markers = spent.splitlines()
            if len(markers) != len(set(markers)) or len(markers) + remaining != num:
                over += 1
        both = self.dir / "checkpoints-all.jsonl"
        both.write_text("".join(p.read_text() for p in checkpoint_files if p.exists()))
        verify = subprocess.run(
            [base.SIGNET, "audit", "verify", "--checkpoints", str(both)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        verdict = (verify.stdout + verify.stderr).strip().splitlines()
        return [
            f"hashes signed: {sum(signed.values())}, signed more than once: {twice}",
            f"SADs: {len(sads)}, spent beyond their count or a hash twice: {over}",
            f"signet audit verify (exit {verify.returncode}): {verdict[-1] if verdict else ''}",
        ]

    def run_cluster(self) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        self.load_at_start = os.getloadavg()[0]
        self.setup()
        if not self.pg_db:
            raise SystemExit(
                "bench_cluster: needs PostgreSQL (SIGNET_BENCH_DB=postgresql://..., or "
                "tests/services/postgres start); a cluster cannot share SQLite"
            )
        self.shim_env()
        checkpoints = [self.dir / "checkpoints-A.jsonl", self.dir / "checkpoints-B.jsonl"]
        self.env["SIGNET_AUDIT__CHECKPOINT_FILE"] = str(checkpoints[0])
        self.serve()  # node A; activates the credential
        node_a = self.port
        env_b = {**self.env, "SIGNET_AUDIT__CHECKPOINT_FILE": str(checkpoints[1])}
        self.node_b = Node("B", base.free_port(), WORKERS, env_b, self.dir / "node-B.log")
        self.node_b.wait_healthy()
        base.log(f"node B serves on 127.0.0.1:{self.node_b.port}")
        token = self.login()
        cred = self.credentials[KEY]
        self.cert = self.certificate(token, cred)
        ctx = base.multiprocessing.get_context("spawn")
        self.pool = base.concurrent.futures.ProcessPoolExecutor(base.CLIENT_PROCS, mp_context=ctx)
        for f in [self.pool.submit(base.client_ready) for _ in range(base.CLIENT_PROCS)]:
            f.result(timeout=60)
        workers = os.cpu_count() or 1
        rows = self.measure("one node, direct", node_a, token, cred)
        one, two = base.free_port(), base.free_port()
        with balancer(one, [node_a], self.dir / "nginx-one", workers) as lb:
            self.measured_pids = [lb.pid, *base.children(lb.pid)]
            rows += self.measure("one node, nginx", one, token, cred)
        with balancer(two, [node_a, self.node_b.port], self.dir / "nginx-two", workers) as lb:
            self.measured_pids = [lb.pid, *base.children(lb.pid)]
            rows += self.measure("two nodes, nginx", two, token, cred)
            killed = self.kill_run(two, token, cred, node_a)
            self.measured_pids = []
        self.node_b.stop()
        return rows, killed, self.checks(checkpoints)

    def cleanup(self) -> None:
        if self.node_b is not None:
            stop(self.node_b.process, signal.SIGTERM)
        super().cleanup()


def _sample(result: dict[str, Any]) -> str:
    """The first error, on one line (nginx's 502 page is HTML)."""
    return " ".join(str(result["error_samples"][0]).split())[:100] if result["errors"] else ""


def table(
    rows: list[dict[str, Any]], killed: dict[str, Any], checks: list[str], bench: ClusterBench
) -> str:
    head = (
        f"{'configuration':<18} {'path':<11} {'req/s':>6} {'vs direct':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'srv+lb CPU':>10} {'db CPU':>6} {'err':>4}"
    )
    lines = [head, "-" * len(head)]
    direct = {r["path"]: r["req_per_s"] for r in rows if r["config"] == "one node, direct"}
    for r in rows:
        db = f"{r['db_ms']:.2f}" if r["db_ms"] is not None else "-"
        lines.append(
            f"{r['config']:<18} {r['path']:<11} {r['req_per_s']:>6.0f} "
            f"{r['req_per_s'] / max(direct[r['path']], 1e-9):>9.0%} {r['p50']:>7.1f} "
            f"{r['p99']:>7.1f} {r['srv_ms']:>10.2f} {db:>6} {r['errors']:>4}"
        )
    after = killed["after"]
    hsm = (
        "SoftHSM directly, one session a worker"
        if LATENCY.lower() == "none"
        else f"latency shim at {LATENCY} ms a round trip, {SESSIONS} sessions a worker"
    )
    load = os.getloadavg()
    return "\n".join(
        [
            "",
            f"Signet cluster benchmark: EC P-256, 1 hash a request; nodes of {WORKERS} gunicorn "
            f"workers; HSM: {hsm}; {base.CLIENT_PROCS}x{base.CLIENT_THREADS} client "
            f"connections; {base.SECONDS:g} s a figure. Database: {bench.db_label}.",
            f"{os.cpu_count()} CPUs shared by both nodes, nginx, PostgreSQL and the clients: "
            "this shows correctness and the balancer's cost, not scale-out. Load average "
            f"{bench.load_at_start:.2f} at start, {load[0]:.2f} at end.",
            "srv+lb CPU: ms of CPU a request in the nodes' workers and nginx; db CPU: in the "
            "PostgreSQL backends.",
            "",
            *lines,
            "",
            f"node A killed half way (two nodes, SAD reused): {killed['req_per_s']:.0f} req/s "
            f"over the run, {killed['errors']} failed requests"
            + (f" (e.g. {_sample(killed)})" if killed["errors"] else "")
            + f"; then node B alone: {after['req_per_s']:.0f} req/s, {after['errors']} errors; "
            f"{killed['verified']} sampled signatures verified",
            *checks,
            "",
        ]
    )


def main() -> int:
    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    bench = ClusterBench()
    try:
        rows, killed, checks = bench.run_cluster()
    finally:
        bench.cleanup()
    print(table(rows, killed, checks, bench), flush=True)
    print(f"bench_cluster took {time.monotonic() - started:.0f} s", flush=True)
    return 0 if all(": 0" in c for c in checks[:2]) and "intact" in checks[2] else 1


if __name__ == "__main__":
    sys.exit(main())
