"""`signet db prune`: delete the rows of one-time values that expired more than
`database.prune_after_hours` ago (docs/security.md, "Pruning")."""

from __future__ import annotations

import click

from signet.cli.main import _actor, _services, db, friendly


@db.command("prune")
@friendly
def db_prune() -> None:
    """Delete codes, SADs, tokens, OTP challenges, spent federation assertions and Mobile ID
    requests that expired more than database.prune_after_hours ago, in batches; print the
    rows each table lost. Audited as database.pruned."""
    from signet.signing.prune import prune_expired

    services = _services()
    if services.settings.database.prune_after_hours == 0:
        click.echo("pruning is off (database.prune_after_hours = 0): nothing deleted")
        return
    counts = prune_expired(services, actor=_actor(), always_audit=True)
    width = max(len(table) for table in counts)
    for table, rows in counts.items():
        click.echo(f"{table:<{width}}  {rows}")
    click.echo(f"{'total':<{width}}  {sum(counts.values())}")
