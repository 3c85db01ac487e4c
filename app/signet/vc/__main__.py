"""`signet-vc`: ``configure`` writes the user's account into the virtual card's configuration;
``agent`` runs the per-user agent in the foreground (its socket under
$XDG_RUNTIME_DIR/signet-vc/), showing each signature it forwards on standard output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from signet.client.csc import CscError, service_base
from signet.vc.agent import serve, socket_path
from signet.vc.config import config_path, load_accounts


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


def configure(server: str, user: str, ca_file: str | None, agent: bool, path: Path) -> str:
    """Add the account (or replace the one with the same server and user) and rewrite the
    file; the other accounts are kept."""
    service_base(server)  # an http(s) URL, or CscError
    kept = [a for a in load_accounts(path) if (a.server, a.user) != (server, user)]
    lines = []
    for account in kept:
        lines.append("[[account]]")
        lines.append(f"server = {_toml_string(account.server)}")
        lines.append(f"user = {_toml_string(account.user)}")
        for key in ("ca_file", "label", "askpass"):
            value = getattr(account, key)
            if value:
                lines.append(f"{key} = {_toml_string(value)}")
        if not account.context_login:
            lines.append("context_login = false")
        if account.agent:
            lines.append("agent = true")
        lines.append("")
    lines += ["[[account]]", f"server = {_toml_string(server)}", f"user = {_toml_string(user)}"]
    if ca_file:
        lines.append(f"ca_file = {_toml_string(str(Path(ca_file).resolve()))}")
    if agent:
        lines.append("agent = true")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return f"{user} at {server}: written to {path} ({len(kept) + 1} account(s))"


def run_agent() -> int:
    server = serve()
    print(f"signet-vc agent: listening on {socket_path()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        socket_path().unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="signet-vc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("configure", help="add a Signet account to the virtual card")
    setup.add_argument("--server", required=True, help="the Signet service's URL")
    setup.add_argument("--user", required=True, help="your Signet user name")
    setup.add_argument("--ca-file", help="trust this CA bundle for the service")
    setup.add_argument("--agent", action="store_true", help="log in through signet-vc agent")
    commands.add_parser("agent", help="run the per-user agent in the foreground")
    args = parser.parse_args(argv)
    if args.command == "agent":
        return run_agent()
    try:
        print(configure(args.server, args.user, args.ca_file, args.agent, config_path()))
    except (CscError, OSError) as exc:
        print(f"signet-vc: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
