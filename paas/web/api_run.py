"""One-off runs in the JSON API: ``POST /api/v1/apps/<app>/run`` switches the connection to
the frames of ``paas.runtime.attach``.

``api_run`` is nested in ``paas.web.api.api``, so it is served under ``/api/v1`` behind the
same token check and with the same error answers. The request carries
``{"command": [...], "tty": bool, "rows": n, "cols": n, "env": {...}}`` and the headers
``Connection: Upgrade`` and ``Upgrade: paas-run``. An unknown app (404), an app without a
release (409) or a bad request (400) is answered in JSON as usual. Otherwise the answer is
``101 Switching Protocols``, written on the raw socket gunicorn hands over
(``environ["gunicorn.socket"]``); the client must not send anything after its request until it
has read that answer. Frames then flow both ways until the server's last frame (``EXIT`` or
``ERROR``), after which the server shuts the connection down both ways. The response the view
returns is therefore never sent: gunicorn's attempt to write it fails with EPIPE, which
gunicorn takes as a client that went away (logged at debug level) and closes the connection.

A run holds one of the API's worker threads for as long as it lasts.
"""

from __future__ import annotations

import socket
from typing import Any

from flask import Blueprint, Response, current_app, request

from paas.errors import InvalidInput, PaasError, PlatformError
from paas.model import validate_app_name
from paas.oneoff import RunRequest, release_of
from paas.runtime.attach import WindowSize, error_frame, send_last
from paas.services import Services
from paas.web.extensions import host

api_run = Blueprint("run", __name__)

UPGRADE = "paas-run"
SWITCHING = (
    f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: {UPGRADE}\r\nConnection: Upgrade\r\n\r\n"
).encode()


@api_run.post("/apps/<name>/run")
def run(name: str) -> Any:
    app = validate_app_name(name)
    run_request = parse_run_request(request.get_json(silent=True))
    services: Services = current_app.extensions["paas.services"]
    release_of(services.store, app)  # answered in JSON, before the switch
    connection = request.headers.get("Connection", "").lower()
    if request.headers.get("Upgrade", "").lower() != UPGRADE or "upgrade" not in connection:
        raise InvalidInput(
            f"A run switches protocols: send Connection: Upgrade and Upgrade: {UPGRADE} "
            "(paas run does)."
        )
    channel = request.environ.get("gunicorn.socket")
    if not isinstance(channel, socket.socket):
        raise PlatformError("This server cannot hand a connection over: serve the API by gunicorn.")
    channel.sendall(SWITCHING)
    try:
        host().run(app, run_request, channel)  # it ends with the last frame
    except PaasError as exc:  # the agent could not take the run, or went away
        send_last(channel, error_frame(exc))
    return Response(status=101)


def parse_run_request(body: Any) -> RunRequest:
    """The ``RunRequest`` of a JSON body; ``InvalidInput`` saying what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput('Send a JSON object: {"command": ["ls", "-l"], "tty": false}.')
    command, tty, env = body.get("command"), body.get("tty", False), body.get("env", {})
    rows, cols = body.get("rows"), body.get("cols")
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        raise InvalidInput('"command" must be a list of strings: ["sh", "-c", "echo hi"].')
    if not isinstance(tty, bool):
        raise InvalidInput('"tty" must be true or false.')
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise InvalidInput('"env" must be an object of text values: {"DEBUG": "1"}.')
    size = None
    if rows is not None or cols is not None:
        if type(rows) is not int or type(cols) is not int:  # bool is not taken for a number
            raise InvalidInput('"rows" and "cols" must both be whole numbers.')
        size = WindowSize(rows, cols)
    return RunRequest(command=tuple(command), tty=tty, size=size, env=env)
