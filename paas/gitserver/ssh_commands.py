"""``paas`` commands over SSH, as Dokku users type them: ``ssh paas@HOST apps:list``.

sshd runs the same forced command for every key (``paas-ssh KEYNAME``, see
``paas.gitserver.ssh``); whatever is not git comes here. The words of the client's command
(split as a shell would) run the ``paas`` CLI in this process, against the platform's API at
its local URL with the relay token the platform writes to ``Settings.ssh_token_file``; each
request names the key as the actor (``X-Paas-Actor``), which releases record.

There is no checkout to take an app from and no terminal to ask on: the app is named in the
command (or with ``-a``), and ``apps:destroy`` needs ``--force``. Commands about the local
machine (``auth:token``, ``login``) are not offered.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from paas.cli.account import LOCAL_ONLY
from paas.cli.base import Session
from paas.cli.client import ApiClient, Endpoint
from paas.cli.main import cli, run
from paas.gitserver.ssh import Dispatcher, SshRequest
from paas.settings import Settings


def ssh_commands() -> click.Group:
    """The CLI's commands that make sense over SSH."""
    return click.Group(
        name="paas",
        commands={name: c for name, c in cli.commands.items() if name not in LOCAL_ONLY},
        help="Manage apps over SSH: ssh paas@HOST COMMAND [ARGS]... "
        "(name the app first: ssh paas@HOST ps:scale hello web=2).",
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def command_words(command: str) -> list[str]:
    """The CLI words of an SSH command line; ``help [COMMAND]`` and an empty line ask for help.

    Raises ``ValueError`` for a line a shell could not split (an unbalanced quote).
    """
    words = shlex.split(command)
    if not words or words[0] == "help":
        return [*words[1:], "--help"]
    return words


def ssh_dispatcher(settings: Settings) -> Dispatcher:
    """The dispatcher ``paas.gitserver.ssh.main`` gives every non-git SSH command."""
    token_file = settings.ssh_token_file
    group = ssh_commands()

    def dispatch(request: SshRequest) -> int:
        try:
            words = command_words(request.command)
        except ValueError as exc:
            print(f"paas: cannot split the command: {exc}.", file=request.stderr, flush=True)
            return 2
        token = _read_token(token_file)
        if token is None:
            print(
                f"paas: commands over SSH are not enabled here ({token_file} is not readable); "
                "use the paas CLI on the platform host.",
                file=request.stderr,
                flush=True,
            )
            return 1
        endpoint = Endpoint(settings.api_url, token, actor=request.keyname)
        session = Session(
            client=lambda: ApiClient(endpoint), remote_url=None, interactive=False
        )
        with _streams_of(request):
            return run(words, session, group)

    return dispatch


def _read_token(path: Path) -> str | None:
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return token or None


@contextlib.contextmanager
def _streams_of(request: SshRequest) -> Iterator[None]:
    """Point the process's standard streams at the SSH session's while a command runs."""
    stdin = io.TextIOWrapper(request.stdin, encoding="utf-8", errors="surrogateescape")
    stdout = io.TextIOWrapper(
        request.stdout, encoding="utf-8", errors="surrogateescape", write_through=True
    )
    saved_stdin, sys.stdin = sys.stdin, stdin
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(request.stderr):
            yield
    finally:
        sys.stdin = saved_stdin
        stdout.flush()
        request.stderr.flush()
        stdout.detach()  # the session's streams stay open for sshd
        stdin.detach()
