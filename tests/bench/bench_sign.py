#!/usr/bin/env python3
"""`make bench`: signing throughput and latency of Signet's CSC API against the raw HSM.

For RSA-2048, RSA-3072 and EC P-256 it measures, in one run:

* raw SoftHSM signs/s: python-pkcs11 straight on the same key, in as many spawned processes as
  gunicorn workers, each with its own library and one logged-in session (CKM_RSA_PKCS over a
  DigestInfo-prefixed SHA-256 hash, CKM_ECDSA over the hash);
* API signHash signs/s through a real gunicorn serving Signet, with 1 and 10 hashes a request,
  with one authorize for every 100 hashes, outside the request's latency ("SAD reused": a
  SAD binds its hashes exactly, each signs once) and with authorize + signHash per request
  ("authorize in loop", PIN credential); ratio to raw, p50 and p99 latency per request, and the
  CPU the gunicorn workers and the database backends spent per request.

Everything is set up in a temporary directory (SoftHSM token, database, mail) and torn down at
the end. Database: $SIGNET_BENCH_DB = "sqlite" forces SQLite; a PostgreSQL URL names a server
on which a fresh database is created and dropped; unset, the test cluster of
tests/services/postgres is used when it answers, else SQLite. Other knobs (environment):
SIGNET_BENCH_SECONDS (measured seconds per figure, default 4), SIGNET_BENCH_WORKERS (gunicorn
workers = raw processes, default 2), SIGNET_BENCH_CLIENTS ("PROCSxTHREADS", default 2x2),
SIGNET_BENCH_KEYS (comma list, default rsa-2048,rsa-3072,ec-p256)."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_csc  # beside this file, which runs as a script

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SIGNET = str(VENV_BIN / "signet") if (VENV_BIN / "signet").exists() else "signet"
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "bench"
SO_PIN, USER_PIN = "12345678", "123456"
USERNAME, PASSWORD, CRED_PIN = "bench", "bench password", "975310"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
SIGN_ALGO = {"rsa": "1.2.840.113549.1.1.11", "ec": "1.2.840.10045.4.3.2"}
# DER DigestInfo prefix of a SHA-256 hash (RFC 8017, 9.2 note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
MAX_SAD = 10_000_000
BOUND_HASHES = 100  # hashes a SAD binds in the 'SAD reused' rows

SECONDS = float(os.environ.get("SIGNET_BENCH_SECONDS", "4"))
WARMUP = 0.5
WORKERS = int(os.environ.get("SIGNET_BENCH_WORKERS", "2"))
_procs, _, _threads = os.environ.get("SIGNET_BENCH_CLIENTS", "2x2").partition("x")
CLIENT_PROCS, CLIENT_THREADS = int(_procs), int(_threads or 1)
KEYS = [
    k.strip()
    for k in os.environ.get("SIGNET_BENCH_KEYS", "rsa-2048,rsa-3072,ec-p256").split(",")
    if k.strip()
]
MAX_REQUESTS_PER_THREAD = 200_000
MAX_ERRORS_PER_THREAD = 20
GOALS = {1: 0.50, 10: 0.85}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- raw SoftHSM (runs in spawned processes) ------------------------------------------------
def raw_worker(
    env: dict[str, str], key_label: str, kind: str, ready: Any, warm: float, seconds: float
) -> dict[str, Any]:
    """Open the library in this process, log in once, wait for the other processes at the
    `ready` barrier (however long spawning and logging in took on a loaded host), then sign
    in a loop; count the window."""
    os.environ.update(env)
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass

    from signet.hsm import retry_opening

    lib = pkcs11.lib(MODULE)
    # The other raw process logs in meanwhile: retried as signet.hsm does (SoftHSM's race).
    session = retry_opening(lambda: lib.get_token(token_label=TOKEN_LABEL).open(user_pin=USER_PIN))
    with session:
        key: Any = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
        digests = [hashlib.sha256(os.urandom(16)).digest() for _ in range(16)]
        if kind == "rsa":
            mechanism = Mechanism.RSA_PKCS
            data = [SHA256_DIGEST_INFO + d for d in digests]
        else:
            mechanism = Mechanism.ECDSA
            data = digests
        key.sign(data[0], mechanism=mechanism)  # warm the key object
        ready.wait()
        t0 = time.perf_counter()
        begin, end = t0 + warm, t0 + warm + seconds
        count, i, cpu0 = 0, 0, None
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            if cpu0 is None and now >= begin:
                cpu0, count = time.process_time(), 0
            key.sign(data[i & 15], mechanism=mechanism)
            i += 1
            count += 1
        cpu = time.process_time() - (cpu0 or 0.0)
    return {"count": count, "cpu": cpu}


def run_raw(env: dict[str, str], key_label: str, kind: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with (
        ctx.Manager() as manager,
        concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx) as pool,
    ):
        ready = manager.Barrier(WORKERS, timeout=120)
        futures = [
            pool.submit(raw_worker, env, key_label, kind, ready, WARMUP, SECONDS)
            for _ in range(WORKERS)
        ]
        results = [f.result(timeout=SECONDS + 180) for f in futures]
    total = sum(r["count"] for r in results)
    cpu = sum(r["cpu"] for r in results)
    return {
        "signs_per_s": total / SECONDS,
        "per_process": [round(r["count"] / SECONDS) for r in results],
        "cores": cpu / SECONDS,
        "cpu_ms_per_sign": cpu / max(total, 1) * 1000,
    }


# -- API client (runs in spawned processes, several threads each) ---------------------------
class Api:
    """A tiny JSON client over http.client, one kept-alive connection per thread."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(
        self,
        method: str,
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        body = json.dumps(payload or {}).encode()
        hdrs = {"Content-Type": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        try:
            self.conn.request("POST", f"/csc/v2/{method}", body, hdrs)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        if resp.will_close:
            self.conn.close()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data[:200].decode(errors="replace")

    def close(self) -> None:
        self.conn.close()


def _fresh_hashes(n: int) -> list[str]:
    return [base64.b64encode(hashlib.sha256(os.urandom(16)).digest()).decode() for _ in range(n)]


def authorize(api: Api, cred_id: str, hashes: list[str], num: int) -> tuple[int, Any]:
    return api.post(
        "credentials/authorize",
        {
            "credentialID": cred_id,
            "numSignatures": num,
            "hashes": hashes,
            "hashAlgorithmOID": SHA256_OID,
            "authData": [{"id": "PIN", "value": CRED_PIN}],
        },
    )


def sign_hash(api: Api, cred_id: str, sad: str, hashes: list[str], algo: str) -> tuple[int, Any]:
    return api.post(
        "signatures/signHash",
        {
            "credentialID": cred_id,
            "SAD": sad,
            "hashes": hashes,
            "hashAlgorithmOID": SHA256_OID,
            "signAlgo": algo,
        },
    )


@dataclass
class ThreadResult:
    latencies: list[float] = field(default_factory=list)  # whole request (or auth+sign)
    auth_latencies: list[float] = field(default_factory=list)
    signatures: int = 0
    errors: list[str] = field(default_factory=list)
    samples: list[tuple[str, str]] = field(default_factory=list)
    done: int = 0  # requests answered, warm-up and overrun included


Grant = tuple[str, list[str]]  # a SAD and the hashes it is bound to


def client_thread(
    port: int,
    token: str,
    cred_id: str,
    algo: str,
    n: int,
    grant: Grant | None,
    t0: float,
    warm: float,
    seconds: float,
    out: ThreadResult,
) -> None:
    """With a grant, sign its SAD's hashes, n a request, each once (a SAD binds its hashes
    exactly); a spent SAD is replaced by a fresh one for BOUND_HASHES new hashes, outside the
    request's latency. Without a grant, authorize before each signHash."""
    api = Api(port, token)
    begin, end = t0 + warm, t0 + warm + seconds
    sad, bound = grant if grant else (None, [])
    position = 0
    try:
        while time.perf_counter() < t0:
            time.sleep(0.0005)
        while len(out.latencies) < MAX_REQUESTS_PER_THREAD:
            started = time.perf_counter()
            if started >= end or len(out.errors) >= MAX_ERRORS_PER_THREAD:
                break
            auth_time = None
            try:
                if n == 0:  # the HTTP floor: an answer that needs no database and no HSM
                    status, answer = api.post("info", {})
                    out.done += 1
                    if status != 200:
                        out.errors.append(f"info {status}: {answer}")
                    elif started >= begin and (finished := time.perf_counter()) <= end:
                        out.latencies.append(finished - started)
                    continue
                if grant is None:
                    hashes = _fresh_hashes(n)
                    status, answer = authorize(api, cred_id, hashes, n)
                    if status != 200:
                        out.errors.append(f"authorize {status}: {answer}")
                        continue
                    auth_time = time.perf_counter() - started
                    sad = answer["SAD"]
                else:
                    if position + n > len(bound):
                        bound, position = _fresh_hashes(BOUND_HASHES), 0
                        status, answer = authorize(api, cred_id, bound, BOUND_HASHES)
                        if status != 200:
                            out.errors.append(f"authorize {status}: {answer}")
                            continue
                        sad, started = answer["SAD"], time.perf_counter()
                    hashes = bound[position : position + n]
                    position += n
                assert sad is not None
                status, answer = sign_hash(api, cred_id, sad, hashes, algo)
            except (OSError, http.client.HTTPException) as exc:
                out.errors.append(f"{exc.__class__.__name__}: {exc}")
                continue
            finished = time.perf_counter()
            out.done += 1
            if status != 200 or len(answer.get("signatures", ())) != n:
                out.errors.append(f"signHash {status}: {answer}")
                continue
            if len(out.samples) < 2:
                out.samples.append((hashes[0], answer["signatures"][0]))
            if started >= begin and finished <= end:
                out.latencies.append(finished - started)
                if auth_time is not None:
                    out.auth_latencies.append(auth_time)
                out.signatures += n
    finally:
        api.close()


def api_client(
    port: int,
    token: str,
    cred_id: str,
    algo: str,
    n: int,
    grants: list[Grant | None],
    start_at: float,
    warm: float,
    seconds: float,
) -> dict[str, Any]:
    t0 = time.perf_counter() + (start_at - time.time())
    results = [ThreadResult() for _ in grants]
    workers = [
        threading.Thread(
            target=client_thread,
            daemon=True,
            args=(port, token, cred_id, algo, n, grant, t0, warm, seconds, r),
        )
        for grant, r in zip(grants, results, strict=True)
    ]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=warm + seconds + 120)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "latencies": [x for r in results for x in r.latencies],
        "auth_latencies": [x for r in results for x in r.auth_latencies],
        "signatures": sum(r.signatures for r in results),
        "errors": [e for r in results for e in r.errors][:5],
        "error_count": sum(len(r.errors) for r in results),
        "samples": [s for r in results for s in r.samples],
        "done": sum(r.done for r in results),
        "cpu": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }


