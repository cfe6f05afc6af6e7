"""Attached foreground runs against real runc: exit codes, stdin, separate stdout and stderr,
a terminal with its window size, a client that goes away, and nothing left behind (the
sandbox fixture checks mounts, netns, cgroups and runc state after each test)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import pytest

from paas.runtime.attach import (
    RESIZE,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    FrameReader,
    WindowSize,
    exit_frame,
    frame,
    run_attached,
    send_last,
)
from paas.runtime.spec import ContainerSpec
from tests.integration.fixtures_runtime import Sandbox

pytestmark = pytest.mark.root
TIMEOUT = 30.0


@dataclass
class Client:
    """The client's end of an attached run, with the server's run in a thread."""

    sock: socket.socket
    thread: threading.Thread
    result: dict[str, object] = field(default_factory=dict)
    received: dict[int, bytes] = field(default_factory=dict)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, kind: int, text: bytes) -> None:
        """Collect frames until ``text`` has come in frames of ``kind``."""
        reader = FrameReader()
        deadline = time.monotonic() + TIMEOUT
        while text not in self.received.get(kind, b""):
            assert time.monotonic() < deadline, self.received
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            assert data, f"closed before {text!r}: {self.received}"
            for got, payload in reader.feed(data):
                self.received[got] = self.received.get(got, b"") + payload

    def finish(self) -> tuple[int, bytes, bytes]:
        """Everything until the server closes: (exit code, stdout, stderr)."""
        reader = FrameReader()
        self.sock.settimeout(TIMEOUT)
        while data := self.sock.recv(65536):
            for got, payload in reader.feed(data):
                self.received[got] = self.received.get(got, b"") + payload
        self.thread.join(TIMEOUT)
        assert "error" not in self.result, self.result
        code = self.result["code"]
        assert isinstance(code, int)
        return code, self.received.get(STDOUT, b""), self.received.get(STDERR, b"")


@contextmanager
def attached(
    sandbox: Sandbox, spec: ContainerSpec, size: WindowSize | None = None
) -> Iterator[Client]:
    ours, theirs = socket.socketpair()
    client = Client(ours, threading.Thread(target=lambda: None))

    def serve() -> None:
        try:
            code = run_attached(sandbox.runtime, spec, theirs, size)
            client.result["code"] = code
            send_last(theirs, exit_frame(code))
        except Exception as exc:
            client.result["error"] = exc
        finally:
            theirs.close()

    client.thread = threading.Thread(target=serve, daemon=True)
    client.thread.start()
    try:
        yield client
    finally:
        ours.close()
        client.thread.join(TIMEOUT)
        assert not client.thread.is_alive(), "the run did not end"


def test_exit_code_and_separate_streams_come_back(sandbox: Sandbox) -> None:
    spec = sandbox.spec("once", ("sh", "-c", "echo out; echo err >&2; exit 3"))
    with attached(sandbox, spec) as client:
        client.send(frame(STDIN_EOF))
        assert client.finish() == (3, b"out\n", b"err\n")
    assert sandbox.runtime.get("once") is None


def test_stdin_reaches_the_process_and_its_end_too(sandbox: Sandbox) -> None:
    spec = sandbox.spec("cat", ("sh", "-c", "cat; echo done"))
    with attached(sandbox, spec) as client:
        client.send(frame(STDIN, b"hello\n") + frame(STDIN, b"x" * 300_000))
        client.send(frame(STDIN, b"\nbye\n") + frame(STDIN_EOF))
        code, out, err = client.finish()
    assert code == 0 and err == b""
    assert out == b"hello\n" + b"x" * 300_000 + b"\nbye\ndone\n"


def test_a_terminal_is_a_tty_with_the_window_size(sandbox: Sandbox) -> None:
    # runc sizes the container's pty from ours just after the process starts: give it a
    # moment before reading the size (a loaded machine once lost that race).
    script = "sleep 1; tty; test -t 0 && echo is-a-tty; stty size; read line; stty size; exit 5"
    spec = replace(sandbox.spec("term", ("sh", "-c", script)), terminal=True)
    with attached(sandbox, spec, WindowSize(30, 100)) as client:
        client.read_until(STDOUT, b"30 100")
        client.send(frame(RESIZE, WindowSize(40, 120).pack()) + frame(STDIN, b"go\r"))
        code, out, err = client.finish()
    assert code == 5 and err == b""
    assert b"/dev/pts/" in out and b"is-a-tty" in out
    assert out.index(b"30 100") < out.index(b"40 120"), out


def test_a_client_that_goes_away_ends_the_run(sandbox: Sandbox) -> None:
    spec = sandbox.spec("sleeper", ("sh", "-c", "echo up; sleep 1000"))
    with attached(sandbox, spec) as client:
        client.read_until(STDOUT, b"up")
        client.sock.close()
        client.thread.join(TIMEOUT)
        assert not client.thread.is_alive()
    assert client.result.get("code") == 137, client.result
    assert sandbox.runtime.get("sleeper") is None


def test_a_terminal_run_sees_its_client_go_as_well(sandbox: Sandbox) -> None:
    spec = replace(sandbox.spec("shell", ("sh", "-c", "echo up; sleep 1000")), terminal=True)
    with attached(sandbox, spec) as client:
        client.read_until(STDOUT, b"up")
        client.sock.close()
        client.thread.join(TIMEOUT)
        assert not client.thread.is_alive()
    assert "code" in client.result, client.result
    assert sandbox.runtime.get("shell") is None
