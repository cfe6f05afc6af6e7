"""How a process of a release is launched inside its container: the buildpack's
``.profile.d`` scripts are sourced first (Heroku's contract), then the Procfile command
runs under a shell, as Procfile commands are shell command lines."""

from __future__ import annotations

_PROLOGUE = (
    'for f in /app/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; '
    'eval "$1"'
)


def launch_command(command: str) -> tuple[str, ...]:
    """The argv that runs ``command`` (a Procfile command line) in an app container."""
    return ("/bin/sh", "-c", _PROLOGUE, "paas-launch", command)
