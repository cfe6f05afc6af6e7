"""The agent's server: answers ``paas.host.Host`` requests on a Unix socket with a
``LocalHost``, one thread per connection. Only root and the platform's own user may connect
(the socket is 0660, group of that user; the peer's uid is checked too)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any, BinaryIO

from paas.agent.protocol import (
    Connection,
    error_message,
    line_to_json,
    replica_to_json,
    run_request_from_json,
)
from paas.applogs import ProcessFilter
from paas.errors import InvalidInput, PaasError, Unauthorized
from paas.host import LocalHost

log = logging.getLogger(__name__)

PEERCRED = struct.Struct("3i")  # pid, uid, gid
REFUSED = "Only root and the platform's user may ask the agent."


class Agent(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: LocalHost, path: Path, uids: Collection[int], gid: int) -> None:
        self.host = host
        self.uids = frozenset(uids)
        path.unlink(missing_ok=True)  # left by an agent that was killed
        super().__init__(str(path), _Handler)
        os.chown(path, 0, gid)
        path.chmod(0o660)


class _Handler(socketserver.BaseRequestHandler):
    server: Agent

    def handle(self) -> None:
        sock: socket.socket = self.request
        conn = Connection(sock)
        try:
            _pid, uid, _gid = PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
            )
            received = conn.receive()
            if received is None:
                return
            message, fds = received
            if uid not in self.server.uids:
                log.warning("refused a request from uid %d", uid)
                for fd in fds:
                    os.close(fd)
                conn.send(error_message(Unauthorized(REFUSED)))
                return
            try:
                value, attached = self._answer(conn, message, fds)
            except PaasError as exc:
                conn.send(error_message(exc))
                return
            with attached or contextlib.nullcontext():
                conn.send({"ok": value}, fds=[attached.fileno()] if attached else [])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the API went away (a log follower whose client left): nothing to answer
        except Exception:
            log.exception("the agent failed to answer")
            with contextlib.suppress(OSError):
                conn.send({"error": "error", "message": "The agent failed; see its log."})
        finally:
            conn.close()

    def _answer(
        self, conn: Connection, message: dict[str, Any], fds: list[int]
    ) -> tuple[Any, BinaryIO | None]:
        """The answer's value, and a file to pass along with it."""
        host, op = self.server.host, message.get("op")
        try:
            if op == "observe":
                return [replica_to_json(r) for r in host.observe(message.get("app"))], None
            if op == "recent_logs":
                lines = host.recent_logs(
                    message["app"], int(message["lines"]), ProcessFilter(message.get("process"))
                )
                return [line_to_json(line) for line in lines], None
            if op == "follow_logs":
                self._follow(conn, message)
                return None, None
            if op == "run":
                if len(fds) != 1:
                    raise InvalidInput("A run needs the client's connection.")
                with socket.socket(fileno=fds.pop()) as channel:
                    host.run(message["app"], run_request_from_json(message["request"]), channel)
                return None, None
            if op == "stacks":
                return host.stacks(), None
            if op == "build_stack":

                def out(text: str) -> None:
                    conn.send({"line": text})

                return list(host.build_stack(message["name"], out)), None
            if op == "collect_garbage":
                return host.collect_garbage(), None
            if op == "prepare_storage_dir":
                host.prepare_storage_dir(Path(message["path"]))
                return None, None
            if op == "write_authorized_keys":
                host.write_authorized_keys()
                return None, None
            if op == "export_image":
                return host.export_image(message["app"], message.get("version"))
            raise InvalidInput(f"The agent does not know {op!r}.")
        finally:
            for fd in fds:
                os.close(fd)

    def _follow(self, conn: Connection, message: dict[str, Any]) -> None:
        batches = self.server.host.follow_logs(
            message["app"], int(message["lines"]), ProcessFilter(message.get("process"))
        )
        try:
            for batch in batches:  # until the API closes the connection (a write then fails)
                conn.send({"batch": [line_to_json(line) for line in batch]})
        finally:
            batches.close()
