"""``paas`` commands (click). Errors become exit codes here, in one place."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from paas.cli.client import ApiClient, config_path, find_endpoint
from paas.errors import InvalidInput, PaasError
from paas.model import validate_app_name

Handler = Callable[..., Any]


def _client() -> ApiClient:
    return ApiClient(find_endpoint())


def _emit(data: Any, as_json: bool, human: Callable[[Any], object]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human(data)


def json_option(fn: Handler) -> Handler:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def _app(name: str) -> str:
    return validate_app_name(name)


def _age(started: float | None) -> str:
    if not started:
        return "-"
    seconds = int(time.time() - started)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Deploy apps with git push; run, scale and route them."""


@cli.command("apps:create")
@click.argument("name")
@json_option
def apps_create(name: str, as_json: bool) -> None:
    """Create an app."""
    data = _client().call("POST", "/apps", {"name": _app(name)})
    _emit(data, as_json, lambda d: click.echo(
        f"Created {d['name']}\n  git remote add paas {d['git_remotes']['ssh']}\n"
        f"  or: git remote add paas {d['git_remotes']['http']}"))


@cli.command("apps:list")
@json_option
def apps_list(as_json: bool) -> None:
    """List apps."""
    data = _client().call("GET", "/apps")
    _emit(data, as_json, lambda d: click.echo("\n".join(a["name"] for a in d["apps"])))


@cli.command("apps:info")
@click.argument("app")
@json_option
def apps_info(app: str, as_json: bool) -> None:
    """Show an app's release, formation, URL and git remotes."""
    data = _client().call("GET", f"/apps/{_app(app)}")

    def human(d: dict[str, Any]) -> None:
        click.echo(f"=== {d['name']}")
        click.echo(f"Release:    {d['release'] or 'none (push to deploy)'}")
        click.echo(f"Web URL:    {d['web_url']}")
        click.echo(f"Git (ssh):  {d['git_remotes']['ssh']}")
        click.echo(f"Git (http): {d['git_remotes']['http']}")
        formation = " ".join(f"{k}={v}" for k, v in sorted(d["formation"].items()))
        click.echo(f"Formation:  {formation or '-'}")

    _emit(data, as_json, human)


@cli.command("ps")
@click.argument("app")
@json_option
def ps(app: str, as_json: bool) -> None:
    """Show an app's replicas: state, address, release, uptime."""
    data = _client().call("GET", f"/apps/{_app(app)}/ps")

    def human(d: dict[str, Any]) -> None:
        if not d["replicas"]:
            click.echo(f"{app} has no replicas.")
        for r in d["replicas"]:
            state = r["state"]
            if r.get("exit_code") is not None and state != "running":
                state += f" (exit {r['exit_code']}{', ' + r['reason'] if r['reason'] else ''})"
            click.echo(
                f"{r['dyno']:<10} {state:<12} {r['address'] or '-':<15} {r['release']:<5} "
                f"up {_age(r['started_at'])}"
            )

    _emit(data, as_json, human)


@cli.command("ps:scale")
@click.argument("app")
@click.argument("counts", nargs=-1)
@json_option
def ps_scale(app: str, counts: tuple[str, ...], as_json: bool) -> None:
    """Scale process types: paas ps:scale APP web=3 worker=1 (no counts: show them)."""
    changes: dict[str, int] = {}
    for item in counts:
        ptype, sep, raw = item.partition("=")
        if not sep or not raw.isdigit():
            raise InvalidInput(f"Invalid scale {item!r}: use TYPE=COUNT, for example web=3.")
        changes[ptype] = int(raw)
    path = f"/apps/{_app(app)}/formation"
    data = _client().call("PATCH", path, changes) if changes else _client().call("GET", path)
    _emit(data, as_json, lambda d: click.echo(
        " ".join(f"{k}={v}" for k, v in sorted(d["formation"].items())) or "no processes"))


@cli.command("logs")
@click.argument("app")
@click.option("-n", "--num", default=100, show_default=True, help="Lines to show.")
@json_option
def logs(app: str, num: int, as_json: bool) -> None:
    """Show an app's output, all replicas merged."""
    data = _client().call("GET", f"/apps/{_app(app)}/logs?lines={num}")
    _emit(data, as_json, lambda d: click.echo("\n".join(d["lines"])))


@cli.command("ssh-keys:add")
@click.argument("name")
@json_option
def ssh_keys_add(name: str, as_json: bool) -> None:
    """Allow a public key (read from stdin) to push over SSH: paas ssh-keys:add me < key.pub"""
    key = sys.stdin.read()
    data = _client().call("POST", "/ssh-keys", {"name": name, "key": key})
    _emit(data, as_json, lambda d: click.echo(f"Added {d['name']} ({d['fingerprint']})"))


@cli.command("ssh-keys")
@json_option
def ssh_keys(as_json: bool) -> None:
    """List the keys allowed to push over SSH."""
    data = _client().call("GET", "/ssh-keys")
    _emit(data, as_json, lambda d: click.echo(
        "\n".join(f"{k['name']}  {k['fingerprint']}" for k in d["keys"])))


@cli.command("auth:token")
def auth_token() -> None:
    """Print the API token (for scripts and for git over HTTP)."""
    click.echo(find_endpoint().token)


@cli.command("login")
@click.argument("url")
@click.option("--token", prompt=True, hide_input=True, help="The platform's API token.")
def login(url: str, token: str) -> None:
    """Store the API URL and token of a remote platform."""
    client = ApiClient(find_endpoint({"PAAS_API_URL": url, "PAAS_TOKEN": token}))
    client.call("GET", "/apps")
    path = config_path(dict(os.environ))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps({"url": url, "token": token}))
    click.echo(f"Logged in to {url}; stored in {path}")


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="paas", standalone_mode=False)
    except PaasError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
