"""``checks`` commands: how new replicas are checked before they get traffic (Dokku's
``checks:*``): enabled (health checks from app.json, or up for a few seconds), skipped
(up is enough), or disabled (no zero-downtime: old replicas stop first)."""

from __future__ import annotations

from typing import Any

import click

from paas.cli.base import api, app_command, emit, json_option
from paas.cli.target import Shape, Target


def _show(data: dict[str, Any]) -> None:
    for ptype, entry in sorted(data["checks"].items()):
        click.echo(f"{ptype}: {entry['mode']}")
        for check in entry["checks"]:
            what = f"GET {check['path']}"
            if check["content"]:
                what += f" containing {check['content']!r}"
            click.echo(f"  {check['name'] or what}: {what}, {check['attempts']} attempts, "
                       f"timeout {check['timeout']:g} s")


@app_command(Shape("checks"))
@json_option
def checks(target: Target, as_json: bool) -> None:
    """Show the check mode and health checks of each process type."""
    emit(api("GET", f"/apps/{target.app}/checks"), as_json, _show)


def _mode_command(command: str, mode: str, doc: str) -> click.Command:
    @app_command(Shape(command, "[TYPE...]", least=0, most=None))
    @json_option
    def set_mode(target: Target, as_json: bool) -> None:
        body = {"mode": mode, "process_types": list(target.words)}
        emit(api("PATCH", f"/apps/{target.app}/checks", body), as_json, _show)

    set_mode.help = doc
    return set_mode


checks_enable = _mode_command(
    "checks:enable", "enabled", "Check new replicas before they get traffic (the default)."
)
checks_skip = _mode_command(
    "checks:skip", "skipped", "Route new replicas as soon as they run (zero-downtime kept)."
)
checks_disable = _mode_command(
    "checks:disable", "disabled", "Stop old replicas before new ones start (no zero-downtime)."
)
