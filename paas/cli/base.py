"""What every command module of the CLI shares: the session a command runs in (API client,
checkout lookup, whether it may prompt), ``--json`` output and the ``app_command`` decorator
that gives a command ``-a/--app`` and resolves its app (``paas.cli.target``)."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from paas.cli.client import ApiClient, find_endpoint
from paas.cli.target import RemoteUrl, Shape, paas_remote_url, resolve

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Session:
    """Where a command runs: ``client()`` talks to the API; ``remote_url`` finds the current
    checkout's ``paas`` remote (None where there is no checkout, as over SSH); ``interactive``
    says whether the command may ask the user something."""

    client: Callable[[], ApiClient]
    remote_url: RemoteUrl | None
    interactive: bool

    @classmethod
    def local(cls) -> Session:
        """A command run on the user's machine: the configured API, the working directory."""
        return cls(
            client=lambda: ApiClient(find_endpoint()),
            remote_url=functools.cache(paas_remote_url),
            interactive=sys.stdin.isatty(),
        )


def session() -> Session:
    """The session given to the CLI (``obj``), else the local one."""
    found = click.get_current_context().find_object(Session)
    return found if found is not None else Session.local()


def api(method: str, path: str, body: Any = None) -> Any:
    """Call the API of the current session."""
    return session().client().call(method, path, body)


def emit(data: Any, as_json: bool, human: Callable[[Any], object]) -> None:
    """Print the API's answer as JSON with ``--json``, else as ``human`` renders it."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human(data)


def json_option(fn: Handler) -> Handler:
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")(fn)


def age(since: float | None) -> str:
    """``5m``, ``3h``: how long ago ``since`` (a Unix time) was; ``-`` when unknown."""
    if not since:
        return "-"
    seconds = max(0, int(time.time() - since))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def app_command(shape: Shape) -> Callable[[Handler], click.Command]:
    """A command acting on one app, named ``shape.command``: it takes ``-a/--app APP`` and
    ``[APP] shape.args``, and calls the decorated function with the resolved ``Target`` first,
    then its own options."""

    def decorate(fn: Handler) -> click.Command:
        @functools.wraps(fn)
        def callback(app: str | None, words: tuple[str, ...], **options: Any) -> None:
            fn(resolve(app, words, shape, session().remote_url), **options)

        with_words = click.argument("words", nargs=-1, metavar=f"[APP] {shape.args}".rstrip())
        with_app = click.option(
            "-a", "--app", metavar="APP", help="The app (default: the checkout's paas remote)."
        )
        return click.command(shape.command)(with_app(with_words(callback)))

    return decorate
