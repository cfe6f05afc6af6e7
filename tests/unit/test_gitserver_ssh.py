"""The SSH forced command: parsing the client's command, refusing the rest, settings loading."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from paas.errors import InvalidInput
from paas.gitserver.repos import RepoStore
from paas.gitserver.ssh import (
    RECEIVE_PACK,
    UPLOAD_PACK,
    GitCommand,
    SshRequest,
    main,
    parse_git_command,
    serve,
)
from paas.settings import read_env_file


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git-receive-pack 'hello'", GitCommand(RECEIVE_PACK, "hello")),
        ("git-receive-pack '/hello.git'", GitCommand(RECEIVE_PACK, "hello")),
        ("git-receive-pack '/hello'", GitCommand(RECEIVE_PACK, "hello")),
        ("git-upload-pack 'hello.git'", GitCommand(UPLOAD_PACK, "hello")),
        ("git-upload-pack hello", GitCommand(UPLOAD_PACK, "hello")),
        ("git upload-pack '/hello.git'", GitCommand(UPLOAD_PACK, "hello")),
    ],
)
def test_git_commands(command: str, expected: GitCommand) -> None:
    assert parse_git_command(command) == expected


@pytest.mark.parametrize(
    "command",
    [
        "",
        "ls",
        "sh -c id",
        "git-upload-archive 'hello'",
        "git-receive-pack",
        "'unbalanced",
        "git-receive-pack 'a' 'b'",
    ],
)
def test_non_git_commands(command: str) -> None:
    assert parse_git_command(command) is None


@pytest.mark.parametrize(
    "command",
    [
        "git-receive-pack '../etc'",
        "git-receive-pack 'a/b.git'",
        "git-upload-pack 'Hello'",
        "git-receive-pack '/hello.git; rm -rf /'",
        "git-receive-pack 'hello\n'",
    ],
)
def test_git_commands_with_invalid_app_names(command: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid app name"):
        parse_git_command(command)


def request(command: str) -> tuple[SshRequest, io.StringIO]:
    err = io.StringIO()
    return SshRequest("alice", command, io.BytesIO(), io.BytesIO(), err), err


@pytest.fixture
def store(tmp_path: Path) -> RepoStore:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "pre-receive").write_text("#!/bin/sh\n")
    (tmp_path / "hooks" / "pre-receive").chmod(0o755)
    return RepoStore(tmp_path / "repos", tmp_path / "hooks")


def refuse_create(app: str) -> None:
    raise AssertionError(f"must not create {app}")


def test_non_git_commands_go_to_the_dispatcher(store: RepoStore) -> None:
    seen: list[SshRequest] = []

    def dispatcher(req: SshRequest) -> int:
        seen.append(req)
        return 7

    req, _ = request("apps:list")
    assert serve(req, store, refuse_create, {}, dispatcher=dispatcher) == 7
    assert seen == [req]


def test_the_default_dispatcher_refuses(store: RepoStore) -> None:
    req, err = request("sh -c id")
    assert serve(req, store, refuse_create, {}) == 1
    assert "is not a git command" in err.getvalue()
    req, err = request("")
    assert serve(req, store, refuse_create, {}) == 1
    assert "interactive login is not allowed" in err.getvalue()


def test_invalid_app_and_missing_app(store: RepoStore) -> None:
    req, err = request("git-receive-pack 'Bad'")
    assert serve(req, store, refuse_create, {}) == 2
    assert "Invalid app name" in err.getvalue()
    req, err = request("git-upload-pack 'nothere'")
    assert serve(req, store, refuse_create, {}) == 3
    assert "does not exist" in err.getvalue()
    assert not store.exists("nothere")


def test_push_to_a_missing_app_asks_the_callback_first(store: RepoStore) -> None:
    created: list[str] = []
    req, _ = request("git-receive-pack 'fresh'")
    # Empty stdin: the client hangs up right after the advertisement.
    serve(req, store, created.append, {})
    assert created == ["fresh"]
    assert store.exists("fresh")
    assert isinstance(req.stdout, io.BytesIO)
    assert b"report-status" in req.stdout.getvalue()


def test_read_env_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    path.write_text("# comment\n\nPAAS_ROOT=/srv/paas\nPAAS_DOMAIN = example.com \n")
    assert read_env_file(path) == {"PAAS_ROOT": "/srv/paas", "PAAS_DOMAIN": "example.com"}
    path.write_text("no equals sign\n")
    with pytest.raises(InvalidInput):
        read_env_file(path)


def test_main_usage_and_bad_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 2
    settings = tmp_path / "settings.env"
    settings.write_text("PAAS_SSH_PORT=notaport\n")
    monkeypatch.setenv("PAAS_SETTINGS_FILE", str(settings))
    assert main(["alice"]) == 1
    assert "PAAS_SSH_PORT" in capsys.readouterr().err
    monkeypatch.setenv("PAAS_SETTINGS_FILE", str(tmp_path / "missing.env"))
    assert main(["alice"]) == 1


def test_main_wires_settings_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.env"
    settings.write_text(f"PAAS_ROOT={tmp_path / 'root'}\n")
    monkeypatch.setenv("PAAS_SETTINGS_FILE", str(settings))
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "git-upload-pack 'ghost'")
    assert main(["alice"]) == 3
    assert "App 'ghost' does not exist." in capsys.readouterr().err
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "git-receive-pack 'ghost'")
    assert main(["alice"]) == 3
    assert "create it with `paas apps:create ghost`" in capsys.readouterr().err
