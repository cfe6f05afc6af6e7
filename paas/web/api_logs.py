"""Logs and builds in the JSON API: the merged log of an app, as JSON or followed as
server-sent events, and the builds of an app with their output.

``api_logs`` is nested in ``paas.web.api.api``, so it is served under ``/api/v1`` behind the
same token check and with the same error answers.

A followed log (``?follow=1``) is a ``text/event-stream``: a ``data: LINE`` event per line,
the last ``lines`` lines first, then new ones as they come, and a ``: keepalive`` comment after
``HEARTBEAT`` seconds without a line. The response holds a worker thread while the client
reads; a client that went away is only noticed when a write fails, which the heartbeats make
happen within about two of them. The worker then closes the response, which closes the
follow and its files.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request

from paas.applogs import LogLine, ProcessFilter
from paas.buildlogs import BuildLogs
from paas.errors import InvalidInput
from paas.model import validate_app_name
from paas.services import Services
from paas.state.store import Build
from paas.web.extensions import host

api_logs = Blueprint("logs", __name__)

DEFAULT_LINES = 100
MAX_LINES = 10000
HEARTBEAT = 15.0


def _builds() -> BuildLogs:
    services: Services = current_app.extensions["paas.services"]
    return BuildLogs(services.store, services.logs)


def _lines(raw: str, least: int) -> int:
    if not raw.isdecimal() or not least <= int(raw) <= MAX_LINES:
        raise InvalidInput(f"lines must be a number from {least} to {MAX_LINES}.")
    return int(raw)


def _build_json(build: Build) -> dict[str, Any]:
    return {
        "id": build.id,
        "rev": build.rev,
        "status": build.status,
        "release": None if build.release is None else f"v{build.release}",
        "created_at": build.created_at,
        "message": build.message,
        "actor": build.actor,
    }


@api_logs.get("/apps/<name>/logs")
def logs(name: str) -> Any:
    app = validate_app_name(name)
    follow = request.args.get("follow", "0") not in ("", "0", "false")
    lines = _lines(request.args.get("lines", str(DEFAULT_LINES)), 0 if follow else 1)
    process = ProcessFilter.parse(request.args.get("process"))
    if not follow:
        return {"lines": [line.line for line in host().recent_logs(app, lines, process)]}
    batches = host().follow_logs(app, lines, process)
    return Response(
        event_stream(batches, HEARTBEAT),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def event_stream(batches: Generator[list[LogLine], None, None], heartbeat: float) -> Iterator[str]:
    """Server-sent events of the batches; a keepalive comment when ``heartbeat`` seconds
    passed without a line (and at once, when there is nothing to show first, so that the
    client gets the headers)."""
    last_write = -heartbeat
    try:
        for batch in batches:
            now = time.monotonic()
            if batch:
                yield "".join(f"data: {line.line}\n\n" for line in batch)
                last_write = now
            elif now - last_write >= heartbeat:
                yield ": keepalive\n\n"
                last_write = now
    finally:
        batches.close()


@api_logs.get("/apps/<name>/builds")
def builds(name: str) -> Any:
    return {"builds": [_build_json(b) for b in _builds().builds(validate_app_name(name))]}


@api_logs.get("/apps/<name>/builds/<ref>/output")
def build_output(name: str, ref: str) -> Any:
    output = _builds().build_output(validate_app_name(name), ref)
    return {
        "build": _build_json(output.build),
        "status": output.build.status,
        "lines": list(output.lines),
        "expired": output.expired,
    }
