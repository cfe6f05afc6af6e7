"""One-off runs without runc: request validation, the frame codec and relay, the API's
answers before the switch, and how the CLI reads its words."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from paas.cli.run import parse_env, split_words
from paas.errors import Conflict, InvalidInput, NotFound, PlatformError
from paas.oneoff import RunRequest, release_of
from paas.runtime.attach import (
    EXIT,
    STDIN,
    STDIN_EOF,
    STDOUT,
    FrameReader,
    ProtocolError,
    Relay,
    WindowSize,
    error_frame,
    error_of,
    exit_code,
    exit_frame,
    frame,
)
from paas.web.api import register_errors
from paas.web.api_run import api_run, parse_run_request
from tests.unit.test_runtime_bundle import render, spec


def test_frames_survive_any_split() -> None:
    data = frame(STDOUT, b"hello") + exit_frame(-3) + frame(STDIN_EOF)
    reader = FrameReader()
    got = [f for i in range(len(data)) for f in reader.feed(data[i : i + 1])]
    assert [k for k, _ in got] == [STDOUT, EXIT, STDIN_EOF]
    assert got[0][1] == b"hello" and exit_code(got[1][1]) == -3


def test_oversized_frames_and_bad_payloads_are_refused() -> None:
    with pytest.raises(ProtocolError):
        FrameReader().feed(bytes([STDOUT]) + (1 << 30).to_bytes(4, "big"))
    with pytest.raises(ProtocolError):
        exit_code(b"\0")
    with pytest.raises(ProtocolError):
        WindowSize.unpack(b"\0\1")
    with pytest.raises(InvalidInput):
        WindowSize(0, 80)


def test_errors_travel_with_their_kind() -> None:
    ((_, payload),) = FrameReader().feed(error_frame(NotFound("no such app")))
    error = error_of(payload)
    assert isinstance(error, NotFound) and error.message == "no such app"
    assert isinstance(error_of(b'{"error": "odd", "message": "m"}'), PlatformError)


def test_relay_moves_stdin_to_a_descriptor_and_output_back() -> None:
    ours, theirs = socket.socketpair()
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    ended: list[bool] = []
    try:
        relay = Relay(theirs, received=frame(STDIN, b"early "))
        relay.deliver(STDIN, in_write, STDIN_EOF, lambda: ended.append(True))
        relay.forward(out_read, STDOUT)
        ours.sendall(frame(STDIN, b"late") + frame(STDIN_EOF))
        os.write(out_write, b"output")
        os.close(out_write)
        out_write = -1
        relay.run(until=lambda: relay.sources_done and bool(ended))
        assert os.read(in_read, 100) == b"early late" and ended == [True]
        ours.settimeout(5)
        assert FrameReader().feed(ours.recv(100)) == [(STDOUT, b"output")]
    finally:
        for fd in (in_read, in_write, out_read, out_write):
            if fd >= 0:
                os.close(fd)
        ours.close()
        theirs.close()


def test_relay_stops_when_the_peer_hangs_up() -> None:
    ours, theirs = socket.socketpair()
    ours.close()
    relay = Relay(theirs)
    relay.run(until=lambda: False)
    assert relay.closed
    theirs.close()


def test_a_terminal_is_asked_of_runc_only_when_wanted() -> None:
    assert render(spec(terminal=True))["process"]["terminal"] is True
    assert render(spec())["process"]["terminal"] is False


def test_run_requests_are_checked() -> None:
    assert RunRequest(("ls", "-l")).command == ("ls", "-l")
    for bad in [(), ("",), ("a\0b",), ("x" * 70_000,)]:
        with pytest.raises(InvalidInput):
            RunRequest(bad)
    with pytest.raises(InvalidInput, match="set by the platform"):
        RunRequest(("env",), env={"DYNO": "web.1"})
    with pytest.raises(InvalidInput, match="Invalid config key"):
        RunRequest(("env",), env={"1X": "y"})


def test_the_api_body_becomes_a_run_request() -> None:
    body = {"command": ["sh", "-c", "x"], "tty": True, "rows": 30, "cols": 100, "env": {"A": "b"}}
    got = parse_run_request(body)
    assert got == RunRequest(("sh", "-c", "x"), True, WindowSize(30, 100), {"A": "b"})
    assert parse_run_request({"command": ["ls"]}) == RunRequest(("ls",))
    for bad in [None, [], {"command": "ls"}, {"command": ["ls"], "tty": "yes"},
                {"command": ["ls"], "rows": 3}, {"command": ["ls"], "rows": True, "cols": 2},
                {"command": ["ls"], "env": {"A": 1}}, {"command": []}]:  # fmt: skip
        with pytest.raises(InvalidInput):
            parse_run_request(bad)


@dataclass
class FakeStore:
    releases: dict[str, Any]

    def get_app(self, name: str) -> None:
        if name not in self.releases:
            raise NotFound(f'App "{name}" not found.')

    def current_release(self, name: str) -> Any:
        return self.releases[name]


def test_a_run_needs_an_app_with_a_release() -> None:
    store: Any = FakeStore({"fresh": None, "live": "v1"})
    with pytest.raises(NotFound):
        release_of(store, "nope")
    with pytest.raises(Conflict, match="push first"):
        release_of(store, "fresh")
    assert release_of(store, "live") == "v1"


def _client(releases: dict[str, Any]) -> Any:
    app = Flask(__name__)
    app.extensions["paas.services"] = SimpleNamespace(store=FakeStore(releases))
    app.register_blueprint(api_run, url_prefix="/api/v1")
    register_errors(app)
    return app.test_client()


UPGRADE = {"Connection": "Upgrade", "Upgrade": "paas-run"}


def test_the_api_answers_in_json_before_switching() -> None:
    client = _client({"fresh": None, "live": "v1"})
    cases = [
        ("nope", {"command": ["ls"]}, UPGRADE, 404, "not found"),
        ("fresh", {"command": ["ls"]}, UPGRADE, 409, "push first"),
        ("live", {"command": []}, UPGRADE, 400, "Give a command"),
        ("Bad_Name", {"command": ["ls"]}, UPGRADE, 400, "Invalid app name"),
        ("live", {"command": ["ls"]}, {}, 400, "switches protocols"),
        # The test client has no raw socket to hand over; gunicorn has (see the e2e test).
        ("live", {"command": ["ls"]}, UPGRADE, 500, "gunicorn"),
    ]
    for app, body, headers, status, text in cases:
        answer = client.post(f"/api/v1/apps/{app}/run", json=body, headers=headers)
        assert answer.status_code == status, (app, answer.json)
        assert text in answer.json["message"], answer.json


def test_the_cli_tells_the_app_from_the_command() -> None:
    def remote(app: str | None) -> Any:
        return lambda: None if app is None else f"http://h/git/{app}.git"

    assert split_words(None, ("hello", "--", "ls", "-l"), None).words == ("ls", "-l")
    assert split_words(None, ("hello", "--", "ls"), None).app == "hello"
    assert split_words("x", ("--", "ls"), None).app == "x"
    inside = split_words(None, ("bash",), remote("hello"))
    assert (inside.app, inside.words) == ("hello", ("bash",))
    named = split_words(None, ("hello", "bash"), remote("hello"))
    assert (named.app, named.words) == ("hello", ("bash",))
    other = split_words(None, ("ls", "-l"), remote("hello"))
    assert (other.app, other.words) == ("hello", ("ls", "-l"))
    for words in [("hello", "--"), ("a", "b", "--", "ls")]:
        with pytest.raises(InvalidInput):
            split_words(None, words, None)
    assert parse_env(("A=1", "B=x=y")) == {"A": "1", "B": "x=y"}
    with pytest.raises(InvalidInput):
        parse_env(("nope",))