def client_ready() -> int:
    time.sleep(0.3)  # long enough that each pool process takes one
    return os.getpid()


# -- the orchestration ----------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU of each live process (all its threads), from /proc."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


class Bench:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="signet-bench-"))
        self.server: subprocess.Popen[bytes] | None = None
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.pg_admin: str | None = None
        self.pg_db: str | None = None
        self.db_label = ""
        self.env: dict[str, str] = {}
        self.hsm_env: dict[str, str] = {}
        self.port = 0
        self.credentials: dict[str, str] = {}
        self.load_at_start = 0.0

    # set-up ------------------------------------------------------------------------------
    def softhsm(self) -> dict[str, str]:
        (self.dir / "tokens").mkdir()
        conf = self.dir / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {self.dir / 'tokens'}\n"
            "objectstore.backend = file\nlog.level = ERROR\n"
        )
        env = {"SOFTHSM2_CONF": str(conf)}
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                TOKEN_LABEL,
                "--so-pin",
                SO_PIN,
                "--pin",
                USER_PIN,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **env},
            timeout=60,
        )
        return env

    def database(self) -> str:
        choice = os.environ.get("SIGNET_BENCH_DB", "").strip()
        if choice.lower() == "sqlite":
            return self._sqlite("SIGNET_BENCH_DB=sqlite")
        server = choice
        if not server:
            try:
                server = subprocess.run(
                    [str(ROOT / "tests/services/postgres"), "url"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                return self._sqlite("no tests/services/postgres")
        if not server.startswith("postgresql"):
            raise SystemExit(
                f"SIGNET_BENCH_DB: expected 'sqlite' or a postgresql URL, got {choice!r}"
            )
        import psycopg

        plain = server.replace("postgresql+psycopg://", "postgresql://", 1)
        where = server.rsplit("@", 1)[-1].rsplit("/", 1)[0]
        try:
            with psycopg.connect(plain, autocommit=True, connect_timeout=3) as conn:
                name = f"bench_{uuid.uuid4().hex[:10]}"
                conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
                self.pg_db = name
        except psycopg.OperationalError as exc:
            if choice:
                raise SystemExit(f"SIGNET_BENCH_DB: cannot reach {server}: {exc}")
            return self._sqlite(f"the PostgreSQL test cluster at {where} is not up")
        self.pg_admin = plain
        self.db_label = f"PostgreSQL, fresh database {self.pg_db} on {where}"
        return server.rsplit("/", 1)[0] + "/" + self.pg_db

    def _sqlite(self, why: str) -> str:
        self.db_label = f"SQLite file in the temp dir ({why})"
        return f"sqlite:///{self.dir / 'signet.db'}"

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [SIGNET, *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=300
        )
        if result.returncode != 0:
            raise SystemExit(f"signet {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
        return result.stdout

    def setup(self) -> None:
        self.hsm_env = self.softhsm()
        pin_file = self.dir / "hsm.pin"
        pin_file.write_text(USER_PIN + "\n")
        pin_file.chmod(0o600)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SIGNET_") or k.startswith("SIGNET_BENCH_")
        }
        env.update(self.hsm_env)
        env.update(
            {
                "SIGNET_DATABASE__URL": self.database(),
                "SIGNET_HSM__MODULE": MODULE,
                "SIGNET_HSM__TOKEN_LABEL": TOKEN_LABEL,
                "SIGNET_HSM__PIN_FILE": str(pin_file),
                "SIGNET_HSM__PIN_ENV": "",
                "SIGNET_NOTIFY__MAILDIR": str(self.dir / "mail"),
                "SIGNET_AUDIT__CHECKPOINT_FILE": str(self.dir / "audit-checkpoints.jsonl"),
                "SIGNET_SAM__MAX_SIGNATURES_PER_SAD": str(MAX_SAD),
                "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            }
        )
        self.env = env
        log(f"database: {self.db_label}")
        self.cli("init")
        self.cli(
            "users", "add", USERNAME, "--email", "b@x.test", "--password-stdin",
            stdin=PASSWORD + "\n",
        )  # fmt: skip
        for key in KEYS:
            out = self.cli(
                "credentials", "create", USERNAME, "--key", key, "--activation", "pin", "--policy", "basic",
            )  # fmt: skip
            self.credentials[key] = out.split()[1]
            log(f"credential {self.credentials[key]} ({key})")

    def serve(self) -> None:
        self.port = free_port()
        self.server_log = open(self.dir / "gunicorn.log", "wb")  # noqa: SIM115
        self.server = subprocess.Popen(
            [SIGNET, "serve", "--listen", f"127.0.0.1:{self.port}", "--workers", str(WORKERS)],
            env=self.env,
            stdout=self.server_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise SystemExit("gunicorn exited:\n" + self.server_tail())
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                healthy = conn.getresponse().status == 200
                conn.close()
                if healthy:
                    log(f"gunicorn ({WORKERS} workers) serves on 127.0.0.1:{self.port}")
                    self.activate()
                    return
            time.sleep(0.2)
        raise SystemExit("gunicorn did not report healthy in 60 s:\n" + self.server_tail())

    def activate(self) -> None:
        """The bench user activates her pending credentials as any signer does: `signet
        activate` with the code from her mail (the Maildir) and her own PIN."""
        import mailbox
        import re

        for key, cred_id in self.credentials.items():
            code = next(
                match.group(1)
                for message in mailbox.Maildir(str(self.dir / "mail"), create=False)
                if cred_id in (body := message.get_payload(decode=True).decode())
                and (match := re.search(r"^\s+([0-9A-Z]{5}-[0-9A-Z]{5})\s*$", body, re.M))
            )
            self.cli(
                "activate", "--server", f"http://127.0.0.1:{self.port}", "--user", USERNAME,
                "--credential", cred_id, stdin=f"{PASSWORD}\n{code}\n{CRED_PIN}\n{CRED_PIN}\n",
            )  # fmt: skip
            log(f"credential {cred_id} ({key}) activated")

    def server_tail(self) -> str:
        with contextlib.suppress(OSError):
            text = (self.dir / "gunicorn.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-30:])
        return ""

    def login(self) -> str:
        api = Api(self.port)
        basic = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        status, answer = api.post("auth/login", headers={"Authorization": f"Basic {basic}"})
        api.close()
        if status != 200:
            raise SystemExit(f"auth/login: {status} {answer}")
        return str(answer["access_token"])

    def certificate(self, token: str, cred_id: str) -> Any:
        from cryptography import x509

        api = Api(self.port, token)
        status, answer = api.post(
            "credentials/info", {"credentialID": cred_id, "certificates": "chain"}
        )
        api.close()
        if status != 200:
            raise SystemExit(f"credentials/info: {status} {answer}")
        return x509.load_der_x509_certificate(base64.b64decode(answer["cert"]["certificates"][0]))

    def server_pids(self) -> tuple[list[int], list[int]]:
        """The gunicorn workers, and the PostgreSQL backends serving the bench database."""
        assert self.server is not None
        workers = children(self.server.pid)
        backends: list[int] = []
        if self.pg_admin and self.pg_db:
            import psycopg

            with psycopg.connect(self.pg_admin, autocommit=True, connect_timeout=5) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.pg_db,)
                ).fetchall()
                backends = [int(r[0]) for r in rows]
        return workers, backends

    # measuring ---------------------------------------------------------------------------
    def run_api(self, token: str, cred_id: str, kind: str, n: int, in_loop: bool) -> dict[str, Any]:
        assert self.pool is not None
        connections = CLIENT_PROCS * CLIENT_THREADS
        grants: list[Grant | None] = [None] * connections
        if not in_loop and n:  # one authorize per client connection, outside the measurement
            api = Api(self.port, token)
            for c in range(connections):
                bound = _fresh_hashes(BOUND_HASHES)
                status, answer = authorize(api, cred_id, bound, BOUND_HASHES)
                if status != 200:
                    raise SystemExit(f"authorize: {status} {answer}")
                grants[c] = (answer["SAD"], bound)
            api.close()
        workers, backends = self.server_pids()
        cpu_before = cpu_seconds(workers + backends)
        start_at = time.time() + 0.3
        futures = [
            self.pool.submit(
                api_client, self.port, token, cred_id, SIGN_ALGO[kind], n,
                grants[p * CLIENT_THREADS : (p + 1) * CLIENT_THREADS], start_at, WARMUP, SECONDS,
            )
            for p in range(CLIENT_PROCS)
        ]  # fmt: skip
        parts = [f.result(timeout=SECONDS + 180) for f in futures]
        cpu_after = cpu_seconds(workers + backends)
        delta = {p: cpu_after[p] - cpu_before[p] for p in cpu_after if p in cpu_before}
        done = max(1, sum(p["done"] for p in parts))
        latencies = [x for p in parts for x in p["latencies"]]
        auth = [x for p in parts for x in p["auth_latencies"]]
        return {
            "signs_per_s": sum(p["signatures"] for p in parts) / SECONDS,
            "req_per_s": len(latencies) / SECONDS,
            "p50": percentile(latencies, 0.50) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "auth_p50": percentile(auth, 0.50) * 1000 if auth else None,
            "errors": sum(p["error_count"] for p in parts),
            "error_samples": [e for p in parts for e in p["errors"]][:3],
            "samples": [s for p in parts for s in p["samples"]],
            "client_cores": sum(p["cpu"] for p in parts) / (SECONDS + WARMUP),
            "client_ms": sum(p["cpu"] for p in parts) / done * 1000,
            "srv_ms": sum(delta.get(p, 0.0) for p in workers) / done * 1000,
            "split": worker_split([delta.get(p, 0.0) for p in workers]),
            "db_ms": sum(delta.get(p, 0.0) for p in backends) / done * 1000 if backends else None,
        }

    def run_peer(self) -> dict[str, Any]:
        """certomancer-csc-dummy (`peer_csc`), driven as the "SAD reused, one hash" rows: the
        same client processes and connections, one authorize a connection beforehand."""
        assert self.pool is not None
        peer = peer_csc.Peer(self.dir, free_port())
        try:
            sads = [peer.sad() for _ in range(CLIENT_PROCS * CLIENT_THREADS)]
            cpu_before = cpu_seconds([peer.process.pid])
            start_at = time.time() + 0.3
            futures = [
                self.pool.submit(
                    peer_csc.peer_client, peer.port,
                    sads[p * CLIENT_THREADS : (p + 1) * CLIENT_THREADS], start_at, WARMUP, SECONDS,
                )
                for p in range(CLIENT_PROCS)
            ]  # fmt: skip
            parts = [f.result(timeout=SECONDS + 180) for f in futures]
            cpu_after = cpu_seconds([peer.process.pid])
        finally:
            peer.stop()
        done = max(1, sum(p["done"] for p in parts))
        samples = [s for p in parts for s in p["samples"]]
        verified = self.verify(peer_csc.certificate(self.dir), "ec", samples)
        if not verified:
            raise SystemExit(f"peer: no signature came back: {parts[0]['errors']}")
        requests = sum(p["requests"] for p in parts)
        return {
            "key": "peer",
            "path": "csc-dummy, SAD reused",
            "n": "peer",
            "req_per_s": requests / SECONDS,
            "signs_per_s": requests / SECONDS,
            "srv_ms": (sum(cpu_after.values()) - sum(cpu_before.values())) / done * 1000,
            "client_ms": sum(p["cpu"] for p in parts) / done * 1000,
            "errors": sum(p["error_count"] for p in parts),
            "error_samples": [e for p in parts for e in p["errors"]][:3],
            "verified": verified,
            "done": done,
        }

    def verify(self, cert: Any, kind: str, samples: list[tuple[str, str]]) -> int:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

        key = cert.public_key()
        prehashed = utils.Prehashed(hashes.SHA256())
        for digest_b64, sig_b64 in samples:
            digest, sig = base64.b64decode(digest_b64), base64.b64decode(sig_b64)
            if kind == "rsa":
                key.verify(sig, digest, padding.PKCS1v15(), prehashed)
            else:
                key.verify(sig, digest, ec.ECDSA(prehashed))
        return len(samples)

    def run(self) -> list[dict[str, Any]]:
        self.load_at_start = os.getloadavg()[0]
        if self.load_at_start > 0.5 * (os.cpu_count() or 1):
            log(f"load average {self.load_at_start:.2f} before start: other work shares the CPUs")
        self.setup()
        self.serve()
        token = self.login()
        ctx = multiprocessing.get_context("spawn")
        self.pool = concurrent.futures.ProcessPoolExecutor(CLIENT_PROCS, mp_context=ctx)
        for f in [self.pool.submit(client_ready) for _ in range(CLIENT_PROCS)]:
            f.result(timeout=60)
        rows: list[dict[str, Any]] = []
        floor = self.run_api(token, "", "rsa", 0, in_loop=False)
        floor_ms = floor["srv_ms"] + floor["client_ms"]
        rows.append({"key": "http", "path": "floor: POST info", "n": 0, **floor})
        log(
            f"HTTP floor (info: no database, no HSM): {floor['req_per_s']:.0f} req/s, "
            f"worker {floor['srv_ms']:.2f} + client {floor['client_ms']:.2f} ms CPU a request"
        )
        peer = self.run_peer()
        rows.append(peer)
        log(
            f"peer certomancer-csc-dummy, SAD reused, 1 hash: {peer['req_per_s']:.0f} req/s, "
            f"server {peer['srv_ms']:.2f} + client {peer['client_ms']:.2f} ms CPU a request, "
            f"{peer['verified']} signatures verified, {peer['errors']} errors"
            + (f" e.g. {peer['error_samples'][0]}" if peer["errors"] else "")
        )
        for key in KEYS:
            kind = key.split("-")[0]
            cred_id = self.credentials[key]
            cert = self.certificate(token, cred_id)
            # Raw right before the API figures of the same key: a busy machine drifts.
            raw = run_raw(self.hsm_env, cred_id, kind)
            rows.append({"key": key, "path": f"raw SoftHSM, {WORKERS} procs", "n": None, **raw})
            log(
                f"{key}: raw SoftHSM {raw['signs_per_s']:.0f} signs/s (per process "
                f"{raw['per_process']}, {raw['cores']:.2f} cores busy)"
            )
            for in_loop in (False, True):
                for n in (1, 10):
                    result = self.run_api(token, cred_id, kind, n, in_loop)
                    verified = self.verify(cert, kind, result["samples"])
                    if not verified:
                        raise SystemExit(
                            f"{key}: no signature came back: {result['error_samples']}"
                        )
                    result.update(
                        key=key,
                        n=n,
                        verified=verified,
                        path="API authorize in loop" if in_loop else "API SAD reused",
                        ratio=result["signs_per_s"] / raw["signs_per_s"],
                        # What the ratio would be if CPU were the only limit: the HSM work of
                        # the request against all the CPU it cost the server and the database.
                        cpu_ratio=n
                        * raw["cpu_ms_per_sign"]
                        / max(result["srv_ms"] + (result["db_ms"] or 0.0), 1e-9),
                        # The most any API on this stack could reach here: the HSM work plus
                        # the CPU of a request that does nothing (the floor), client included.
                        ceiling=n
                        * raw["cpu_ms_per_sign"]
                        / (n * raw["cpu_ms_per_sign"] + floor_ms * (2 if in_loop else 1)),
                    )
                    rows.append(result)
                    log(
                        f"{key}: {result['path']}, {n} hash(es)/req: "
                        f"{result['signs_per_s']:.0f} signs/s ({result['ratio']:.0%} of raw), "
                        f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, "
                        f"{verified} signatures verified, {result['errors']} errors"
                        + (f" e.g. {result['error_samples'][0]}" if result["errors"] else "")
                    )
        return rows

    # tear-down ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.server is not None:
            if self.server.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.server.pid, signal.SIGTERM)  # gunicorn stops its workers
                try:
                    self.server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.server.pid, signal.SIGKILL)
                    self.server.wait(timeout=10)
            # Workers of a master that died are still in its process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server = None
            self.server_log.close()
        if self.pg_admin and self.pg_db:
            import psycopg

            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(self.pg_admin, autocommit=True, connect_timeout=5) as conn,
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')  # type: ignore[arg-type]
            self.pg_db = None
        shutil.rmtree(self.dir, ignore_errors=True)


def worker_split(cpu: list[float]) -> str:
    """Each worker's share of the workers' CPU, smallest first ("50:50" when even)."""
    total = sum(cpu) or 1.0
    return ":".join(f"{share / total:.0%}".rstrip("%") for share in sorted(cpu))


def table(rows: list[dict[str, Any]], bench: Bench, elapsed: float) -> str:
    head = (
        f"{'key':<9} {'path':<22} {'hash/req':>8} {'signs/s':>8} {'req/s':>6} {'api/raw':>7}  "
        f"{'goal':<10} {'cpu-bound':>9} {'ceiling':>7} {'p50 ms':>7} {'p99 ms':>7} {'auth p50':>8} "
        f"{'srv CPU':>8} {'db CPU':>7} {'cli CPU':>7} {'split':>7} {'err':>4}"
    )
    lines = [head, "-" * len(head)]
    previous = None
    for r in rows:
        if previous and previous != r["key"]:
            lines.append("")
        previous = r["key"]
        if r["n"] is None:
            lines.append(
                f"{r['key']:<9} {r['path']:<22} {'-':>8} {r['signs_per_s']:>8.0f} {'-':>6} "
                f"{'100%':>7}  {'':<10} {'':>9} {'':>7} {'-':>7} {'-':>7} {'-':>8} "
                f"{r['cpu_ms_per_sign']:>8.2f} {'-':>7} {'-':>7} {'-':>7} {'-':>4}"
            )
            continue
        if r["n"] == "peer":
            lines.append(
                f"{r['key']:<9} {r['path']:<22} {1:>8} {r['signs_per_s']:>8.0f} "
                f"{r['req_per_s']:>6.0f} {'-':>7}  {'':<10} {'':>9} {'':>7} {'-':>7} {'-':>7} "
                f"{'-':>8} {r['srv_ms']:>8.2f} {'-':>7} {r['client_ms']:>7.2f} {'-':>7} "
                f"{r['errors']:>4}"
            )
            continue
        if r["n"] == 0:
            lines.append(
                f"{r['key']:<9} {r['path']:<22} {'-':>8} {'-':>8} {r['req_per_s']:>6.0f} "
                f"{'-':>7}  {'':<10} {'':>9} {'':>7} {r['p50']:>7.1f} {r['p99']:>7.1f} {'-':>8} "
                f"{r['srv_ms']:>8.2f} {'-':>7} {r['client_ms']:>7.2f} {r['split']:>7} "
                f"{r['errors']:>4}"
            )
            continue
        goal = GOALS[r["n"]]
        mark = f">={goal:.0%} " + ("ok" if r["ratio"] >= goal else "MISS")
        auth = f"{r['auth_p50']:.1f}" if r["auth_p50"] is not None else "-"
        db = f"{r['db_ms']:.2f}" if r["db_ms"] is not None else "-"
        lines.append(
            f"{r['key']:<9} {r['path']:<22} {r['n']:>8} {r['signs_per_s']:>8.0f} "
            f"{r['req_per_s']:>6.0f} {r['ratio']:>7.0%}  {mark:<10} {r['cpu_ratio']:>9.0%} "
            f"{r['ceiling']:>7.0%} {r['p50']:>7.1f} "
            f"{r['p99']:>7.1f} {auth:>8} {r['srv_ms']:>8.2f} {db:>7} {r['client_ms']:>7.2f} "
            f"{r['split']:>7} {r['errors']:>4}"
        )
    load = os.getloadavg()
    return "\n".join(
        [
            "",
            f"Signet signing benchmark: {WORKERS} gunicorn gthread workers (web.threads each); raw = {WORKERS} "
            f"python-pkcs11 processes on the same key; {CLIENT_PROCS}x{CLIENT_THREADS} client "
            f"connections; {SECONDS:g} s measured per figure after {WARMUP:g} s warm-up.",
            f"Database: {bench.db_label}. {os.cpu_count()} CPUs, load average "
            f"{bench.load_at_start:.2f} at start, {load[0]:.2f} at end "
            f"(other work on the machine skews every figure). Bench took {elapsed:.0f} s.",
            "Goals: API signs/s >= 85% of raw with 10 hashes a request, >= 50% with one.",
            "p50/p99: per request (authorize + signHash in the 'authorize in loop' rows); auth "
            "p50: the authorize call alone.",
            "srv CPU / db CPU: ms of CPU per request in the gunicorn workers / the PostgreSQL "
            "backends (raw rows: per signature). cpu-bound: the api/raw ratio if CPU were the "
            "only limit (hashes x raw CPU per sign / (srv + db CPU)); it barely moves with load.",
            "cli CPU: ms of CPU per request in the bench's own client processes, on the same "
            "CPUs. floor: POST info, which touches neither database nor HSM: the CPU any request "
            "costs in gunicorn, Flask and the client. ceiling: the api/raw ratio an API doing "
            "nothing but the HSM's work would reach on this host (hashes x raw CPU per sign / "
            "(that + the floor's worker and client CPU, twice in the 'in loop' rows)).",
            "peer: certomancer-csc-dummy (PyPI; one aiohttp process, no authentication, no "
            "database, no HSM: a software P-256 key of the test PKI), driven as the 'SAD "
            "reused' rows with one hash a request: the CPU a request costs a Python CSC "
            "server that does none of Signet's work (issue 18 section 4); srv CPU is its "
            "process's.",
            "split: each gunicorn worker's share of the workers' CPU, smallest first. The "
            "workers share one listening socket and the clients keep their connections, so "
            "these do not always spread evenly; each worker signs one signature at a time "
            "(python-pkcs11 initialises the library for one thread), so an uneven split "
            "lowers signs/s.",
            "",
            *lines,
            "",
        ]
    )


def main() -> int:
    if not Path(MODULE).exists():
        print(f"bench: {MODULE} missing (apt-get install softhsm2)", file=sys.stderr)
        return 1

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    bench = Bench()
    try:
        rows = bench.run()
    finally:
        bench.cleanup()
    print(table(rows, bench, time.monotonic() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
