"""A Signet cluster on one machine for the cluster test and bench: nodes (`signet serve`, each
its own process group, so a node can be killed outright) behind nginx configured by the
`signet_balancer` role's own template."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]
BALANCER_TEMPLATE = ROOT / "roles/signet_balancer/templates/nginx-balancer.conf.j2"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    return ""


def balancer_conf(listen: int, nodes: list[int], workdir: Path, worker_processes: int = 1) -> Path:
    """nginx.conf: the role's site (rendered with plain HTTP on loopback, the answering node
    named in a header) inside a minimal main context of our own paths."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(BALANCER_TEMPLATE.parent),
        trim_blocks=True,  # as Ansible's template module renders
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    site = env.get_template(BALANCER_TEMPLATE.name).render(
        ansible_managed="rendered by tests/cluster.py",
        signet_balancer_nodes=[f"127.0.0.1:{port}" for port in nodes],
        signet_balancer_max_fails=1,
        signet_balancer_fail_timeout="10s",
        signet_balancer_keepalive=32,
        signet_balancer_tls=False,
        signet_balancer_listen=f"127.0.0.1:{listen}",
        signet_balancer_server_name="_",
        signet_balancer_max_body_size="64m",
        signet_balancer_node_header=True,
        signet_balancer_backend_scheme="http",
        signet_balancer_connect_timeout="2s",
    )
    temp = workdir / "temp"
    temp.mkdir(parents=True, exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes {worker_processes};\n"
        f"pid {workdir / 'nginx.pid'};\nerror_log {workdir / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n    access_log off;\n"
        + "".join(
            f"    {kind}_temp_path {temp / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + site
        + "}\n"
    )
    return conf


@contextlib.contextmanager
def balancer(listen: int, nodes: list[int], workdir: Path, worker_processes: int = 1):  # type: ignore[no-untyped-def]
    """nginx in the foreground, balancing `listen` over the nodes' ports; stopped at exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = balancer_conf(listen, nodes, workdir, worker_processes)
    log = workdir / "error.log"
    check = subprocess.run(
        [NGINX, "-t", "-q", "-e", str(log), "-p", str(workdir), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused {conf}:\n{check.stderr}")
    process = subprocess.Popen(
        [NGINX, "-e", str(log), "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(listen, process, 30, log)
        yield process
    finally:
        stop(process, signal.SIGQUIT)


class Node:
    """`signet serve` on a loopback port, in a process group of its own."""

    def __init__(self, name: str, port: int, workers: int, env: dict[str, str], log: Path):
        self.name, self.port, self.log = name, port, log
        exe = str(Path(sys.executable).parent / "signet")
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [exe, "serve", "--listen", f"127.0.0.1:{port}", "--workers", str(workers)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, timeout: float = 90) -> None:
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node {self.name} exited:\n{_tail(self.log)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                healthy = conn.getresponse().status == 200
                conn.close()
                if healthy:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"node {self.name} not healthy in {timeout:.0f} s:\n{_tail(self.log)}")

    def processes(self) -> list[int]:
        """The master and its workers (the process group)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(stat[2]) == self.process.pid:  # process group id
                        pids.append(int(entry.name))
        return pids

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once: a node lost, nothing shut down."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        stop(self.process, signal.SIGTERM)


def stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Stop a process started in its own group; its group is killed if it does not go."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
