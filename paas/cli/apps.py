"""``apps:*`` commands: create, list, show and destroy apps."""

from __future__ import annotations

from typing import Any

import click

from paas.cli.base import api, app_command, emit, json_option, session
from paas.cli.target import Shape, Target
from paas.errors import InvalidInput
from paas.model import validate_app_name


@click.command("apps:create")
@click.argument("name")
@json_option
def apps_create(name: str, as_json: bool) -> None:
    """Create an app."""
    data = api("POST", "/apps", {"name": validate_app_name(name)})
    emit(data, as_json, lambda d: click.echo(
        f"Created {d['name']}\n  git remote add paas {d['git_remotes']['ssh']}\n"
        f"  or: git remote add paas {d['git_remotes']['http']}"))


@click.command("apps:list")
@json_option
def apps_list(as_json: bool) -> None:
    """List apps."""
    data = api("GET", "/apps")
    emit(data, as_json, lambda d: click.echo("\n".join(a["name"] for a in d["apps"])))


@app_command(Shape("apps:info"))
@json_option
def apps_info(target: Target, as_json: bool) -> None:
    """Show an app's release, processes, formation, URL, domains and git remotes."""
    data = api("GET", f"/apps/{target.app}")

    def human(d: dict[str, Any]) -> None:
        formation = " ".join(f"{k}={v}" for k, v in sorted(d["formation"].items()))
        rows = [
            ("Release", d["release"] or "none (push to deploy)"),
            ("Git rev", d["git_rev"] or "-"),
            ("Web URL", d["web_url"]),
            ("Domains", " ".join(d.get("domains") or []) or "-"),
            ("Formation", formation or "-"),
            ("Git (ssh)", d["git_remotes"]["ssh"]),
            ("Git (http)", d["git_remotes"]["http"]),
        ]
        rows += [(f"Process {k}", v) for k, v in sorted(d["processes"].items())]
        width = max(len(label) for label, _ in rows) + 2
        click.echo(f"=== {d['name']}")
        for label, value in rows:
            click.echo(f"{label + ':':<{width}}{value}")

    emit(data, as_json, human)


@app_command(Shape("apps:destroy"))
@click.option("--force", is_flag=True, help="Do not ask for the app's name again.")
@json_option
def apps_destroy(target: Target, force: bool, as_json: bool) -> None:
    """Destroy an app: its replicas, routes, releases, config and repository."""
    app = target.app
    if not force:
        if not session().interactive:
            raise InvalidInput(
                f"Destroying {app} needs confirmation, and there is no terminal to ask on: "
                f"pass --force (paas apps:destroy {app} --force)."
            )
        click.echo(f"This destroys {app}: replicas, routes, releases, config, code.", err=True)
        typed = click.prompt(
            "Type the app name to confirm", default="", show_default=False, err=True
        )
        if typed != app:
            raise InvalidInput(f"{typed!r} is not {app!r}: nothing was destroyed.")
    data = api("DELETE", f"/apps/{app}?confirm={app}")
    emit(data, as_json, lambda d: click.echo(f"Destroyed {d['destroyed']}."))
