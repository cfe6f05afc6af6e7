"""Access to the platform: SSH keys that may push, the API token, logging in to a remote one.

``auth:token`` and ``login`` concern the machine the CLI runs on, so they are ``LOCAL_ONLY``:
the SSH commands do not offer them.
"""

from __future__ import annotations

import json
import os
import sys

import click

from paas.cli.base import api, emit, json_option
from paas.cli.client import ApiClient, config_path, find_endpoint

LOCAL_ONLY = frozenset({"auth:token", "login"})


@click.command("ssh-keys:add")
@click.argument("name")
@json_option
def ssh_keys_add(name: str, as_json: bool) -> None:
    """Allow a public key (read from stdin) to push over SSH: paas ssh-keys:add me < key.pub"""
    data = api("POST", "/ssh-keys", {"name": name, "key": sys.stdin.read()})
    emit(data, as_json, lambda d: click.echo(f"Added {d['name']} ({d['fingerprint']})"))


@click.command("ssh-keys")
@json_option
def ssh_keys(as_json: bool) -> None:
    """List the keys allowed to push over SSH."""
    data = api("GET", "/ssh-keys")
    emit(data, as_json, lambda d: click.echo(
        "\n".join(f"{k['name']}  {k['fingerprint']}" for k in d["keys"])))


@click.command("auth:token")
def auth_token() -> None:
    """Print the API token (for scripts and for git over HTTP)."""
    click.echo(find_endpoint().token)


@click.command("login")
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
