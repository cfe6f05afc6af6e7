"""The static buildpack's web server: serves STATIC_ROOT (default /app) on 0.0.0.0:$PORT.

It is the standard library's ``http.server`` (so it needs nothing but the stack's python3)
with the defaults that make that module a poor server changed:

- HTTP/1.1 keep-alive with Nagle's algorithm off: with keep-alive and Nagle on, each response
  waits about 40 ms for the client's delayed ACK;
- a listen backlog of 128 instead of 5: a burst of new connections otherwise overflows it and
  the dropped SYNs are retried only after 1 s;
- no reverse DNS lookup of the listening address at start (``HTTPServer.server_bind`` calls
  ``socket.getfqdn``, which waits for a resolver a container may not reach);
- a thread per connection, and an idle connection is closed after 60 s;
- no directory listings, and nothing whose path has a dot-name (``.profile.d``, ``.static``).

Each request is logged on stdout; clients that drop their connection are not errors.
"""

from __future__ import annotations

import os
import socketserver
import sys
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BACKLOG = 128
IDLE_TIMEOUT = 60.0


class StaticHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT

    def send_head(self) -> Any:
        path = urllib.parse.unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        if any(part.startswith(".") for part in path.split("/")):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(HTTPStatus.NOT_FOUND)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


class StaticServer(ThreadingHTTPServer):
    request_queue_size = BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's would look up the host's name
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def main() -> None:
    root = os.environ.get("STATIC_ROOT", "/app")
    port = int(os.environ["PORT"])
    with StaticServer(("0.0.0.0", port), partial(StaticHandler, directory=root)) as server:
        print(f"Serving {root} on port {port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
