"""Running the app under gunicorn, configured from Signet's settings."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from signet.config import Settings
from signet.errors import ServiceUnavailable


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens a control socket (for gunicornc) at one path per user,
            # $XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl: every `signet serve`
            # would bind the same one and the first to exit would remove the others'. Signet
            # does not use gunicornc, so none.
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        # Called in each worker after the fork: the PKCS#11 library opens there, lazily.
        from signet.web.app import create_app

        return create_app(self.settings)


def _record(settings: Settings, actor: str, stopped: bool) -> dict[str, Any]:
    from signet.signing import Services
    from signet.signing.admin import record_service_start, record_service_stop

    services = Services(settings)
    record = record_service_stop if stopped else record_service_start
    try:
        return {"record": record(services, actor=actor).record}
    except Exception as exc:
        return {"error": getattr(exc, "description", None) or f"{exc.__class__.__name__}: {exc}"}
    finally:
        services.database.dispose()


def _record_in_child(settings: Settings, actor: str, *, stopped: bool) -> int:
    """Record the service's start or stop and a checkpoint; return the checkpoint's record.
    In a child process: gunicorn's master must never open the PKCS#11 library, as its workers
    fork from it (the library is initialised once per process). A plain fork and a pipe: no
    semaphores, which a sandbox may not offer."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and leave without the parent's exit hooks
        os.close(read_end)
        try:
            outcome = _record(settings, actor, stopped)
        except BaseException as exc:  # whatever it was, the parent must hear of it
            outcome = {"error": f"{exc.__class__.__name__}: {exc}"}
        with os.fdopen(write_end, "w") as pipe:
            json.dump(outcome, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        outcome = json.loads(report)
    except ValueError:
        outcome = {"error": f"the recording process ended with status {status} and no report"}
    if "error" in outcome:
        what = "stop" if stopped else "start"
        raise ServiceUnavailable(
            f"cannot record the service's {what} in the audit trail: {outcome['error']}"
        )
    return int(outcome["record"])


# Read by prometheus_client when it is first imported, in each worker: the master must name
# the directory before, and never import prometheus_client itself.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_directory() -> str | None:
    """A fresh directory for prometheus_client's multiprocess mode, named in the environment
    before any worker starts (workers sum their samples from it: signet.monitoring.metrics).
    An operator's PROMETHEUS_MULTIPROC_DIR is emptied of old samples; else one is made, and
    returned to be removed at exit."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
        return None
    os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="signet-metrics-")
    return os.environ[MULTIPROCESS_DIR]


def _worker_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def record_start(settings: Settings, *, actor: str) -> int:
    """Record `service.started` and a checkpoint, once per `signet serve` (not per worker);
    return the checkpoint's record."""
    return _record_in_child(settings, actor, stopped=False)


def record_stop(settings: Settings, *, actor: str) -> int:
    """Record `service.stopped` and a checkpoint once gunicorn has ended; return the
    checkpoint's record."""
    return _record_in_child(settings, actor, stopped=True)


def tls_options(settings: Settings) -> dict[str, Any]:
    """gunicorn's TLS options from web.tls_*: none for plain HTTP. With tls_client_ca, a
    client certificate is asked for but optional (a password login needs none); OpenSSL
    refuses in the handshake one that does not chain to those CAs, and Signet verifies what
    passes again itself (signet.auth.client_certificates), revocation included."""
    web = settings.web
    if not web.tls_certificate:
        return {}
    options: dict[str, Any] = {"certfile": web.tls_certificate, "keyfile": web.tls_key}
    if web.tls_client_ca:
        options.update(ca_certs=web.tls_client_ca, cert_reqs=int(ssl.CERT_OPTIONAL))
    return options


def run_gunicorn(
    settings: Settings, *, listen: str | None = None, workers: int | None = None
) -> None:
    made = _metrics_directory()
    options = {
        "bind": listen or settings.web.listen,
        "workers": workers or settings.web.workers,
        # gthread, but a request is read before a thread takes it (signet.web.worker)
        "worker_class": "signet.web.worker.SignetWorker",
        "threads": settings.web.threads,
        "timeout": 120,
        "graceful_timeout": 20,
        "accesslog": "-" if settings.web.access_log else None,
        "errorlog": "-",
        "preload_app": False,
        "proc_name": "signet",
        "child_exit": _worker_exit,
    }
    options.update(tls_options(settings))
    shm = "/dev/shm"  # noqa: S108 - gunicorn makes an unlinked mkstemp file there
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        # Workers touch a heartbeat file on every request: keep it in memory, not on disk.
        options["worker_tmp_dir"] = shm
    try:
        _Gunicorn(settings, options).run()
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
