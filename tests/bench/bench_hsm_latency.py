#!/usr/bin/env python3
"""`make bench`, part 3: signHash throughput against a network HSM (issue 18 §3).

Signet serves through gunicorn on the latency shim (tests/bench/README.md, "The latency
shim": SoftHSM behind a PKCS#11 module that sleeps a round trip in every HSM call), at 0, 1 and
3 ms a round trip, with 1, 4 and 16 HSM sessions per worker (`hsm.sessions`; 1 is today's
serialised session), 1 and 10 hashes a request, the SAD reused (one authorize per 100 hashes,
outside the measurement). Beside each figure, in the same run:

* `hsm-bound`: what the round trips allow — workers x sessions / (round trips a signHash
  makes x round trip), the round trips estimated as 2 per signature and at most 2 per
  request for the audit MAC (C_SignInit and C_Sign, `signet.hsm.oneshot`; one MAC per group
  commit, docs/scale.md; the SAM's other MACs are remembered per process); printed only as the
  order of magnitude it is;
* `cpu-bound`: what the node's CPUs allow — cores / (server + database CPU per request)
  measured at 0 ms with the most sessions; the goal (issue 18 §3) is ≥ 80% of it at 1 ms, B=1.

Knobs (environment): SIGNET_BENCH_SECONDS (default 4), SIGNET_BENCH_WORKERS (2),
SIGNET_BENCH_CLIENTS (default 2x16: enough connections to keep 16 sessions a worker busy),
SIGNET_BENCH_LATENCIES_MS (default 0,1,3), SIGNET_BENCH_SESSIONS (default 1,4,16)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SIGNET_BENCH_CLIENTS", "2x16")
os.environ.setdefault("SIGNET_BENCH_KEYS", "ec-p256")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_sign as base

SHIM = base.ROOT / "build/bench/libsignet-latency.so"
LATENCIES = [float(x) for x in os.environ.get("SIGNET_BENCH_LATENCIES_MS", "0,1,3").split(",")]
SESSIONS = [int(x) for x in os.environ.get("SIGNET_BENCH_SESSIONS", "1,4,16").split(",")]
KEY = "ec-p256"
# Round trips a signHash costs with a warm key cache: per signature C_SignInit and C_Sign; per
# request at most the audit MAC's two (one MAC per group commit; the SAD's MAC is remembered
# per process).
TRIPS_PER_REQUEST = {1: 2 + 2, 10: 10 * 2 + 2}


class LatencyBench(base.Bench):
    def restart(self, latency_ms: float, sessions: int) -> None:
        """gunicorn again, on the shim at this round trip with this many sessions a worker."""
        self.stop_server()
        self.env.update(
            {
                "SIGNET_HSM__MODULE": str(SHIM),
                "SIGNET_HSM__SESSIONS": str(sessions),
                "SIGNET_HSM__THREAD_SAFE": "true" if sessions > 1 else "false",
                "SIGNET_HSM__LIBRARY_ENV": json.dumps(
                    {
                        "SIGNET_LATENCY_US": str(int(latency_ms * 1000)),
                        "SOFTHSM2_CONF": self.hsm_env["SOFTHSM2_CONF"],
                    }
                ),
                "SIGNET_WEB__THREADS": str(max(4, sessions)),
            }
        )
        self.activate = lambda: None  # type: ignore[method-assign]  # activated once
        self.serve()

    def stop_server(self) -> None:
        if self.server is None:
            return
        with base.contextlib.suppress(ProcessLookupError):
            os.kill(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(timeout=30)
        except base.subprocess.TimeoutExpired:
            with base.contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=10)
        self.server = None
        self.server_log.close()

    def curve(self) -> list[dict[str, Any]]:
        self.setup()
        self.serve()  # on SoftHSM straight: activates the credential
        token = self.login()
        cred_id = self.credentials[KEY]
        cert = self.certificate(token, cred_id)
        ctx = base.multiprocessing.get_context("spawn")
        self.pool = base.concurrent.futures.ProcessPoolExecutor(base.CLIENT_PROCS, mp_context=ctx)
        for f in [self.pool.submit(base.client_ready) for _ in range(base.CLIENT_PROCS)]:
            f.result(timeout=60)
        raw = base.run_raw(self.hsm_env, cred_id, "ec")
        base.log(f"{KEY}: raw SoftHSM {raw['signs_per_s']:.0f} signs/s on the same cores")
        rows: list[dict[str, Any]] = []
        for latency in LATENCIES:
            for sessions in SESSIONS:
                self.restart(latency, sessions)
                token = self.login()
                for n in (1, 10):
                    result = self.run_api(token, cred_id, "ec", n, in_loop=False)
                    verified = self.verify(cert, "ec", result["samples"])
                    trips = TRIPS_PER_REQUEST[n] * latency / 1000
                    hsm_bound = base.WORKERS * sessions / trips * n if trips else float("inf")
                    result.update(
                        latency=latency, sessions=sessions, n=n, verified=verified,
                        hsm_bound=hsm_bound,
                    )  # fmt: skip
                    rows.append(result)
                    base.log(
                        f"{latency:g} ms, {sessions} sessions, {n} hash(es): "
                        f"{result['signs_per_s']:.0f} signs/s, p50 {result['p50']:.1f} ms, "
                        f"p99 {result['p99']:.1f} ms, server {result['srv_ms']:.2f} ms CPU/req, "
                        f"{verified} verified, {result['errors']} errors"
                    )
        return [{"raw": raw}, *rows]


def table(rows: list[dict[str, Any]], elapsed: float) -> str:
    raw = rows[0]["raw"]
    cores = os.cpu_count() or 1
    # The CPU bound: the cheapest request CPU measured (0 ms, most sessions) per request.
    best: dict[int, float] = {}
    for r in rows[1:]:
        cost = r["srv_ms"] + (r["db_ms"] or 0.0)
        if r["latency"] == 0 and cost > 0:
            best[r["n"]] = min(best.get(r["n"], cost), cost)
    head = (
        f"{'rtt ms':>6} {'sessions':>8} {'hash/req':>8} {'signs/s':>8} {'req/s':>7} "
        f"{'hsm-bound':>9} {'cpu-bound':>9} {'of cpu':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv CPU':>7} {'db CPU':>6} {'err':>4}"
    )
    lines = [head, "-" * len(head)]
    for r in rows[1:]:
        cpu_req_s = cores / best[r["n"]] * 1000 if r["n"] in best else float("nan")
        of_cpu = r["req_per_s"] / cpu_req_s if cpu_req_s == cpu_req_s else float("nan")
        hsm = "-" if r["hsm_bound"] == float("inf") else f"{r['hsm_bound']:.0f}"
        db = f"{r['db_ms']:.2f}" if r["db_ms"] is not None else "-"
        lines.append(
            f"{r['latency']:>6g} {r['sessions']:>8} {r['n']:>8} {r['signs_per_s']:>8.0f} "
            f"{r['req_per_s']:>7.0f} {hsm:>9} {cpu_req_s * r['n']:>9.0f} {of_cpu:>6.0%} "
            f"{r['p50']:>7.1f} {r['p99']:>7.1f} {r['srv_ms']:>7.2f} {db:>6} {r['errors']:>4}"
        )
    load = os.getloadavg()
    lines += [
        "",
        f"raw SoftHSM on the same cores ({base.WORKERS} procs): {raw['signs_per_s']:.0f} signs/s",
        "hsm-bound: workers x sessions / (estimated round trips a request x round trip), in "
        "signs/s; cpu-bound: cores / (server + database CPU a request at 0 ms, most sessions), "
        "in signs/s; 'of cpu': requests/s against it (goal at 1 ms, 1 hash: >= 80%).",
        f"{elapsed:.0f} s, load average now {load[0]:.2f} on {cores} cores",
    ]
    return "\n".join(lines)


def main() -> int:
    if not SHIM.exists():
        print(f"bench: {SHIM} missing (make {SHIM.relative_to(base.ROOT)})", file=sys.stderr)
        return 1

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    bench = LatencyBench()
    try:
        rows = bench.curve()
    finally:
        bench.cleanup()
    print(table(rows, time.monotonic() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
