"""Foreground containers attached to a remote client: the container's stdin, stdout and
stderr (or its terminal) relayed over a socket as frames.

The wire protocol, spoken both ways once the HTTP connection has switched protocols: frames
of one byte of kind, four bytes of payload length (big-endian) and the payload.

* client to server: ``STDIN`` (bytes), ``STDIN_EOF`` (empty), ``RESIZE`` (rows, cols: two
  unsigned 16-bit big-endian integers);
* server to client: ``STDOUT`` and ``STDERR`` (bytes), then exactly one of ``EXIT`` (the exit
  code, a signed 32-bit big-endian integer) or ``ERROR`` (JSON ``{"error", "message"}``),
  after which the server closes the connection.

With a terminal, stdout and stderr are one stream (``STDOUT``), and stdin has no end of its
own: a terminal's end of input is a typed Ctrl-D, so ``STDIN_EOF`` is ignored.

The container runs under a foreground ``runc run``. With a terminal (``spec.terminal``), runc
allocates the container's pty and copies it to its own stdio, which is here the slave of a
pty pair whose master is relayed; runc runs in a session of its own with that slave as its
controlling terminal, so a window size set on the master reaches runc as SIGWINCH (and runc
resizes the container's pty), and a hang-up of the master reaches runc as SIGHUP, which runc
passes on to the container. Without a terminal, runc's stdio are three pipes.

An attached run has no time limit: it lasts as long as its command. It ends early when the
client goes away (the container is killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import termios
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paas.errors import InvalidInput, PaasError, PlatformError
from paas.runtime.runtime import RUNC_TIMEOUT, Runtime
from paas.runtime.spec import ContainerSpec

STDIN, STDIN_EOF, RESIZE = 1, 2, 3
STDOUT, STDERR, EXIT, ERROR = 11, 12, 13, 14
MAX_PAYLOAD = 1 << 20
CHUNK = 65536
BUFFER_LIMIT = 1 << 18  # bytes waiting for one reader before its writer is no longer read
SEND_TIMEOUT = 10.0  # for the last frame, once the container is gone
_HEADER = struct.Struct("!BI")
_SIZE = struct.Struct("!HH")
_CODE = struct.Struct("!i")
_READ_EVENTS = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL
_WRITE_EVENTS = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL


class ProtocolError(InvalidInput):
    """The peer sent bytes that are not frames of this protocol."""


@dataclass(frozen=True)
class WindowSize:
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if not (0 < self.rows < 65536 and 0 < self.cols < 65536):
            raise InvalidInput(f"Invalid window size {self.rows}x{self.cols}: use 1 to 65535.")

    def pack(self) -> bytes:
        return _SIZE.pack(self.rows, self.cols)

    @classmethod
    def unpack(cls, payload: bytes) -> WindowSize:
        if len(payload) != _SIZE.size:
            raise ProtocolError("A window size frame must hold 4 bytes.")
        return cls(*_SIZE.unpack(payload))


DEFAULT_SIZE = WindowSize(24, 80)


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def exit_frame(code: int) -> bytes:
    return frame(EXIT, _CODE.pack(code))


def error_frame(exc: PaasError) -> bytes:
    return frame(ERROR, json.dumps({"error": exc.kind, "message": exc.message}).encode())


def exit_code(payload: bytes) -> int:
    if len(payload) != _CODE.size:
        raise ProtocolError("An exit frame must hold 4 bytes.")
    code: int = _CODE.unpack(payload)[0]
    return code


def error_of(payload: bytes) -> PaasError:
    """The error an ``ERROR`` frame reports, of the ``PaasError`` class of its kind."""
    try:
        data: Any = json.loads(payload)
        kind, message = str(data["error"]), str(data["message"])
    except (ValueError, TypeError, KeyError):
        raise ProtocolError("An error frame must hold a JSON object with a message.") from None
    by_kind = {cls.kind: cls for cls in PaasError.__subclasses__()}
    return by_kind.get(kind, PlatformError)(message)


def send_last(channel: socket.socket, data: bytes) -> None:
    """Send the final frame and close the connection both ways; a client that has gone away
    is not an error (nobody is left to tell)."""
    with contextlib.suppress(OSError):
        channel.settimeout(SEND_TIMEOUT)
        channel.sendall(data)
    with contextlib.suppress(OSError):
        channel.shutdown(socket.SHUT_RDWR)


class FrameReader:
    """Splits a byte stream into ``(kind, payload)`` frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            if length > MAX_PAYLOAD:
                raise ProtocolError(f"A frame of {length} bytes is over {MAX_PAYLOAD}.")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return frames


@dataclass
class _Sink:
    fd: int
    on_end: Callable[[], None] | None  # called once an end frame's bytes are all written
    buffer: bytearray = field(default_factory=bytearray)
    ending: bool = False
    broken: bool = False


