"""``domains`` commands: the host names an app answers at besides APP.DOMAIN."""

from __future__ import annotations

import urllib.parse

import click

from paas.cli.base import api, app_command, emit, json_option
from paas.cli.target import Shape, Target


@app_command(Shape("domains"))
@json_option
def domains(target: Target, as_json: bool) -> None:
    """List an app's custom domains."""
    data = api("GET", f"/apps/{target.app}/domains")
    emit(data, as_json, lambda d: click.echo(
        "\n".join(d["domains"]) or f"{target.app} has no custom domains."))


@app_command(Shape("domains:add", "DOMAIN", least=1, most=1))
@json_option
def domains_add(target: Target, as_json: bool) -> None:
    """Route a domain to an app: paas domains:add hello www.example.test"""
    (domain,) = target.words
    data = api("POST", f"/apps/{target.app}/domains", {"domain": domain})
    emit(data, as_json, lambda _: click.echo(f"Added {domain} to {target.app}."))


@app_command(Shape("domains:remove", "DOMAIN", least=1, most=1))
@json_option
def domains_remove(target: Target, as_json: bool) -> None:
    """Stop routing a domain to an app."""
    (domain,) = target.words
    path = f"/apps/{target.app}/domains/{urllib.parse.quote(domain, safe='')}"
    data = api("DELETE", path)
    emit(data, as_json, lambda _: click.echo(f"Removed {domain} from {target.app}."))
