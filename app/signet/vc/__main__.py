"""`signet-vc`: ``configure`` writes the user's account into the virtual card's configuration;
``agent`` runs the per-user agent in the foreground (its socket under
$XDG_RUNTIME_DIR/signet-vc/), showing each signature it forwards on standard output and asking
the user (askpass command or terminal) for passwords and second factors; ``status`` lists the
agent's logins and ``logout`` ends them all."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from signet.client.csc import CscError, service_base
from signet.vc import agent as agent_module
from signet.vc.agent import Agent, serve, socket_path
from signet.vc.config import config_path, load_accounts
from signet.vc.prompt import Prompter, default_notifier


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


def configure(
    server: str,
    user: str,
    ca_file: str | None,
    agent: bool,
    path: Path,
    client_cert: str | None = None,
    client_key: str | None = None,
    device_client: str | None = None,
) -> str:
    """Add the account (or replace the one with the same server and user) and rewrite the
    file; the other accounts are kept."""
    service_base(server)  # an http(s) URL, or CscError
    kept = [a for a in load_accounts(path) if (a.server, a.user) != (server, user)]
    lines = []
    for account in kept:
        lines.append("[[account]]")
        lines.append(f"server = {_toml_string(account.server)}")
        lines.append(f"user = {_toml_string(account.user)}")
        for key in ("ca_file", "label", "askpass", "client_cert", "client_key", "device_client"):
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
    if device_client:
        lines.append(f"device_client = {_toml_string(device_client)}")
    for key, value in (("client_cert", client_cert), ("client_key", client_key)):
        if value:
            if not Path(value).is_file():
                raise OSError(f"{value}: no such file (--{key.replace('_', '-')})")
            lines.append(f"{key} = {_toml_string(str(Path(value).resolve()))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return f"{user} at {server}: written to {path} ({len(kept) + 1} account(s))"


def run_agent(args: argparse.Namespace) -> int:
    notify = None if args.no_notify else (args.notify or default_notifier())
    prompter = Prompter(args.askpass or os.environ.get("SIGNET_VC_ASKPASS"), notify=notify)
    if not prompter.can_ask:  # a desktop session's graphical askpass, as OpenSSH uses it
        prompter.askpass = os.environ.get("SSH_ASKPASS") or None
    agent = Agent(
        prompter=prompter,
        lifetime=args.lifetime,
        idle=args.idle,
        confirm=args.confirm,
    )
    activated = os.environ.get("LISTEN_PID") == str(os.getpid())
    server = serve(agent=agent)
    stop = threading.Event()

    def reap() -> None:  # logins end on time even when nobody calls
        while not stop.wait(min(30.0, args.idle / 4, args.lifetime / 4)):
            agent.expire()

    threading.Thread(target=reap, daemon=True).start()
    # systemctl stop: end the logins (their tokens revoked at the service) before leaving
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    )
    asks = args.askpass or ("the terminal" if agent.prompter.terminal else "nothing (cannot ask)")
    where = server.server_address or socket_path()
    print(f"signet-vc agent: listening on {where}; asks through {asks}", flush=True)
    agent_module.notify_ready()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        agent.logout_all("the agent stopped")
        if not activated:  # systemd owns a socket it handed over
            socket_path().unlink(missing_ok=True)
    return 0


def run_command(op: str) -> int:
    try:
        answer = agent_module.command(op)
    except CscError as exc:
        print(f"signet-vc: {exc.description}", file=sys.stderr)
        return 1
    if op == "logout":
        print(f"signet-vc: {answer} login(s) ended")
        return 0
    if not answer:
        print("signet-vc: the agent holds no login")
    for login in answer:
        print(
            f"{login['user']} at {login['server']} by {login['method']}: "
            f"{login['age']} s old, idle {login['idle']} s, ends in {login['ends_in']} s"
        )
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if not 1 <= value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text}: between 1 s and a week")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="signet-vc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("configure", help="add a Signet account to the virtual card")
    setup.add_argument("--server", required=True, help="the Signet service's URL")
    setup.add_argument("--user", required=True, help="your Signet user name")
    setup.add_argument("--ca-file", help="trust this CA bundle for the service")
    setup.add_argument("--agent", action="store_true", help="log in through signet-vc agent")
    setup.add_argument("--client-cert", help="log in by this TLS client certificate (PEM)")
    setup.add_argument("--client-key", help="its private key (PEM), if not in the same file")
    setup.add_argument(
        "--device-client",
        metavar="CLIENT_ID",
        help="log in in the browser (OAuth 2.0 device flow) as this public client of the "
        "service; implies --agent",
    )
    run = commands.add_parser("agent", help="run the per-user agent in the foreground")
    run.add_argument(
        "--askpass",
        help="a command that asks the user (as ssh-askpass: the prompt as its argument, the "
        "answer on its first output line); default: $SIGNET_VC_ASKPASS, else the agent's "
        "terminal, else $SSH_ASKPASS",
    )
    run.add_argument(
        "--notify", help="a notify-send-like command told of each signature (default notify-send)"
    )
    run.add_argument("--no-notify", action="store_true", help="no desktop notifications")
    run.add_argument(
        "--lifetime",
        type=_seconds,
        default=agent_module.LIFETIME,
        help="seconds a login lasts (default 28800)",
    )
    run.add_argument(
        "--idle",
        type=_seconds,
        default=agent_module.IDLE,
        help="seconds unused after which a login ends (default 3600)",
    )
    run.add_argument(
        "--confirm",
        action="store_true",
        help="ask a yes before signatures that need no second factor too",
    )
    commands.add_parser("status", help="the running agent's logins")
    commands.add_parser("logout", help="end every login the running agent holds")
    args = parser.parse_args(argv)
    if args.command == "agent":
        return run_agent(args)
    if args.command in ("status", "logout"):
        return run_command(args.command)
    try:
        print(
            configure(
                args.server,
                args.user,
                args.ca_file,
                args.agent,
                config_path(),
                args.client_cert,
                args.client_key,
                args.device_client,
            )
        )
    except (CscError, OSError) as exc:
        print(f"signet-vc: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
