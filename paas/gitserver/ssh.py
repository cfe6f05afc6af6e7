"""The SSH forced command ``paas-ssh KEYNAME``: serves git over the SSH session's stdin/stdout.

sshd runs it for every key in the platform's authorized_keys file (see ``paas.gitserver.sshd``)
with the client's command in ``SSH_ORIGINAL_COMMAND``: ``git-receive-pack '<app>'`` or
``git-upload-pack '<app>'`` (with or without a leading ``/`` and a ``.git`` suffix). Any other
command goes to a dispatcher, which by default refuses it.

``serve`` holds the logic and takes its collaborators explicitly; ``main`` only wires them
from the settings.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from dulwich.errors import GitProtocolError, HangupException
from dulwich.protocol import Protocol
from dulwich.server import UploadPackHandler

from paas.errors import NotFound, PaasError
from paas.gitserver.receive import DEFAULT_HOOK_TIMEOUT, StreamingReceivePackHandler
from paas.gitserver.repos import AppBackend, RepoStore, default_hook_source
from paas.model import validate_app_name
from paas.settings import Settings, load_settings

UPLOAD_PACK = "git-upload-pack"
RECEIVE_PACK = "git-receive-pack"


@dataclass(frozen=True)
class GitCommand:
    service: str  # UPLOAD_PACK or RECEIVE_PACK
    app: str


@dataclass(frozen=True)
class SshRequest:
    """One SSH session: who (the key's name), what (the client's command) and its streams."""

    keyname: str
    command: str  # "" for an interactive login
    stdin: BinaryIO
    stdout: BinaryIO
    stderr: TextIO


Dispatcher = Callable[[SshRequest], int]


def parse_git_command(command: str) -> GitCommand | None:
    """The git service and app of ``command``; None if it is not a git command.

    Raises ``InvalidInput`` for a git command naming an invalid app.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) == 3 and words[0] == "git":  # "git receive-pack 'app'"
        words = [f"git-{words[1]}", words[2]]
    if len(words) != 2 or words[0] not in (UPLOAD_PACK, RECEIVE_PACK):
        return None
    name = words[1].strip("/").removesuffix(".git")
    return GitCommand(service=words[0], app=validate_app_name(name))


def reject_command(request: SshRequest) -> int:
    """The default dispatcher: only git is served over SSH."""
    if request.command:
        shown = request.command if len(request.command) <= 60 else request.command[:60] + "..."
        message = f"paas: {shown!r} is not a git command; only git push and fetch are served."
    else:
        message = "paas: interactive login is not allowed; use git push and the paas CLI."
    print(message, file=request.stderr, flush=True)
    return 1


def serve(
    request: SshRequest,
    repos: RepoStore,
    on_push_to_missing: Callable[[str], None],
    hook_env: Mapping[str, str],
    *,
    dispatcher: Dispatcher = reject_command,
    hook_timeout: float = DEFAULT_HOOK_TIMEOUT,
) -> int:
    """Serve one SSH session; return the exit status for sshd to pass on."""
    try:
        git = parse_git_command(request.command)
        if git is None:
            return dispatcher(request)
        if git.service == RECEIVE_PACK:
            if not repos.exists(git.app):
                on_push_to_missing(git.app)
            repos.ensure(git.app)
        elif not repos.exists(git.app):
            raise NotFound(f"App {git.app!r} does not exist.")
    except PaasError as exc:
        print(f"paas: {exc.message}", file=request.stderr, flush=True)
        return exc.exit_code

    def send(data: bytes) -> None:
        request.stdout.write(data)
        request.stdout.flush()  # hook output must reach the client as it is produced

    proto = Protocol(request.stdin.read, send)
    backend = AppBackend(repos)
    try:
        if git.service == RECEIVE_PACK:
            env = {**hook_env, "PAAS_APP": git.app, "PAAS_PUSHER": request.keyname}
            StreamingReceivePackHandler(
                backend, [git.app], proto, hook_env=env, hook_timeout=hook_timeout
            ).handle()
        else:
            UploadPackHandler(backend, [git.app], proto).handle()
    except HangupException:  # the client went away: nobody to tell
        return 1
    except (GitProtocolError, OSError) as exc:
        print(f"paas: git session failed: {exc}", file=request.stderr, flush=True)
        return 1
    finally:
        if git.service == RECEIVE_PACK:
            repos.restore_owner(git.app)
    return 0


def refuse_missing_app(settings: Settings) -> Callable[[str], None]:
    """Default for ``main``: a push never creates an app over SSH until wiring provides one."""

    def refuse(app: str) -> None:
        raise NotFound(f"App {app!r} does not exist: create it with `paas apps:create {app}`.")

    return refuse


def main(
    argv: Sequence[str] | None = None,
    *,
    make_on_push_to_missing: Callable[[Settings], Callable[[str], None]] = refuse_missing_app,
    make_dispatcher: Callable[[Settings], Dispatcher] = lambda _settings: reject_command,
    hook_source: Path | None = None,
) -> int:
    """``paas-ssh KEYNAME``, run by sshd as a forced command.

    ``make_on_push_to_missing(settings)`` gives the function creating an app on its first
    push, ``make_dispatcher(settings)`` the one running other commands; ``hook_source``
    overrides the project's ``hooks/`` directory.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: paas-ssh KEYNAME (run by sshd as a forced command)", file=sys.stderr)
        return 2
    env = dict(os.environ)
    settings_file = env.get("PAAS_SETTINGS_FILE")
    try:
        settings = load_settings(env)
    except (OSError, PaasError) as exc:
        message = exc.message if isinstance(exc, PaasError) else str(exc)
        print(f"paas: cannot load the platform settings: {message}", file=sys.stderr)
        return 1
    hook_env = {
        **settings.to_env(),
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")]
        ),
    }
    if settings_file:
        hook_env["PAAS_SETTINGS_FILE"] = settings_file
    request = SshRequest(
        keyname=args[0],
        command=env.get("SSH_ORIGINAL_COMMAND", ""),
        stdin=sys.stdin.buffer,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr,
    )
    repos = RepoStore(settings.repos_dir, hook_source or default_hook_source())
    return serve(
        request, repos, make_on_push_to_missing(settings), hook_env,
        dispatcher=make_dispatcher(settings),
    )  # fmt: skip
