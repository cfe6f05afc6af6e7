import os
import subprocess

import pytest

from paas.build.launch import app_process_user, launch_command
from paas.model import APP_USER


def parent_of_app(command: str) -> int:
    """The parent pid the app (a shell printing $PPID) sees when launched like a replica."""
    argv = launch_command(command)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    return int(out.split()[-1])


def test_a_simple_command_replaces_the_launch_shell() -> None:
    # exec'ed: the app's parent is whoever started the launcher (here, this process), so
    # the app itself gets the stop signal, not a shell that would die on TERM.
    assert parent_of_app("sh -c 'echo $PPID'") == os.getpid()


def test_a_compound_command_runs_under_the_launch_shell() -> None:
    assert parent_of_app("true; sh -c 'echo $PPID'") != os.getpid()


@pytest.mark.parametrize(
    ("command", "execs"),
    [
        ("gunicorn app:app --bind 0.0.0.0:$PORT", True),
        ("npm start", True),
        ("a && b", False),
        ("a; b", False),
        ("a | b", False),
        ("a > log", False),
        ("FOO=1 app", False),
        ("exec app", False),
        ("$(which app)", False),  # conservative: parentheses read as operators
        ("python3 -c \"import os; print(1)\"", True),
        ("echo 'a | b'", True),
        ("echo 'unbalanced", False),
    ],
)
def test_which_commands_are_execed(command: str, execs: bool) -> None:
    assert launch_command(command)[2].endswith('eval "exec $1"') is execs


def test_no_image_runs_as_root() -> None:
    assert app_process_user((1234, 1234)) == (1234, 1234)
    assert app_process_user((1234, 0)) == (1234, 0)
    assert app_process_user((0, 0)) == APP_USER  # USER root
    assert app_process_user(None) == APP_USER  # no USER at all
