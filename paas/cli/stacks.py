"""``stacks`` commands: the base images apps are built on (Debian suites from debootstrap
plus the packages buildpacks need), ``images:gc`` for unused layers, and ``builder`` /
``builder:set`` for the stack and memory limit of an app's builds."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import click

from paas.cli.base import api, app_command, emit, json_option
from paas.cli.target import Shape, Target


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


@click.command("stacks")
@json_option
def stacks(as_json: bool) -> None:
    """List the stacks built on the platform."""

    def human(d: dict[str, Any]) -> None:
        for s in d["stacks"]:
            click.echo(f"{s['name']:<12} built {_when(s['built_at'])}  "
                       f"{len(s['layers'])} layers  {', '.join(s['packages'])}")

    emit(api("GET", "/stacks"), as_json, human)


@click.command("stacks:build")
@click.argument("name")
@json_option
def stacks_build(name: str, as_json: bool) -> None:
    """(Re)build a stack, such as bookworm; apps get it at their next deploy."""
    data = api("POST", f"/stacks/{urllib.parse.quote(name, safe='')}/build")
    emit(data, as_json, lambda d: click.echo("\n".join(d["output"]) or f"Built {d['name']}."))


@click.command("images:gc")
@json_option
def images_gc(as_json: bool) -> None:
    """Remove image layers no kept release (each app's last 10) nor stack uses."""
    data = api("POST", "/images/gc")
    emit(data, as_json, lambda d: click.echo(f"Removed {len(d['removed'])} layers."))


def _builder(d: dict[str, Any]) -> None:
    b = d["builder"]
    click.echo(f"stack:  {b['stack']} ({b['stack_from']})")
    click.echo(f"memory: {b['memory_bytes'] / 1024**2:.0f}m")


@app_command(Shape("builder"))
@json_option
def builder(target: Target, as_json: bool) -> None:
    """Show the stack and memory limit an app's next build gets."""
    emit(api("GET", f"/apps/{target.app}/builder"), as_json, _builder)


@app_command(Shape("builder:set", "KEY VALUE", least=2, most=2,
                   own_word=lambda w: w in ("stack", "memory")))
@json_option
def builder_set(target: Target, as_json: bool) -> None:
    """Set a builder setting: paas builder:set hello stack bookworm, or memory 1g
    ("default" goes back to the platform's). It applies from the next push."""
    key, value = target.words
    data = api("PATCH", f"/apps/{target.app}/builder", {"key": key, "value": value})
    emit(data, as_json, _builder)
