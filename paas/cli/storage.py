"""``storage`` commands: host dirs bind-mounted into an app's replicas, whose data
survives deploys and restarts (Dokku's ``storage:mount``)."""

from __future__ import annotations

import urllib.parse
from typing import Any

import click

from paas.cli.base import api, app_command, emit, json_option
from paas.cli.target import Shape, Target


def _show(data: dict[str, Any]) -> None:
    click.echo("\n".join(data["storage"]) or "No storage mounted.")


def _is_mount(word: str) -> bool:
    return word.startswith("/") and ":" in word


@app_command(Shape("storage"))
@json_option
def storage(target: Target, as_json: bool) -> None:
    """List the host dirs mounted into the app's replicas."""
    emit(api("GET", f"/apps/{target.app}/storage"), as_json, _show)


@app_command(Shape("storage:mount", "/HOST/DIR:/CONTAINER/DIR", least=1, most=1,
                   own_word=_is_mount))
@json_option
def storage_mount(target: Target, as_json: bool) -> None:
    """Mount a host dir into every replica: paas storage:mount hello /srv/hello:/data"""
    (mount,) = target.words
    emit(api("POST", f"/apps/{target.app}/storage", {"mount": mount}), as_json, _show)


@app_command(Shape("storage:unmount", "/HOST/DIR:/CONTAINER/DIR", least=1, most=1,
                   own_word=_is_mount))
@json_option
def storage_unmount(target: Target, as_json: bool) -> None:
    """Stop mounting a host dir (its data stays on the host)."""
    (mount,) = target.words
    query = urllib.parse.quote(mount, safe="")
    emit(api("DELETE", f"/apps/{target.app}/storage?mount={query}"), as_json, _show)
