"""``images`` commands: export a release's image as an OCI image layout tar, which skopeo,
podman and umoci read (``skopeo copy oci-archive:FILE docker-daemon:NAME:TAG``, say)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import click

from paas.cli.base import app_command, emit, json_option, session
from paas.cli.target import Shape, Target
from paas.errors import InvalidInput


@app_command(Shape("images:export", "[vN]", least=0, most=1,
                   own_word=lambda w: w[:1] == "v" and w[1:].isdecimal()))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="The tar file to write.")
@json_option
def images_export(target: Target, output: str, as_json: bool) -> None:
    """Write a release's image (default: the current one) as an OCI image layout tar."""
    (release,) = target.words or ("",)
    if release and not (release[:1] == "v" and release[1:].isdecimal()):
        raise InvalidInput(f"Invalid release {release!r}: name it like v3.")
    query = f"?release={urllib.parse.quote(release)}" if release else ""
    path = Path(output)
    size = session().client().download(f"/apps/{target.app}/image{query}", path)
    emit({"app": target.app, "file": str(path), "bytes": size}, as_json,
         lambda d: click.echo(f"Wrote {d['file']} ({d['bytes'] / 1e6:.1f} MB)."))
