"""``config`` commands: an app's environment variables. A change makes a new release and
restarts the app's replicas onto it, unless ``--no-restart`` (then the next deploy takes it).

``config:get`` prints the value and one newline, as Heroku's does (``--json`` gives the exact
value); ``config --shell`` prints ``export K='V'`` lines that ``eval`` turns back into the
exact values, newlines and quotes included.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

import click

from paas.cli.base import api, app_command, emit, json_option
from paas.cli.target import Shape, Target, is_assignment, is_config_key
from paas.errors import InvalidInput, NotFound
from paas.model import validate_config_key


def parse_config_vars(words: Iterable[str]) -> dict[str, str]:
    """``K=V`` words to a mapping, split at the first ``=``; a later word for a key wins.

    A value is any text: bytes that are not UTF-8 (which Python keeps as lone surrogates
    when it decodes the command line) are refused, as the API carries text."""
    config: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise InvalidInput(
                f"{word!r} is not KEY=VALUE: for example paas config:set hello DEBUG=1."
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"The value of {key} is not UTF-8 text; config values must be text."
            ) from None
        config[validate_config_key(key)] = value
    return config


def shell_exports(config: Mapping[str, str]) -> str:
    """``export K='V'`` lines that a POSIX shell ``eval`` turns back into ``config``."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(config.items()))


def _human_config(app: str, config: Mapping[str, str]) -> None:
    if not config:
        click.echo(f"{app} has no config vars.")
        return
    width = max(len(k) for k in config) + 2
    click.echo(f"=== {app} Config Vars")
    for key, value in sorted(config.items()):
        click.echo(f"{key + ':':<{width}}{value.replace(chr(10), chr(10) + ' ' * width)}")


def _change(target: Target, body: dict[str, Any], verb: str, keys: Iterable[str],
            as_json: bool) -> None:
    data = api("PATCH", f"/apps/{target.app}/config", body)
    names = ", ".join(keys)

    def human(d: dict[str, Any]) -> None:
        if d["release"]:
            click.echo(f"{verb} {names} and restarting {target.app}... done, {d['release']}")
        else:
            why = "" if not body["restart"] else " (no new release: no build yet, or no change)"
            click.echo(f"{verb} {names} of {target.app}: it applies from the next deploy{why}.")

    emit(data, as_json, human)


restart_option = click.option(
    "--restart/--no-restart",
    default=True,
    help="Restart the replicas onto the new release now (default), or leave it to the next deploy.",
)


@app_command(Shape("config"))
@click.option("--shell", is_flag=True, help="Print `export K='V'` lines for eval.")
@json_option
def config(target: Target, shell: bool, as_json: bool) -> None:
    """Show an app's config vars."""
    data = api("GET", f"/apps/{target.app}/config")
    if shell:
        click.echo(shell_exports(data["config"]), nl=False)
    else:
        emit(data, as_json, lambda d: _human_config(target.app, d["config"]))


@app_command(Shape("config:get", "KEY", least=1, most=1))
@json_option
def config_get(target: Target, as_json: bool) -> None:
    """Print one config var's value."""
    (key,) = target.words
    data = api("GET", f"/apps/{target.app}/config")
    if validate_config_key(key) not in data["config"]:
        raise NotFound(f"{target.app} has no config var {key}. Run paas config {target.app}.")
    value = data["config"][key]
    emit({key: value}, as_json, lambda _: click.echo(value))


@app_command(Shape("config:set", "KEY=VALUE...", least=1, most=None, own_word=is_assignment))
@restart_option
@json_option
def config_set(target: Target, restart: bool, as_json: bool) -> None:
    """Set config vars: paas config:set hello K=V [K2=V2 ...] (split at the first '=')."""
    values = parse_config_vars(target.words)
    body = {"set": values, "unset": [], "restart": restart}
    _change(target, body, "Setting", values, as_json)


@app_command(Shape("config:unset", "KEY...", least=1, most=None, own_word=is_config_key))
@restart_option
@json_option
def config_unset(target: Target, restart: bool, as_json: bool) -> None:
    """Remove config vars: paas config:unset hello K [K2 ...]"""
    keys = [validate_config_key(k) for k in target.words]
    body = {"set": {}, "unset": keys, "restart": restart}
    _change(target, body, "Unsetting", keys, as_json)
