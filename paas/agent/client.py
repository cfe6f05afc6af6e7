"""``paas.host.Host`` for the unprivileged API: every call is one connection to the agent."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from paas.agent.protocol import (
    Connection,
    line_from_json,
    raise_error,
    replica_from_json,
    run_request_to_json,
)
from paas.applogs import LogLine, ProcessFilter
from paas.errors import PlatformError
from paas.model import Replica
from paas.oneoff import RunRequest

TIMEOUT = 60.0  # for answers that come at once; stack builds, runs and follows have none


class AgentClient:
    def __init__(self, path: Path, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def observe(self, app: str | None) -> list[Replica]:
        return [replica_from_json(r) for r in self._call({"op": "observe", "app": app})]

    def recent_logs(self, app: str, lines: int, process: ProcessFilter) -> list[LogLine]:
        message = {"op": "recent_logs", "app": app, "lines": lines, "process": process.process}
        return [line_from_json(line) for line in self._call(message)]

    def follow_logs(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        conn = self._connect(self.timeout)
        try:
            message = {"op": "follow_logs", "app": app, "lines": lines, "process": process.process}
            self._send(conn, message)
            first = self._next(conn)  # an unknown app fails here, before the response starts
        except BaseException:
            conn.close()
            raise
        return self._batches(conn, first)

    def run(self, app: str, request: RunRequest, channel: socket.socket) -> None:
        conn = self._connect(None)
        try:
            message = {"op": "run", "app": app, "request": run_request_to_json(request)}
            self._send(conn, message, fds=[channel.fileno()])
            self._next(conn)
        finally:
            conn.close()

    def stacks(self) -> dict[str, dict[str, Any]]:
        stacks: dict[str, dict[str, Any]] = self._call({"op": "stacks"})
        return stacks

    def build_stack(self, name: str, out: Callable[[str], None]) -> tuple[str, ...]:
        return tuple(self._call({"op": "build_stack", "name": name}, out=out, unbounded=True))

    def collect_garbage(self) -> list[str]:
        removed: list[str] = self._call({"op": "collect_garbage"}, unbounded=True)
        return removed

    def export_image(self, app: str, version: int | None) -> tuple[int, BinaryIO]:
        conn = self._connect(None)
        try:
            self._send(conn, {"op": "export_image", "app": app, "version": version})
            message, fds = self._receive(conn)
            if "ok" not in message or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise_error(message)
                raise PlatformError("The agent sent no image.")
            return int(message["ok"]), os.fdopen(fds[0], "rb")
        finally:
            conn.close()

    def prepare_storage_dir(self, path: Path) -> None:
        self._call({"op": "prepare_storage_dir", "path": str(path)})

    def write_authorized_keys(self) -> None:
        self._call({"op": "write_authorized_keys"})

    # --- the connection -------------------------------------------------------------------------

    @staticmethod
    def _send(conn: Connection, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        try:
            conn.send(message, fds)
        except OSError as exc:
            raise PlatformError(f"Lost the platform's agent: {exc.strerror}.") from None

    def _connect(self, timeout: float | None) -> Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise PlatformError(
                    f"This user may not reach the platform's agent at {self.path}: run the API "
                    "as the platform's user (paas-platform web does)."
                ) from None
            raise PlatformError(
                f"The platform's agent does not answer at {self.path} ({exc.strerror}): "
                "start it (paas-platform agent)."
            ) from None
        return Connection(sock)

    def _call(
        self,
        message: dict[str, Any],
        out: Callable[[str], None] | None = None,
        unbounded: bool = False,
    ) -> Any:
        conn = self._connect(None if unbounded else self.timeout)
        try:
            self._send(conn, message)
            while True:
                answer = self._next(conn)
                if "line" in answer and out is not None:
                    out(str(answer["line"]))
                    continue
                return answer.get("ok")
        finally:
            conn.close()

    def _batches(
        self, conn: Connection, first: dict[str, Any]
    ) -> Generator[list[LogLine], None, None]:
        try:
            answer = first
            while "batch" in answer:
                yield [line_from_json(line) for line in answer["batch"]]
                answer = self._next(conn)
        finally:
            conn.close()

    def _next(self, conn: Connection) -> dict[str, Any]:
        message, fds = self._receive(conn)
        for fd in fds:
            os.close(fd)
        if "error" in message:
            raise_error(message)
        return message

    @staticmethod
    def _receive(conn: Connection) -> tuple[dict[str, Any], list[int]]:
        try:
            received = conn.receive()
        except TimeoutError:
            raise PlatformError("The platform's agent did not answer in time.") from None
        except OSError as exc:
            raise PlatformError(f"Lost the platform's agent: {exc.strerror}.") from None
        if received is None:
            raise PlatformError("The platform's agent closed the connection; see its log.")
        return received