class Relay:
    """One event loop moving bytes between plain file descriptors and a socket of frames.

    ``forward`` reads a descriptor into frames of a kind; ``deliver`` writes the payloads of a
    kind's frames to a descriptor; ``on`` handles any other kind. Neither direction waits on
    the other: bytes a slow reader has not taken yet are buffered, and past ``BUFFER_LIMIT``
    whatever feeds that buffer is not read until it drains. The relay never closes the
    descriptors it is given; ``run`` returns once ``until()`` holds or the socket has closed.
    """

    def __init__(self, channel: socket.socket, received: bytes = b"") -> None:
        channel.setblocking(False)
        self._sock = channel
        self._reader = FrameReader()
        self._inbox = self._reader.feed(received)
        self._outbox = bytearray()
        self._sources: dict[int, tuple[int, int | None]] = {}
        self._sinks: dict[int, _Sink] = {}
        self._handlers: dict[int, Callable[[bytes], None]] = {}
        self._watches: dict[int, Callable[[], None]] = {}
        self.closed = False  # the socket has reached its end or failed

    def forward(self, fd: int, kind: int, end_kind: int | None = None) -> None:
        """Send what ``fd`` yields as frames of ``kind``; at its end, a frame of ``end_kind``."""
        self._sources[fd] = (kind, end_kind)

    def deliver(
        self, kind: int, fd: int, end_kind: int | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """Write payloads of ``kind`` frames to ``fd``; after an ``end_kind`` frame, call
        ``on_end`` once all of them are written. A blocking ``fd`` stalls the whole relay
        while its reader does not read: make it non-blocking unless that reader is
        independent of this relay (a terminal, a file)."""
        sink = _Sink(fd, on_end)
        self._sinks[kind] = sink
        if end_kind is not None:
            self._handlers[end_kind] = lambda _: self._end(sink)

    def on(self, kind: int, handler: Callable[[bytes], None]) -> None:
        self._handlers[kind] = handler

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``fd`` is readable (it must read what is there)."""
        self._watches[fd] = callback

    def send(self, data: bytes) -> None:
        """Queue encoded frames for the socket."""
        if not self.closed:
            self._outbox += data

    @property
    def sources_done(self) -> bool:
        """Every forwarded descriptor has reached its end and its bytes have been sent."""
        return not self._sources and not self._outbox

    @property
    def delivered(self) -> bool:
        """Every payload received so far has been written (or its reader has gone)."""
        return not any(sink.buffer for sink in self._sinks.values())

    def run(self, until: Callable[[], bool]) -> None:
        self._dispatch()
        while not self.closed and not until():
            reads, writes = self._interest()
            poller = select.poll()
            for fd in reads | writes:
                poller.register(fd, (select.POLLIN if fd in reads else 0)
                                | (select.POLLOUT if fd in writes else 0))  # fmt: skip
            for fd, events in poller.poll():
                if fd in writes and events & _WRITE_EVENTS:
                    self._writable(fd)
                if fd in reads and events & _READ_EVENTS:
                    self._readable(fd)

    # --- internals ----------------------------------------------------------------------------

    def _interest(self) -> tuple[set[int], set[int]]:
        sock = self._sock.fileno()
        reads, writes = set(self._watches), set()
        if len(self._outbox) < BUFFER_LIMIT:
            reads |= set(self._sources)
        if self._outbox:
            writes.add(sock)
        if all(len(s.buffer) < BUFFER_LIMIT for s in self._sinks.values()):
            reads.add(sock)
        writes |= {s.fd for s in self._sinks.values() if s.buffer and not s.broken}
        return reads, writes

    def _readable(self, fd: int) -> None:
        if fd == self._sock.fileno():
            self._receive()
        elif fd in self._watches:
            self._watches[fd]()
        elif fd in self._sources:
            self._read_source(fd)

    def _writable(self, fd: int) -> None:
        if fd == self._sock.fileno():
            try:
                del self._outbox[: self._sock.send(self._outbox)]
            except BlockingIOError:
                pass
            except OSError:
                self._hang_up()
            return
        for sink in self._sinks.values():
            if sink.fd == fd and sink.buffer and not sink.broken:
                self._write_sink(sink)

    def _receive(self) -> None:
        try:
            data = self._sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._hang_up()
            return
        self._inbox += self._reader.feed(data)
        self._dispatch()

    def _dispatch(self) -> None:
        inbox, self._inbox = self._inbox, []
        for kind, payload in inbox:
            sink = self._sinks.get(kind)
            if sink is not None:
                if not sink.broken and not sink.ending:
                    sink.buffer += payload
                    self._write_sink(sink)
            elif kind in self._handlers:
                self._handlers[kind](payload)
            else:
                raise ProtocolError(f"Unexpected frame of kind {kind}.")

    def _read_source(self, fd: int) -> None:
        kind, end_kind = self._sources[fd]
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: a pty master whose slave is closed
            data = b""
        if data:
            self.send(frame(kind, data))
            return
        del self._sources[fd]
        if end_kind is not None:
            self.send(frame(end_kind))

    def _write_sink(self, sink: _Sink) -> None:
        try:
            del sink.buffer[: os.write(sink.fd, sink.buffer[:CHUNK])]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: the reader has gone; what it did not take is dropped
            sink.broken = True
            sink.buffer.clear()
        if sink.ending and not sink.buffer:
            self._finish(sink)

    def _end(self, sink: _Sink) -> None:
        sink.ending = True
        if not sink.buffer:
            self._finish(sink)

    def _finish(self, sink: _Sink) -> None:
        if sink.on_end is not None:
            on_end, sink.on_end = sink.on_end, None
            on_end()

    def _hang_up(self) -> None:
        self.closed = True
        self._outbox.clear()


# --- the server side: a container under a foreground runc ----------------------------------


class _Stdio:
    """runc's stdio: a pty pair (the slave for runc, the master relayed) or three pipes.
    Owns every descriptor it opens; each is closed once, by name."""

    def __init__(self, terminal: bool, size: WindowSize) -> None:
        self.terminal = terminal
        self._fds: dict[str, int] = {}
        try:
            if terminal:
                self._fds["master"], self._fds["slave"] = os.openpty()
                termios.tcsetwinsize(self._fds["master"], (size.rows, size.cols))
            else:
                self._fds["child_in"], self._fds["in"] = os.pipe()
                self._fds["out"], self._fds["child_out"] = os.pipe()
                self._fds["err"], self._fds["child_err"] = os.pipe()
            os.set_blocking(self.input, False)
        except BaseException:
            self.close_all()
            raise

    @property
    def child(self) -> tuple[int, int, int]:
        """runc's stdin, stdout and stderr."""
        f = self._fds
        if self.terminal:
            return f["slave"], f["slave"], f["slave"]
        return f["child_in"], f["child_out"], f["child_err"]

    @property
    def input(self) -> int:
        return self._fds["master" if self.terminal else "in"]

    @property
    def outputs(self) -> dict[int, int]:
        """Descriptor to read -> the kind of frame its bytes go out as."""
        f = self._fds
        if self.terminal:
            return {f["master"]: STDOUT}
        return {f["out"]: STDOUT, f["err"]: STDERR}

    def close_child_ends(self) -> None:
        for name in ("slave", "child_in", "child_out", "child_err"):
            self._close(name)

    def end_input(self) -> None:
        """The client's stdin has ended: so does the container's (a terminal has no end)."""
        self._close("in")

    def resize(self, payload: bytes) -> None:
        if self.terminal:
            size = WindowSize.unpack(payload)
            termios.tcsetwinsize(self._fds["master"], (size.rows, size.cols))

    def close_all(self) -> None:
        for name in list(self._fds):
            self._close(name)

    def _close(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)


def run_attached(
    runtime: Runtime, spec: ContainerSpec, channel: socket.socket, size: WindowSize | None = None
) -> int:
    """Run ``spec`` under a foreground ``runc run``, its stdio relayed over ``channel``, and
    return its exit code once the container is removed (always, as ``Runtime.run`` does).

    ``size`` is the terminal's initial size with ``spec.terminal``. If the client goes away,
    the container is killed. The caller sends the final frame (``EXIT`` or ``ERROR``).
    """
    directory = runtime._prepare(spec)  # the bundle, as for any container of this runtime
    stdio: _Stdio | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        stdio = _Stdio(spec.terminal, size or DEFAULT_SIZE)
        runc = [runtime.runc, "--root", str(runtime.runc_root), "run", "--bundle",
                str(directory), spec.id]  # fmt: skip
        # With a terminal: a session of its own, the pty slave its controlling terminal.
        argv = ["setsid", "--ctty", "--wait", *runc] if spec.terminal else runc
        stdin, stdout, stderr = stdio.child
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr)
        stdio.close_child_ends()
        relay = Relay(channel)
        for fd, kind in stdio.outputs.items():
            relay.forward(fd, kind)
        relay.deliver(STDIN, stdio.input, STDIN_EOF, stdio.end_input)
        relay.on(RESIZE, stdio.resize)
        relay.run(until=lambda: relay.sources_done)
        if relay.closed:
            runtime.remove(spec.id)  # the client has gone: kill the container (runc then ends)
        return proc.wait(timeout=RUNC_TIMEOUT)  # its stdio has ended: runc is ending
    except (OSError, subprocess.SubprocessError) as exc:
        raise PlatformError(f"Running container {spec.id} failed: {exc}") from exc
    finally:
        if stdio is not None:
            stdio.close_all()  # runc, if still there, sees its stdio go (EPIPE, hang-up)
        if proc is not None and proc.poll() is None:
            runtime.remove(spec.id)
            proc.kill()
            proc.wait()
        runtime.remove(spec.id)
