"""Running the app under gunicorn, configured from Signet's settings."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication

from signet.config import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Called in each worker after the fork: the PKCS#11 library opens there, lazily.
        from signet.web.app import create_app

        return create_app(self.settings)


def run_gunicorn(settings: Settings, *, listen: str | None = None,
                 workers: int | None = None) -> None:
    options = {
        "bind": listen or settings.web.listen,
        "workers": workers or settings.web.workers,
        # gthread, but a request is read before a thread takes it (signet.web.worker)
        "worker_class": "signet.web.worker.SignetWorker",
        "threads": settings.web.threads,
        "timeout": 120,
        "graceful_timeout": 20,
        "accesslog": "-",
        "errorlog": "-",
        "preload_app": False,
        "proc_name": "signet",
    }
    shm = "/dev/shm"  # noqa: S108 - gunicorn makes an unlinked mkstemp file there
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        # Workers touch a heartbeat file on every request: keep it in memory, not on disk.
        options["worker_tmp_dir"] = shm
    _Gunicorn(settings, options).run()
