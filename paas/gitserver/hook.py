"""``paas-hook pre-receive``: run by the git server before any ref moves.

For a push to master or main it queues a build of the pushed revision and relays the
build's log to the pusher line by line; it exits non-zero (the push is rejected and the
ref does not move) unless the new release serves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from paas.errors import PaasError
from paas.model import DEPLOY_BRANCHES
from paas.services import Services
from paas.settings import Settings, load_settings

ZERO = "0" * 40
IDLE_TIMEOUT = 900.0


def pre_receive(
    services: Services, app: str, lines: Iterable[str], out: TextIO, actor: str = "git"
) -> int:
    deploys = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        _old, new, ref = parts
        if ref.encode() in DEPLOY_BRANCHES and new != ZERO:
            deploys.append(new)
    if not deploys:
        return 0
    if len(deploys) > 1:
        print("Push master or main, not both at once.", file=out, flush=True)
        return 1
    try:
        build = services.push_received(app, deploys[0], actor)
    except PaasError as exc:
        print(f"!     {exc.message}", file=out, flush=True)
        return 1
    for event in services.logs.follow(build.id, IDLE_TIMEOUT):
        if event.kind == "line":
            print(event.text, file=out, flush=True)
        elif event.ok:
            print(f"=====> {event.text}", file=out, flush=True)
            return 0
        else:
            print(f"!     Deploy failed: {event.text}", file=out, flush=True)
            print("!     The previous release keeps serving.", file=out, flush=True)
            return 1
    return 1


def app_from_git_dir(git_dir: str) -> str:
    name = os.path.basename(os.path.abspath(git_dir))
    return name[:-4] if name.endswith(".git") else name


def main(wire: Callable[[Settings], Services], argv: list[str] | None = None) -> int:
    """``paas-hook pre-receive``, with ``wire`` building the services from settings."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["pre-receive"]:
        print("usage: paas-hook pre-receive", file=sys.stderr)
        return 2
    settings = load_settings(os.environ)
    app = os.environ.get("PAAS_APP") or app_from_git_dir(os.environ.get("GIT_DIR", "."))
    actor = os.environ.get("PAAS_PUSHER") or "git"
    return pre_receive(wire(settings), app, sys.stdin, sys.stdout, actor)
