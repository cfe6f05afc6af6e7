"""CLI commands over SSH (paas.gitserver.ssh_commands) against a small API on loopback."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from paas.gitserver.ssh import SshRequest
from paas.gitserver.ssh_commands import command_words, ssh_dispatcher
from paas.settings import Settings


class Api(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append({
            "method": self.command,
            "path": self.path,
            "auth": self.headers.get("Authorization"),
            "actor": self.headers.get("X-Paas-Actor"),
            "body": body,
        })
        if self.path == "/api/v1/apps":
            status, answer = 200, {"apps": [{"name": "hello", "created_at": 1.0}]}
        elif self.path == "/api/v1/apps/hello/config":
            status, answer = 200, {"config": {"K": "a 'b'\nc"}, "release": "v4"}
        else:
            status, answer = 404, {"error": "not_found", "message": 'App "x" not found.'}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Api.seen = []
    s = Settings(root=tmp_path, api_port=server.server_address[1], bind="127.0.0.1")
    s.run_dir.mkdir()
    s.ssh_token_file.write_text("relay-token\n")
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()


def ssh(settings: Settings, command: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.StringIO()
    request = SshRequest("alice", command, io.BytesIO(stdin), out, err)
    code = ssh_dispatcher(settings)(request)
    return code, out.getvalue().decode(), err.getvalue()


def test_commands_run_with_the_relay_token_and_the_key_as_actor(settings: Settings) -> None:
    code, out, err = ssh(settings, "apps:list")
    assert (code, out, err) == (0, "hello\n", "")
    assert Api.seen == [{"method": "GET", "path": "/api/v1/apps", "auth": "Bearer relay-token",
                         "actor": "alice", "body": None}]


def test_words_are_split_as_a_shell_would(settings: Settings) -> None:
    code, out, _ = ssh(settings, "config:set hello 'K=a '\"'b'\"'\nc' --json")
    assert code == 0 and json.loads(out)["release"] == "v4"
    assert Api.seen[0]["body"] == {"set": {"K": "a 'b'\nc"}, "unset": [], "restart": True}
    code, out, _ = ssh(settings, "config:get hello K")
    assert (code, out) == (0, "a 'b'\nc\n")


def test_errors_go_to_stderr_with_their_exit_code(settings: Settings) -> None:
    code, out, err = ssh(settings, "ps x")
    assert (code, out) == (3, "")
    assert err == 'error: App "x" not found.\n'


def test_there_is_no_checkout_and_no_terminal(settings: Settings) -> None:
    code, _, err = ssh(settings, "ps:scale web=2")
    assert code == 2 and "name it first" in err
    code, _, err = ssh(settings, "apps:destroy hello")
    assert code == 2 and "--force" in err
    assert Api.seen == []


def test_help_and_local_commands(settings: Settings) -> None:
    for command in ("", "help", "--help"):
        code, out, _ = ssh(settings, command)
        assert code == 0 and "config:set" in out and "over SSH" in out
        assert "auth:token" not in out and "login" not in out
    code, out, _ = ssh(settings, "help config:get")
    assert code == 0 and "[APP] KEY" in out
    code, _, err = ssh(settings, "auth:token")
    assert code == 2 and "No such command" in err


def test_stdin_reaches_the_command(settings: Settings) -> None:
    code, _, _ = ssh(settings, "ssh-keys:add bob", stdin=b"ssh-ed25519 AAAA bob\n")
    assert code == 3  # the fake API knows no /ssh-keys; what matters is what it got
    assert Api.seen[0]["body"] == {"name": "bob", "key": "ssh-ed25519 AAAA bob\n"}


def test_unsplittable_command(settings: Settings) -> None:
    code, _, err = ssh(settings, "config:set hello 'K=V")
    assert code == 2 and "cannot split" in err


def test_without_the_relay_token(settings: Settings) -> None:
    settings.ssh_token_file.unlink()
    code, _, err = ssh(settings, "apps:list")
    assert code == 1 and "not enabled" in err


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("", ["--help"]),
        ("help", ["--help"]),
        ("help ps:scale", ["ps:scale", "--help"]),
        ("ps:scale hello web=2", ["ps:scale", "hello", "web=2"]),
        ("config:set hello \"K=a b\"", ["config:set", "hello", "K=a b"]),
    ],
)
def test_command_words(command: str, words: list[str]) -> None:
    assert command_words(command) == words
