"""`followup addressbook`: the address book sources and what was read from them."""

from __future__ import annotations

import json

import click

from agent.cli.app import App, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON list of objects, one per source.")
@click.option("--sync", "sync_now", is_flag=True,
              help="Read the address books now (a scan also does), without the mail.")
@pass_app
def addressbook(app: App, as_json: bool, sync_now: bool) -> None:
    """Address book sources with counts: cards, merged, phones, birthdays, warnings.

    Sources are the [[addressbook]] entries of the config (a vdir, a .vcf file or CardDAV);
    every `followup scan` reads them. `merged` counts addresses a card joined to the
    contact of another address on it.
    """
    from agent import cardsync, output, service

    config = app.config
    if sync_now:
        with service.working(config) as store:
            result = cardsync.sync(config, store, app.now())
        for source in result.sources:
            click.echo(source.line(), err=True)
    with service.open_store(config) as store:
        records = store.cards.sources()
    if as_json:
        click.echo(json.dumps(output.addressbook_records(config, records), ensure_ascii=False,
                              indent=2))
    else:
        click.echo(output.addressbook_text(config, records))
