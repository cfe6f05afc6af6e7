"""``paas run [APP] -- COMMAND [ARGS]...``: run a command in a one-off container of the app's
current release, attached to this process's stdin, stdout and stderr, and exit with its
exit code.

When stdin is a terminal (and ``-T`` is not given), the container gets a terminal too: the
local one is put in raw mode for the run (and always restored), its size is sent at the
start and whenever it changes (SIGWINCH, in the main thread), and ``TERM`` is passed on.
Otherwise stdout and stderr stay apart, and the end of stdin reaches the command.

The API answers ``POST /api/v1/apps/APP/run`` by switching the connection to the frames of
``paas.runtime.attach`` (see ``paas.web.api_run``), so this speaks HTTP/1.1 on a plain socket.
Connecting and the server's answer have a time limit; the run itself has none.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import socket
import sys
import termios
import threading
import tty
import urllib.error
import urllib.parse
from collections.abc import Iterator
from typing import Any

import click

from paas.cli.base import session
from paas.cli.client import Endpoint, _error_from
from paas.cli.target import RemoteUrl, Shape, Target, resolve
from paas.errors import InvalidInput, PaasError, PlatformError
from paas.model import CONFIG_KEY_RE
from paas.runtime.attach import (
    ERROR,
    EXIT,
    RESIZE,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    Relay,
    WindowSize,
    error_of,
    exit_code,
    frame,
)

UPGRADE = "paas-run"
HANDSHAKE_TIMEOUT = 60.0  # connecting, and the server preparing the run before it answers
MAX_HEAD = 64 * 1024
SEPARATOR = "--"


def _always(word: str) -> bool:
    return True


# Without "--", the first word is the app unless the checkout's remote names another app.
_WITHOUT_SEPARATOR = Shape("run", "-- COMMAND [ARGS]...", least=1, most=None, own_word=_always)
_BEFORE_SEPARATOR = Shape("run", "-- COMMAND [ARGS]...")


@click.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("-a", "--app", metavar="APP", help="The app (default: the checkout's paas remote).")
@click.option("-e", "--env", "env_items", multiple=True, metavar="KEY=VALUE",
              help="A variable for this run only, over the app's config (repeatable).")  # fmt: skip
@click.option("-T", "--no-tty", is_flag=True, help="No terminal, even when stdin is one.")
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="[APP] -- COMMAND [ARGS]...")
def run(app: str | None, env_items: tuple[str, ...], no_tty: bool, words: tuple[str, ...]) -> int:
    """Run a command in a one-off container of the app: paas run hello -- bash"""
    target = split_words(app, words, session().remote_url)
    env = parse_env(env_items)
    stdin, stdout, stderr = sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno()
    use_tty = not no_tty and os.isatty(stdin)
    body: dict[str, Any] = {"command": list(target.words), "tty": use_tty, "env": env}
    if use_tty:
        size = _terminal_size(stdin, stdout)
        body.update(rows=size.rows, cols=size.cols)
        if "TERM" in os.environ:
            env.setdefault("TERM", os.environ["TERM"])
    sys.stdout.flush()
    sys.stderr.flush()
    channel, received = open_run(_endpoint(), target.app, body)
    with channel, _raw_mode(stdin if use_tty else None):
        return attach(Relay(channel, received), stdin, stdout, stderr, use_tty)


def split_words(app: str | None, words: tuple[str, ...], remote_url: RemoteUrl | None) -> Target:
    """The app and the command: what follows ``--`` is the command; without ``--``, the app
    is told from the words as for other app commands (``paas.cli.target``)."""
    if SEPARATOR not in words:
        return resolve(app, words, _WITHOUT_SEPARATOR, remote_url)
    at = words.index(SEPARATOR)
    found = resolve(app, words[:at], _BEFORE_SEPARATOR, remote_url)
    if not words[at + 1 :]:
        raise InvalidInput("Give a command after --: paas run APP -- COMMAND [ARGS]...")
    return Target(found.app, words[at + 1 :])


def parse_env(items: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not CONFIG_KEY_RE.fullmatch(key):
            raise InvalidInput(f"Invalid -e {item!r}: use KEY=VALUE, for example -e DEBUG=1.")
        env[key] = value
    return env


def open_run(endpoint: Endpoint, app: str, body: dict[str, Any]) -> tuple[socket.socket, bytes]:
    """Ask the API to run ``body`` for ``app``; return the switched connection and the bytes
    already received after the answer's head. Any other answer raises its error."""
    url = urllib.parse.urlsplit(endpoint.url)
    if url.scheme != "http" or not url.hostname:
        raise InvalidInput(f"paas run talks to the API over http://, not {endpoint.url}.")
    payload = json.dumps(body).encode()
    path = f"{url.path.rstrip('/')}/api/v1/apps/{app}/run"
    headers = {
        "Host": url.netloc,
        "Authorization": f"Bearer {endpoint.token}",
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
        "Connection": "Upgrade",
        "Upgrade": UPGRADE,
    }
    if endpoint.actor is not None:
        headers["X-Paas-Actor"] = endpoint.actor
    head = "".join([f"POST {path} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items())])
    try:
        channel = socket.create_connection((url.hostname, url.port or 80), HANDSHAKE_TIMEOUT)
    except OSError as exc:
        raise PlatformError(
            f"Cannot reach the platform at {endpoint.url}: {exc}. Is it running?"
        ) from None
    try:
        channel.sendall(f"{head}\r\n".encode("latin-1") + payload)
        status, message, rest = _read_answer(channel)
        if status == 101 and message.get("Upgrade", "").lower() == UPGRADE:
            return channel, rest
        raise _error_from(
            urllib.error.HTTPError(endpoint.url + path, status, "", message, io.BytesIO(rest))
        )
    except OSError as exc:
        channel.close()
        raise PlatformError(f"The platform at {endpoint.url} broke off the run: {exc}.") from None
    except BaseException:
        channel.close()
        raise


def attach(relay: Relay, stdin: int, stdout: int, stderr: int, use_tty: bool) -> int:
    """Relay the local descriptors over the switched connection until the run's last frame;
    return its exit code (or raise the error it reports)."""
    outcome: list[int | PaasError] = []
    relay.forward(stdin, STDIN, STDIN_EOF)
    relay.deliver(STDOUT, stdout)
    relay.deliver(STDERR, stderr)
    relay.on(EXIT, lambda payload: outcome.append(exit_code(payload)))
    relay.on(ERROR, lambda payload: outcome.append(error_of(payload)))
    with _window_changes(relay, stdin, stdout) if use_tty else contextlib.nullcontext():
        relay.run(until=lambda: bool(outcome) and relay.delivered)
    if not outcome:
        raise PlatformError("The connection to the platform was lost before the command ended.")
    if isinstance(outcome[0], PaasError):
        raise outcome[0]
    return outcome[0]


def _endpoint() -> Endpoint:
    client = session().client()
    return client._e  # the endpoint the session's API client talks to


def _read_answer(channel: socket.socket) -> tuple[int, http.client.HTTPMessage, bytes]:
    """The status and headers of an HTTP answer, and what came after its head (for an error
    answer: its whole body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = channel.recv(65536)
        if not chunk or len(data) > MAX_HEAD:
            raise PlatformError("The platform's answer to the run request was cut off.")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status_line, _, header_lines = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise PlatformError(f"The platform answered the run request with {status_line[:80]!r}.")
    message = http.client.parse_headers(io.BytesIO(header_lines + b"\r\n\r\n"))
    status = int(parts[1])
    length = int(message.get("Content-Length", "0") or 0)
    while status != 101 and len(rest) < length and (chunk := channel.recv(65536)):
        rest += chunk
    return status, message, rest


def _terminal_size(*fds: int) -> WindowSize:
    for fd in fds:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            return WindowSize(max(size.lines, 1), max(size.columns, 1))
    return WindowSize(24, 80)


@contextlib.contextmanager
def _raw_mode(fd: int | None) -> Iterator[None]:
    """The terminal ``fd`` in raw mode (every key goes to the container as typed), restored
    on the way out whatever happens."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _window_changes(relay: Relay, *fds: int) -> Iterator[None]:
    """Send the terminal's size whenever it changes. Signals are only delivered to the main
    thread, so elsewhere only the initial size counts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)

    def on_signal(signum: int, frame_: object) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(wake_write, b"\0")

    def on_wake() -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(wake_read, 4096)
        relay.send(frame(RESIZE, _terminal_size(*fds).pack()))

    relay.watch(wake_read, on_wake)
    previous = signal.signal(signal.SIGWINCH, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
        os.close(wake_read)
        os.close(wake_write)
