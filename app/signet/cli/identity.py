"""`signet identity`: the configured identity providers seen from the operator's side; for a
SAML provider, the SP metadata to hand to its IdP (docs/saml.md)."""

from __future__ import annotations

import sys

import click

from signet.config import ConfigError, ConfigMissing, load_settings
from signet.errors import BackendError, SignetError


def _fail(message: str, status: int = 1) -> None:
    click.echo(f"signet: error: {message}", err=True)
    sys.exit(status)


@click.group("identity")
def identity_group() -> None:
    """Identity providers users log in with ([identity.providers] in the settings)."""


@identity_group.command("saml-metadata")
@click.argument("provider")
@click.option(
    "--public-url",
    default=None,
    help="Signet's public base URL (default: web.base_url of the settings).",
)
@click.option("--sign", is_flag=True, help="Sign the metadata with the SP key.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write to this file."
)
def saml_metadata(provider: str, public_url: str | None, sign: bool, output: str | None) -> None:
    """Print the SP metadata of SAML provider PROVIDER: its entity ID, assertion consumer
    service and signing certificate."""
    from signet.signing import Services
    from signet.signing.saml import metadata

    try:
        services = Services(load_settings())
        url = public_url or services.settings.web.base_url
        if not url:
            _fail("no public URL: set web.base_url in the settings or pass --public-url")
            return
        xml = metadata(services, provider, url, sign=sign)
    except SignetError as exc:
        _fail(exc.description)
        return
    except ConfigMissing as exc:
        _fail(str(exc), status=2)
        return
    except (ConfigError, BackendError, OSError) as exc:
        _fail(str(exc))
        return
    if output is None:
        click.echo(xml)
    else:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(xml)
        click.echo(f"SP metadata of {provider!r} written to {output}", err=True)
