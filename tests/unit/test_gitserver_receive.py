"""The receive-pack handler's pre-receive runner: live relay, stderr, exit status, timeout."""

from __future__ import annotations

import io
import textwrap
import time
from pathlib import Path

import pytest
from dulwich.objects import ObjectID
from dulwich.protocol import Protocol
from dulwich.refs import Ref

from paas.gitserver.receive import StreamingReceivePackHandler
from paas.gitserver.repos import AppBackend, RepoStore

OLD = ObjectID(b"0" * 40)
NEW = ObjectID(b"1" * 40)


class Recorder:
    """The client side of the protocol: pkt-lines written, with the time each arrived."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []

    def write(self, data: bytes) -> None:
        self.writes.append((time.monotonic(), data))

    def progress(self) -> list[bytes]:
        # pkt-line: 4 hex digits of length, then the sideband channel byte (2 = progress).
        return [d[5:] for _, d in self.writes if d[4:5] == b"\x02"]


def make_handler(
    tmp_path: Path, hook: str, timeout: float = 30.0
) -> tuple[StreamingReceivePackHandler, Recorder]:
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-receive").write_text("#!/bin/sh\n" + textwrap.dedent(hook))
    (hooks / "pre-receive").chmod(0o755)
    store = RepoStore(tmp_path / "repos", hooks)
    store.ensure("hello")
    recorder = Recorder()
    handler = StreamingReceivePackHandler(
        AppBackend(store),
        ["/hello.git"],
        Protocol(io.BytesIO().read, recorder.write),
        hook_env={"PAAS_APP": "hello"},
        hook_timeout=timeout,
    )
    handler.set_client_capabilities([b"side-band-64k", b"report-status"])
    return handler, recorder


def test_lines_are_relayed_as_they_come_with_stderr_merged(tmp_path: Path) -> None:
    handler, recorder = make_handler(
        tmp_path,
        """\
        read old new ref
        echo "got $old $new $ref for $PAAS_APP in $GIT_DIR"
        sleep 0.5
        echo "to stderr" >&2
        """,
    )
    start = time.monotonic()
    assert handler.run_pre_receive([(OLD, NEW, Ref(b"refs/heads/master"))]) == 0
    git_dir = handler.repo.controldir()
    assert recorder.progress() == [
        f"got {'0' * 40} {'1' * 40} refs/heads/master for hello in {git_dir}\n".encode(),
        b"to stderr\n",
    ]
    first_at = recorder.writes[0][0] - start
    assert first_at < 0.4  # sent before the hook went on sleeping


def test_exit_status_is_returned(tmp_path: Path) -> None:
    handler, recorder = make_handler(tmp_path, "echo no; exit 3\n")
    assert handler.run_pre_receive([(OLD, NEW, Ref(b"refs/heads/master"))]) == 3
    assert recorder.progress() == [b"no\n"]


def test_a_hook_that_runs_too_long_is_killed_with_its_children(tmp_path: Path) -> None:
    handler, recorder = make_handler(tmp_path, "echo start; sleep 30 & sleep 30\n", timeout=0.5)
    start = time.monotonic()
    assert handler.run_pre_receive([(OLD, NEW, Ref(b"refs/heads/master"))]) != 0
    assert time.monotonic() - start < 5
    assert recorder.progress() == [b"start\n", b"pre-receive hook timed out after 0s\n"]


@pytest.mark.parametrize("gone", [BrokenPipeError, ConnectionResetError])
def test_a_vanished_client_does_not_stop_the_hook(tmp_path: Path, gone: type[OSError]) -> None:
    handler, _ = make_handler(tmp_path, "echo 1; echo 2; touch done\n")

    def broken(data: bytes) -> None:
        raise gone()

    handler.proto = Protocol(io.BytesIO().read, broken)
    assert handler.run_pre_receive([(OLD, NEW, Ref(b"refs/heads/master"))]) == 0
    assert (Path(handler.repo.controldir()) / "done").exists()
