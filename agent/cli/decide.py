"""The user's decisions about a contact: snooze, ignore, cadence, tag, merge, split.

Decisions are written in one transaction each, without the run lock: a snooze must not wait
for a long scan to finish.
"""

from __future__ import annotations

import click

from agent.cli.app import App, pass_app


@click.command()
@click.argument("contact", metavar="ADDRESS|ID")
@click.argument("duration")
@pass_app
def snooze(app: App, contact: str, duration: str) -> None:
    """Leave a contact out until a day.

    DURATION is 30d, 6w, 3m (calendar months) or a date. The snooze lasts through
    that day in your [digest] timezone, e.g.
    `followup snooze anna@example.org 3m` or `followup snooze 12 2026-12-24`.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, until = decisions.snooze(app.config, store, contact, duration, app.now())
    click.echo(f"snoozed {target.label} until {until.isoformat()}")


@click.command()
@click.argument("contact", metavar="ADDRESS|ID")
@pass_app
def unsnooze(app: App, contact: str) -> None:
    """End a contact's snooze now."""
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, until = decisions.unsnooze(app.config, store, contact, app.now())
    if until is None:
        click.echo(f"{target.label} was not snoozed; nothing changed")
    else:
        click.echo(f"unsnoozed {target.label} (the snooze ran until {until.isoformat()})")


@click.command()
@click.argument("contact", metavar="ADDRESS|ID")
@pass_app
def ignore(app: App, contact: str) -> None:
    """Never suggest this contact again (until `followup unignore`)."""
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, already = decisions.ignore(app.config, store, contact)
    if already:
        click.echo(f"{target.label} was already ignored; nothing changed")
    else:
        click.echo(f"ignored {target.label}: no digest lines or drafts for them until "
                   "`followup unignore`")


@click.command()
@click.argument("contact", metavar="ADDRESS|ID")
@pass_app
def unignore(app: App, contact: str) -> None:
    """Clear your ignore of a contact.

    A [[policy.rule]] that ignores them still does; `followup cadence` overrides it.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, was_ignored, effective = decisions.unignore(app.config, store, contact)
    done = f"unignored {target.label}" if was_ignored else \
        f"{target.label} was not ignored by you"
    if effective.ignored:
        click.echo(f"{done}; but {effective.source} still ignores them: remove that rule, or "
                   f"give them a cadence of their own (`followup cadence {target.id} DAYS`)")
    else:
        click.echo(f"{done}; now {decisions.every(effective)}")


@click.command()
@click.argument("contact", metavar="ADDRESS|ID")
@click.argument("days", metavar="DAYS|default")
@pass_app
def cadence(app: App, contact: str, days: str) -> None:
    """Set how often to hear from a contact.

    Every DAYS days, or `default` to follow the [[policy.rule]] entries and [policy]
    cadence_days again. Your cadence for a contact wins over every rule.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, before, after = decisions.set_cadence(app.config, store, contact, days)
    click.echo(f"cadence of {target.label}: {decisions.every(after)}; "
               f"was {decisions.every(before)}")


@click.command()
@click.argument("contact", metavar="ADDRESS|ID")
@click.argument("tags", metavar="TAG...", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Remove these tags instead.")
@pass_app
def tag(app: App, contact: str, tags: tuple[str, ...], remove: bool) -> None:
    """Tag a contact, or --remove tags.

    Rules with e.g. `tag = "client"` then apply to the contact. Tags are single words,
    compared in lowercase; `a,b` is two tags.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, changed, effective = decisions.tag(app.config, store, contact, tags, remove)
    asked = decisions.clean_tags(tags)
    unchanged = [t for t in asked if t not in changed]
    if unchanged:
        verb = "did not have" if remove else "already had"
        click.echo(f"{target.label} {verb} the tag(s) {', '.join(unchanged)}")
    have = ", ".join(sorted(target.decisions.tags)) or "none"
    click.echo(f"tags of {target.label}: {have}; cadence {decisions.every(effective)}")


@click.command()
@click.argument("keep", metavar="A")
@click.argument("other", metavar="B")
@pass_app
def merge(app: App, keep: str, other: str) -> None:
    """Merge contact B into contact A.

    A keeps its id and decisions (B's snooze, ignore and cadence fill in what A lacks;
    tags are united). B's id keeps naming the merged contact.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        kept, gone, merged = decisions.merge(app.config, store, keep, other)
    click.echo(f"merged {gone.label} (id {gone.id}) into {kept.label} (id {kept.id})")
    click.echo(f"addresses of contact {merged.id}: {', '.join(merged.addresses)}")


@click.command()
@click.argument("address")
@pass_app
def split(app: App, address: str) -> None:
    """Give one address its own contact again.

    The new contact starts without decisions; the rest keep theirs.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        new, old = decisions.split(app.config, store, address, app.now())
    click.echo(f"split {new.email} off {old.label} (id {old.id}): now contact {new.id}, "
               f"{new.label}")
    click.echo(f"{old.label} keeps: {', '.join(old.addresses)}")
