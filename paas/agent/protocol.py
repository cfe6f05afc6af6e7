"""The agent's wire format: one JSON object per line over a Unix stream socket, with open
files passed alongside a line (SCM_RIGHTS): a client's connection for a one-off run, an
exported image for the API to send.

A request is ``{"op": NAME, ...}``. Answers are lines of ``{"ok": VALUE}`` (the last one),
``{"error": KIND, "message": TEXT}`` (a ``PaasError``, rebuilt by the client), or, before
the last, ``{"line": TEXT}`` (output of a stack build) and ``{"batch": [...]}`` (logs being
followed). This module also turns the values that cross it to JSON and back.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from paas.applogs import LogLine
from paas.errors import (
    BuildFailed,
    Conflict,
    DeployFailed,
    InvalidInput,
    NotFound,
    PaasError,
    PlatformError,
    Unauthorized,
)
from paas.model import Replica, ReplicaKey, ReplicaState
from paas.oneoff import RunRequest
from paas.runtime.attach import WindowSize

CHUNK = 1 << 16
MAX_FDS = 4
MAX_LINE = 8 << 20  # a request or an answer longer than this is refused

ERRORS: dict[str, type[PaasError]] = {
    cls.kind: cls
    for cls in (InvalidInput, Unauthorized, NotFound, Conflict, BuildFailed, DeployFailed)
}


class Connection:
    """Lines (and passed files) over one connected Unix stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""
        self._fds: list[int] = []

    def send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if fds:
            sent = socket.send_fds(self.sock, [data], list(fds))
            data = data[sent:]
        self.sock.sendall(data)

    def receive(self) -> tuple[dict[str, Any], list[int]] | None:
        """The next line and the files that came with it; None when the peer closed."""
        while b"\n" not in self._buffer:
            data, fds, _flags, _address = socket.recv_fds(self.sock, CHUNK, MAX_FDS)
            self._fds.extend(fds)
            if not data:
                if self._buffer:
                    raise PlatformError("The agent's peer closed the connection mid-line.")
                return None
            self._buffer += data
            if len(self._buffer) > MAX_LINE:
                raise PlatformError("A line from the agent's peer is too long.")
        line, _, self._buffer = self._buffer.partition(b"\n")
        fds, self._fds = self._fds, []
        message = json.loads(line)
        if not isinstance(message, dict):
            raise PlatformError("The agent's peer sent something other than a JSON object.")
        return message, fds

    def close(self) -> None:
        for fd in self._fds:
            _close_fd(fd)
        self._fds = []
        self.sock.close()


def error_message(exc: PaasError) -> dict[str, Any]:
    return {"error": exc.kind, "message": exc.message}


def raise_error(message: dict[str, Any]) -> None:
    """Raise the ``PaasError`` an ``{"error": ...}`` answer stands for."""
    cls = ERRORS.get(str(message.get("error")), PlatformError)
    raise cls(str(message.get("message", "The agent failed.")))


def replica_to_json(replica: Replica) -> dict[str, Any]:
    return asdict(replica)


def replica_from_json(data: dict[str, Any]) -> Replica:
    return Replica(
        **{**data, "key": ReplicaKey(**data["key"]), "state": ReplicaState(data["state"])}
    )


def line_to_json(line: LogLine) -> dict[str, Any]:
    return asdict(line)


def line_from_json(data: dict[str, Any]) -> LogLine:
    return LogLine(**data)


def run_request_to_json(request: RunRequest) -> dict[str, Any]:
    return asdict(request)


def run_request_from_json(data: dict[str, Any]) -> RunRequest:
    size = data.get("size")
    return RunRequest(
        command=tuple(data["command"]),
        tty=bool(data["tty"]),
        size=None if size is None else WindowSize(**size),
        env=dict(data["env"]),
    )


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        socket.close(fd)
