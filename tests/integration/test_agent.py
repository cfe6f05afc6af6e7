"""The agent over its real Unix socket: values, errors and passed files cross it intact, a
follower that goes away ends the follow, and a user other than root and the API's is refused.
The host behind it is a stand-in: what LocalHost does is tested with the platform (e2e)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from paas.agent.client import AgentClient
from paas.agent.server import REFUSED, Agent
from paas.applogs import LogLine, ProcessFilter
from paas.errors import NotFound, PlatformError, Unauthorized
from paas.model import Replica, ReplicaKey, ReplicaState
from paas.oneoff import RunRequest
from paas.runtime.attach import WindowSize

pytestmark = pytest.mark.root

NOBODY = 65534
REPLICA = Replica(
    container_id="hello.web.1.v3.ab12", key=ReplicaKey("hello", "web", 1), release=3,
    state=ReplicaState.CRASHED, address="198.18.0.7", started_at=1700000000.5, exit_code=137,
    reason="out of memory", generation=2, port=8080,
)  # fmt: skip


@dataclass
class StandInHost:
    follows_closed: threading.Event = field(default_factory=threading.Event)
    runs: list[tuple[str, RunRequest]] = field(default_factory=list)

    def observe(self, app: str | None) -> list[Replica]:
        if app == "missing":
            raise NotFound('App "missing" not found.')
        return [REPLICA]

    def recent_logs(self, app: str, lines: int, process: ProcessFilter) -> list[LogLine]:
        return [LogLine(1.5, "app", process.process or "web.1", f"{app} {lines}")]

    def follow_logs(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        if app == "missing":
            raise NotFound('App "missing" not found.')
        return self._follow()

    def _follow(self) -> Generator[list[LogLine], None, None]:
        try:
            n = 0
            while True:
                n += 1
                yield [LogLine(float(n), "paas", "deploy", f"line {n}")]
                time.sleep(0.01)
        finally:
            self.follows_closed.set()

    def run(self, app: str, request: RunRequest, channel: socket.socket) -> None:
        self.runs.append((app, request))
        channel.sendall(f"ran {' '.join(request.command)}".encode())
        channel.shutdown(socket.SHUT_RDWR)

    def stacks(self) -> dict[str, dict[str, Any]]:
        return {"bookworm": {"layers": ["sha256:1"]}}

    def build_stack(self, name: str, out: Callable[[str], None]) -> tuple[str, ...]:
        out("debootstrap ...")
        out("done")
        return ("sha256:2",)

    def collect_garbage(self) -> list[str]:
        raise RuntimeError("a bug in the host")

    def export_image(self, app: str, version: int | None) -> tuple[int, BinaryIO]:
        read_end, write_end = os.pipe()
        os.write(write_end, b"oci tar bytes")
        os.close(write_end)
        return version or 7, os.fdopen(read_end, "rb")


@pytest.fixture
def agent() -> Iterator[tuple[AgentClient, StandInHost, Path]]:
    host = StandInHost()
    directory = Path(tempfile.mkdtemp(prefix="paas-agent-", dir="/var/tmp"))
    directory.chmod(0o755)  # others may reach the socket: its mode and the uid check guard it
    path = directory / "agent.sock"
    server = Agent(host, path, {0}, 0)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield AgentClient(path, timeout=10), host, path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def test_values_and_errors_cross_the_socket(
    agent: tuple[AgentClient, StandInHost, Path],
) -> None:
    client, _host, path = agent
    assert oct(path.stat().st_mode & 0o777) == "0o660"
    assert client.observe("hello") == [REPLICA]
    with pytest.raises(NotFound, match="missing"):
        client.observe("missing")
    assert client.recent_logs("hello", 5, ProcessFilter("web.2")) == [
        LogLine(1.5, "app", "web.2", "hello 5")
    ]
    assert client.stacks() == {"bookworm": {"layers": ["sha256:1"]}}
    lines: list[str] = []
    assert client.build_stack("bookworm", lines.append) == ("sha256:2",)
    assert lines == ["debootstrap ...", "done"]
    with pytest.raises(PlatformError, match="see its log"):  # not the host's traceback
        client.collect_garbage()


def test_files_are_passed_both_ways(agent: tuple[AgentClient, StandInHost, Path]) -> None:
    client, host, _path = agent
    version, exported = client.export_image("hello", None)
    with exported:
        assert (version, exported.read()) == (7, b"oci tar bytes")
    ours, theirs = socket.socketpair()
    with ours, theirs:
        request = RunRequest(("ls", "-l"), tty=True, size=WindowSize(30, 100), env={"A": "b"})
        client.run("hello", request, theirs)
        assert ours.recv(100) == b"ran ls -l"
    assert host.runs == [("hello", request)]


def test_a_follower_that_leaves_ends_the_follow(
    agent: tuple[AgentClient, StandInHost, Path],
) -> None:
    client, host, _path = agent
    with pytest.raises(NotFound):
        client.follow_logs("missing", 10, ProcessFilter())
    batches = client.follow_logs("hello", 10, ProcessFilter())
    assert next(batches)[0].text == "line 1"
    assert next(batches)[0].text == "line 2"
    batches.close()
    assert host.follows_closed.wait(timeout=10), "the agent kept following"


def test_other_users_are_refused(agent: tuple[AgentClient, StandInHost, Path]) -> None:
    _client, _host, path = agent
    path.chmod(0o666)  # past the file mode: the peer's uid is checked too
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nobody asks the agent
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                AgentClient(path, timeout=10).observe("hello")
                answer = b"answered"
            except Unauthorized as exc:
                answer = exc.message.encode()
            os.write(write_end, answer)
        finally:
            os._exit(0)
    os.close(write_end)
    with io.FileIO(read_end) as child:
        answer = child.read().decode()
    os.waitpid(pid, 0)
    assert answer == REFUSED
