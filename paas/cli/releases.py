"""``releases`` and ``rollback``: an app's release history, and going back to an old release
(its code and its config) as a new release."""

from __future__ import annotations

import re
from typing import Any

import click

from paas.cli.base import age, api, app_command, emit, json_option
from paas.cli.target import Shape, Target
from paas.errors import InvalidInput

_VERSION_RE = re.compile(r"^v?([1-9][0-9]{0,8})$")


def parse_version(word: str) -> int:
    """``v3`` or ``3`` to 3."""
    match = _VERSION_RE.fullmatch(word)
    if match is None:
        raise InvalidInput(f"Invalid release {word!r}: name one as paas releases shows it (v2).")
    return int(match.group(1))


@app_command(Shape("releases"))
@json_option
def releases(target: Target, as_json: bool) -> None:
    """List an app's releases, newest first."""
    data = api("GET", f"/apps/{target.app}/releases")

    def human(d: dict[str, Any]) -> None:
        rows = d["releases"]
        if not rows:
            click.echo(f"{target.app} has no releases yet: git push to deploy.")
            return
        current = next((r["name"] for r in rows if r["current"]), "none")
        width = max(len(r["description"]) for r in rows)
        click.echo(f"=== {target.app} Releases - Current: {current}")
        for r in rows:
            click.echo(f"{r['name']:<5} {r['description']:<{width}}  {r['created_by']:<12} "
                       f"{age(r['created_at'])} ago")

    emit(data, as_json, human)


@app_command(Shape("rollback", "vN", least=1, most=1))
@json_option
def rollback(target: Target, as_json: bool) -> None:
    """Go back to release vN's code and config, as a new release."""
    version = parse_version(target.words[0])
    data = api("POST", f"/apps/{target.app}/rollback", {"version": version})
    emit(data, as_json, lambda d: click.echo(
        f"Rolled back {target.app} to v{version}: {d['release']}"))
