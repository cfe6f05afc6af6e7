"""The switch to run frames under real gunicorn (gthread, as the platform runs it), with a
stand-in for the container that echoes stdin: the 101 answer, frames both ways, nothing
from gunicorn after the last frame, and the CLI's ``run`` against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from paas.errors import NotFound
from paas.runtime.attach import (
    EXIT,
    STDIN,
    STDIN_EOF,
    STDOUT,
    FrameReader,
    Relay,
    exit_code,
    exit_frame,
    frame,
    send_last,
)
from paas.web.api import register_errors
from paas.web.api_run import api_run
from tests.e2e.platform_fixture import REPO, VENV_BIN, free_port

TIMEOUT = 30.0


class Releases:
    """Stands in for the store: every app but ``missing`` has a release."""

    def get_app(self, app: str) -> None:
        if app == "missing":
            raise NotFound(f'App "{app}" not found.')

    def current_release(self, app: str) -> str:
        return "v1"


class EchoHost:
    """Stands in for the agent's run: echoes stdin to stdout, exits with the number of words."""

    def run(self, app: str, request: Any, channel: socket.socket) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # as the relay needs of what it writes to
        relay = Relay(channel)
        relay.deliver(STDIN, write_end, STDIN_EOF, lambda: os.close(write_end))
        relay.forward(read_end, STDOUT)
        relay.run(until=lambda: relay.sources_done)
        os.close(read_end)
        send_last(channel, exit_frame(len(request.command)))


def make_app() -> Flask:
    app = Flask(__name__)
    app.extensions["paas.services"] = SimpleNamespace(store=Releases())
    app.extensions["paas.host"] = EchoHost()
    app.register_blueprint(api_run, url_prefix="/api/v1")
    register_errors(app)
    return app


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-k", "gthread", "--threads", "8", "-w", "2",
             "--timeout", "0", "--log-level", "debug", "-b", f"127.0.0.1:{port}",
             f"{__name__}:make_app()"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _request(body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (
        b"POST /api/v1/apps/hello/run HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: paas-run\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )


def test_the_connection_switches_and_gunicorn_adds_nothing(server: tuple[str, Path]) -> None:
    url, log = server
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), TIMEOUT) as sock:
        sock.sendall(_request({"command": ["a", "b", "c"]}))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, rest = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 ") and b"Upgrade: paas-run" in head, head
        sock.sendall(frame(STDIN, b"ping ") + frame(STDIN, b"pong") + frame(STDIN_EOF))
        while chunk := sock.recv(4096):
            rest += chunk
    frames = FrameReader().feed(rest)
    assert b"".join(p for k, p in frames if k == STDOUT) == b"ping pong"
    assert frames[-1][0] == EXIT and exit_code(frames[-1][1]) == 3
    assert len(b"".join(frame(k, p) for k, p in frames)) == len(rest)  # nothing after EXIT
    time.sleep(0.2)
    text = log.read_text()
    assert "Traceback" not in text and "[ERROR]" not in text, text


def test_the_cli_runs_against_it(server: tuple[str, Path]) -> None:
    url, _ = server
    env = {**os.environ, "PAAS_API_URL": url, "PAAS_TOKEN": "unused"}
    cli = [sys.executable, "-m", "paas.cli.main", "run"]
    done = subprocess.run(
        [*cli, "hello", "--", "cat", "-"], input=b"x" * 500_000, env=env, cwd=REPO,
        capture_output=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (2, b"")
    assert done.stdout == b"x" * 500_000
    missing = subprocess.run(
        [*cli, "missing", "--", "true"], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert missing.returncode == 3 and "not found" in missing.stderr, missing


def test_the_cli_runs_in_process_as_the_ssh_commands_run_it(server: tuple[str, Path]) -> None:
    url, _ = server
    script = (
        "import sys\n"
        "from paas.cli.base import Session\n"
        "from paas.cli.client import ApiClient, Endpoint\n"
        "from paas.cli.main import run\n"
        f"endpoint = Endpoint({url!r}, 'relay', actor='dev')\n"
        "session = Session(lambda: ApiClient(endpoint), remote_url=None, interactive=False)\n"
        "sys.exit(run(['run', 'hello', '--', 'cat'], session))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=b"over ssh\n", cwd=REPO, capture_output=True,
        timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (1, b"over ssh\n", b"")
