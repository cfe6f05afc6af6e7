"""``paas logs``, ``paas builds`` and ``paas builds:output``: an app's merged log (its
replicas' output and the platform's events about it), followed with ``-t``, and the output of
the builds that made its releases."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

import click

from paas.cli.base import age, api, app_command, emit, json_option, session
from paas.cli.target import Shape, Target


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each server-sent event of a stream read line by line (one ``data:`` line
    an event, as the API sends them; comments such as keepalives are skipped)."""
    for line in lines:
        if line.startswith("data:"):
            data = line[5:]
            yield data[1:] if data.startswith(" ") else data


@app_command(Shape("logs"))
@click.option("-n", "--num", default=100, show_default=True, help="How many lines to show first.")
@click.option("-t", "--tail", is_flag=True, help="Go on showing new lines until Ctrl-C.")
@click.option("-p", "--process", help="Only this process type (web) or replica (web.1).")
@json_option
def logs(target: Target, num: int, tail: bool, process: str | None, as_json: bool) -> None:
    """Show an app's output, all replicas merged, with the platform's events about it."""
    query = {"lines": str(num), **({"process": process} if process else {})}
    path = f"/apps/{target.app}/logs"
    if not tail:
        data = api("GET", f"{path}?{urllib.parse.urlencode(query)}")
        emit(
            data,
            as_json,
            lambda d: click.echo("".join(f"{line}\n" for line in d["lines"]), nl=False),
        )
        return
    stream = session().client().stream(f"{path}?{urllib.parse.urlencode({**query, 'follow': '1'})}")
    try:
        for line in sse_data(stream):
            click.echo(json.dumps({"line": line}) if as_json else line)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a followed log ends
    finally:
        stream.close()


@app_command(Shape("builds"))
@json_option
def builds(target: Target, as_json: bool) -> None:
    """List an app's builds, newest first."""
    data = api("GET", f"/apps/{target.app}/builds")

    def human(d: dict[str, Any]) -> None:
        if not d["builds"]:
            click.echo(f"{target.app} has no builds yet: push to build.")
        for b in d["builds"]:
            click.echo(
                f"{b['release'] or '-':<6} {b['status']:<10} {b['rev'][:7]}  {b['id']:<32} "
                f"{age(b['created_at']):>4} ago  by {b['actor']}"
            )

    emit(data, as_json, human)


@app_command(Shape("builds:output", args="BUILD", least=1, most=1))
@json_option
def builds_output(target: Target, as_json: bool) -> None:
    """Show the output of a build: by the release it made (v4) or its id (see paas builds)."""
    (ref,) = target.words
    data = api("GET", f"/apps/{target.app}/builds/{urllib.parse.quote(ref, safe='')}/output")

    def human(d: dict[str, Any]) -> None:
        for line in d["lines"]:
            click.echo(line)
        if d["expired"]:
            click.echo(
                f"The output of build {d['build']['id']} ({d['status']}) is no longer kept: "
                "the output of builds that made no release is kept for 7 days."
            )

    emit(data, as_json, human)
