"""``resource`` commands: the memory, CPU and pids limits of an app's replicas (cgroups),
per process type or for the whole app; running replicas get new limits in place."""

from __future__ import annotations

import urllib.parse
from typing import Any

import click

from paas.cli.base import api, app_command, emit, json_option
from paas.cli.target import Shape, Target


def _show(data: dict[str, Any]) -> None:
    for ptype, lim in sorted(data["limits"].items()):
        click.echo(f"{ptype:<10} memory {lim['memory_bytes'] / 1024**2:.0f}m  cpu {lim['cpu']:g}  "
                   f"pids {lim['pids']}")


@app_command(Shape("resource"))
@json_option
def resource(target: Target, as_json: bool) -> None:
    """Show the limits of each process type."""
    emit(api("GET", f"/apps/{target.app}/limits"), as_json, _show)


@app_command(Shape("resource:limit"))
@click.option("-p", "--process-type", help="Only this process type (default: all of them).")
@click.option("--memory", help="Memory, such as 256m or 1g.")
@click.option("--cpu", type=float, help="CPUs, such as 0.5 (half a core).")
@click.option("--pids", type=int, help="The most processes and threads at once.")
@json_option
def resource_limit(
    target: Target, process_type: str | None, memory: str | None, cpu: float | None,
    pids: int | None, as_json: bool,
) -> None:
    """Limit memory, CPU or pids: paas resource:limit hello --memory 256m --cpu 0.5"""
    body = {"process_type": process_type, "memory": memory, "cpu": cpu, "pids": pids}
    emit(api("PATCH", f"/apps/{target.app}/limits", body), as_json, _show)


@app_command(Shape("resource:limit:clear"))
@click.option("-p", "--process-type", help="Only this process type's own limits.")
@json_option
def resource_limit_clear(target: Target, process_type: str | None, as_json: bool) -> None:
    """Go back to the platform's default limits."""
    query = f"?process_type={urllib.parse.quote(process_type)}" if process_type else ""
    emit(api("DELETE", f"/apps/{target.app}/limits{query}"), as_json, _show)
