"""``ps`` commands: an app's replicas, how many of each process type run, restart, stop, start."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import click

from paas.cli.base import age, api, app_command, emit, json_option
from paas.cli.target import Shape, Target, is_assignment, is_process_type
from paas.errors import InvalidInput


def parse_counts(words: Iterable[str]) -> dict[str, int]:
    """``web=3 worker=1`` to ``{"web": 3, "worker": 1}``."""
    counts: dict[str, int] = {}
    for word in words:
        ptype, sep, raw = word.partition("=")
        if not sep or not is_process_type(ptype) or not raw.isdecimal():
            raise InvalidInput(f"Invalid scale {word!r}: use TYPE=COUNT, for example web=3.")
        counts[ptype] = int(raw)
    return counts


def _formation(d: dict[str, Any]) -> None:
    click.echo(" ".join(f"{k}={v}" for k, v in sorted(d["formation"].items())) or "no processes")


@app_command(Shape("ps"))
@json_option
def ps(target: Target, as_json: bool) -> None:
    """Show an app's replicas: state, address, release, uptime."""
    data = api("GET", f"/apps/{target.app}/ps")

    def human(d: dict[str, Any]) -> None:
        if not d["replicas"]:
            click.echo(f"{target.app} has no replicas.")
        for r in d["replicas"]:
            state = "retiring" if r.get("retiring") else r["state"]
            if r.get("exit_code") is not None and state != "running":
                state += f" (exit {r['exit_code']}{', ' + r['reason'] if r['reason'] else ''})"
            wait = (r.get("restart_at") or 0) - time.time()
            if state != "running" and wait > 0:
                state += f" (restarting in {wait:.0f}s)"
            click.echo(
                f"{r['dyno']:<10} {state:<12} {r['address'] or '-':<15} {r['release']:<5} "
                f"up {age(r['started_at'])}"
            )

    emit(data, as_json, human)


@app_command(Shape("ps:scale", "[TYPE=COUNT...]", most=None, own_word=is_assignment))
@json_option
def ps_scale(target: Target, as_json: bool) -> None:
    """Scale process types: paas ps:scale hello web=3 worker=1 (no counts: show them)."""
    counts = parse_counts(target.words)
    path = f"/apps/{target.app}/formation"
    data = api("PATCH", path, counts) if counts else api("GET", path)
    emit(data, as_json, _formation)


@app_command(Shape("ps:restart", "[TYPE]", most=1, own_word=is_process_type))
@json_option
def ps_restart(target: Target, as_json: bool) -> None:
    """Restart an app's replicas, or those of one process type."""
    ptype = target.words[0] if target.words else None
    data = api("POST", f"/apps/{target.app}/ps/restart", {"process_type": ptype})
    what = f"{ptype} replicas" if ptype else "replicas"
    emit(data, as_json, lambda _: click.echo(f"Restarted {target.app}'s {what}."))


@app_command(Shape("ps:stop"))
@json_option
def ps_stop(target: Target, as_json: bool) -> None:
    """Stop all of an app's replicas (its formation is kept for ps:start)."""
    data = api("POST", f"/apps/{target.app}/ps/stop", {})
    emit(data, as_json, lambda _: click.echo(
        f"Stopped {target.app}; paas ps:start {target.app} starts it again."))


@app_command(Shape("ps:start"))
@json_option
def ps_start(target: Target, as_json: bool) -> None:
    """Start an app's replicas again after ps:stop."""
    data = api("POST", f"/apps/{target.app}/ps/start", {})
    emit(data, as_json, lambda _: click.echo(f"Started {target.app}."))


@app_command(Shape("ps:set", "KEY VALUE", least=2, most=2, own_word=lambda w: w == "stop-timeout"))
@json_option
def ps_set(target: Target, as_json: bool) -> None:
    """Set a process setting: paas ps:set hello stop-timeout 30 (seconds from TERM to KILL)."""
    key, value = target.words
    data = api("PATCH", f"/apps/{target.app}/ps/settings", {"key": key, "value": value})
    emit(data, as_json, lambda d: click.echo(
        f"stop-timeout: {d['settings']['stop_timeout']:g} s"))
