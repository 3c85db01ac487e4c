"""`signet oauth2-clients`: register, list and remove the OAuth 2.0 authorization server's
clients (docs/oauth2.md)."""

from __future__ import annotations

import json

import click

from signet.cli.main import _actor, _fail, _services, friendly


@click.group("oauth2-clients")
def oauth2_clients() -> None:
    """OAuth 2.0 clients: the signature applications that may send users to Signet's login
    pages (their redirect URIs matched exactly)."""


@oauth2_clients.command("add")
@click.argument("name")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    required=True,
    help="Where codes may go (repeat for several); https://, or http:// on loopback.",
)
@click.option("--public", is_flag=True, help="A public client (no secret; PKCE S256 required).")
@friendly
def oauth2_clients_add(name: str, redirect_uris: tuple[str, ...], public: bool) -> None:
    """Register a client; a confidential client's secret is printed once, here only."""
    from signet.signing.oauth2_clients import add_client

    try:
        client, secret = add_client(
            _services(), name, list(redirect_uris), public=public, actor=_actor()
        )
    except ValueError as exc:
        _fail(str(exc))
        return
    click.echo(f"client_id: {client.client_id}")
    if secret is not None:
        click.echo(f"client_secret: {secret}")
        click.echo("(the secret is shown once: Signet keeps only its hash)", err=True)


@oauth2_clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def oauth2_clients_list(as_json: bool) -> None:
    """List the clients: those the settings file declares, then the registered ones."""
    from signet.signing.oauth2_clients import list_clients

    clients = list_clients(_services())
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in clients], indent=2))
        return
    click.echo(f"{'CLIENT ID':<24} {'TYPE':<12} {'FROM':<9} NAME  REDIRECT URIS")
    for c in clients:
        kind = "public" if c.public else "confidential"
        uris = " ".join(c.redirect_uris)
        click.echo(f"{c.client_id:<24} {kind:<12} {c.source:<9} {c.name}  {uris}")


@oauth2_clients.command("remove")
@click.argument("client_id")
@friendly
def oauth2_clients_remove(client_id: str) -> None:
    """Remove a client: its codes and requests are no longer accepted."""
    from signet.signing.oauth2_clients import remove_client

    try:
        removed = remove_client(_services(), client_id, actor=_actor())
    except ValueError as exc:
        _fail(str(exc))
        return
    if not removed:
        _fail(f"no OAuth 2.0 client {client_id}")
    click.echo(f"client {client_id} removed")
