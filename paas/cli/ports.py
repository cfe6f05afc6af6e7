"""``ports`` commands: host ports the router listens on for an app, besides APP.DOMAIN on
its own port (Dokku's ``ports:set APP http:8080:5000``)."""

from __future__ import annotations

from typing import Any

import click

from paas.cli.base import api, app_command, emit, json_option
from paas.cli.target import Shape, Target


def _show(data: dict[str, Any]) -> None:
    click.echo("\n".join(data["ports"]) or "No ports of its own: routed by host name only.")


@app_command(Shape("ports"))
@json_option
def ports(target: Target, as_json: bool) -> None:
    """List the app's own host ports."""
    emit(api("GET", f"/apps/{target.app}/ports"), as_json, _show)


@app_command(Shape("ports:set", "http:HOST:CONTAINER...", least=1, most=None,
                   own_word=lambda w: w.startswith("http:")))
@json_option
def ports_set(target: Target, as_json: bool) -> None:
    """Listen on host ports: paas ports:set hello http:8080:5000"""
    emit(api("PUT", f"/apps/{target.app}/ports", {"ports": list(target.words)}), as_json, _show)


@app_command(Shape("ports:clear"))
@json_option
def ports_clear(target: Target, as_json: bool) -> None:
    """Route the app by host name only again."""
    emit(api("PUT", f"/apps/{target.app}/ports", {"ports": []}), as_json, _show)
