"""How a process of a release is launched: the container spec of one process of a release
(image layers, environment, ``.profile.d`` prologue, network), shared by replicas and
one-off runs.

The buildpack's ``.profile.d`` scripts are sourced first (Heroku's contract), then the
command runs under a shell, as Procfile commands are shell command lines. No process of an
app runs as root: there is no user namespace, so that would be the host's root.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from paas.model import APP_USER, CONTAINER_PORT, Image, Release, StorageMount
from paas.network import Attachment
from paas.runtime.spec import ContainerSpec, Mount
from paas.settings import Limits

_PROFILES = 'for f in /app/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; '
_ASSIGNMENT = re.compile(r"^\w+=")


def _simple(command: str) -> bool:
    """No control operators or redirections outside quotes, no leading assignment: then
    the command is exec'ed, so the app itself (not a shell that dies on TERM) gets the
    stop signal and its grace period; tini -g still signals the whole group otherwise."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: leave it to the shell as it is
        return False
    if not words or _ASSIGNMENT.match(words[0]) or words[0] == "exec" or "\n" in command:
        return False
    return not any(set(w) <= set(lexer.punctuation_chars) for w in words)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def launch_command(command: str) -> tuple[str, ...]:
    """The argv that runs ``command`` (a Procfile command line) in an app container."""
    run = 'eval "exec $1"' if _simple(command) else 'eval "$1"'
    return ("/bin/sh", "-c", _PROFILES + run, "paas-launch", command)


def app_process_user(image_user: tuple[int, int] | None) -> tuple[int, int]:
    """The uid and gid an image's processes run as: the image's own user, unless that is
    root or unset (a Dockerfile without ``USER``); then the platform's app user, as Heroku
    runs no image as root."""
    return image_user if image_user is not None and image_user[0] != 0 else APP_USER


def release_spec(
    *,
    container_id: str,
    release: Release,
    image: Image,
    layer_paths: tuple[Path, ...],
    dyno: str,
    command: str,
    attachment: Attachment,
    limits: Limits,
    labels: Mapping[str, str],
    port: int | None = None,
    storage: tuple[StorageMount, ...] = (),
) -> ContainerSpec:
    """The container that runs ``command`` as ``dyno`` of ``release``.

    ``layer_paths`` are the image's layer dirs, bottom first. The app's config overrides the
    image's environment; PORT, DYNO, PAAS_APP and GIT_REV are always the platform's. PORT
    is ``port``, else the image's EXPOSE, else 5000.
    """
    port = port or image.port or CONTAINER_PORT
    hostname = f"{release.app}-{dyno.replace('.', '-')}"
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": "/app",
        **image.env,
        **release.config,
        "PORT": str(port),
        "DYNO": dyno,
        "PAAS_APP": release.app,
        "GIT_REV": release.git_rev,
    }
    return ContainerSpec(
        id=container_id,
        lowers=tuple(reversed(layer_paths)),
        command=launch_command(command),
        env=env,
        limits=limits,
        netns=attachment.netns_path,
        hostname=hostname,
        cwd=image.workdir,
        labels={**labels, "port": str(port)},
        hosts=f"127.0.0.1\tlocalhost\n{attachment.address}\t{hostname}\n",
        user=app_process_user(image.user),
        confined=True,
        mounts=tuple(Mount(Path(m.host), m.container, read_only=False) for m in storage),
    )
