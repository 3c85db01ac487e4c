"""Health of the node's dependencies: database and HSM."""

from __future__ import annotations

from typing import Any

from signet.errors import BackendError
from signet.signing.context import Services
from signet.store import StoreError


def check_health(services: Services) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    try:
        services.database.ping()
        checks["database"] = {"status": "ok", "engine": services.database.engine.dialect.name}
    except StoreError as exc:
        checks["database"] = {"status": "down", "reason": str(exc)}
    # A real round trip to the token, bounded, which also heals this process's session when
    # the token has come back: "ok" means this process can sign now.
    try:
        checks["hsm"] = {"status": "ok", **services.hsm.check()}
    except BackendError as exc:  # the HSM's HsmError
        checks["hsm"] = {
            "status": "down",
            "token": services.hsm.settings.token_label,
            "reason": str(exc),
        }
    down = [name for name, check in checks.items() if check["status"] != "ok"]
    return {"status": "down" if down else "ok", "down": down, "checks": checks}
