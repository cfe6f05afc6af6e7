"""The CLI's commands against a fake API: what they send, what they print, how they fail."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner

from paas.cli.base import Session
from paas.cli.client import ApiClient, Endpoint
from paas.cli.main import cli, run
from paas.errors import Conflict, NotFound, PaasError

HELLO_REMOTE = "http://127.0.0.1:8000/git/hello.git"

APP_INFO = {
    "name": "hello",
    "created_at": 1.0,
    "release": "v3",
    "git_rev": "abc1234",
    "processes": {"web": "gunicorn app:app"},
    "formation": {"web": 2},
    "web_url": "http://hello.paas.test/",
    "git_remotes": {"http": HELLO_REMOTE, "ssh": "ssh://paas@127.0.0.1:2222/hello"},
    "domains": ["example.test"],
}


class FakeApi(ApiClient):
    """Answers from a table of (method, path) -> body or error, and records the calls."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        super().__init__(Endpoint("http://fake", "token"))
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        answer = self.answers.get((method, path))
        if answer is None:
            raise NotFound(f"no answer for {method} {path}")
        if isinstance(answer, PaasError):
            raise answer
        return answer


@dataclass
class Result:
    code: int
    out: str
    err: str
    calls: list[tuple[str, str, Any]] = field(default_factory=list)


def paas(
    *args: str,
    answers: dict[tuple[str, str], Any] | None = None,
    remote: str | None = None,
    interactive: bool = False,
    input: str | None = None,
) -> Result:
    fake = FakeApi(answers or {})
    session = Session(client=lambda: fake, remote_url=lambda: remote, interactive=interactive)
    with CliRunner().isolation(input=input) as (out, err, _):
        code = run(list(args), session)
    return Result(code, out.getvalue().decode(), err.getvalue().decode(), fake.calls)


def test_every_app_command_takes_app_option_and_json() -> None:
    for name, command in cli.commands.items():
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        if name not in ("apps:create", "apps:list", "ssh-keys", "ssh-keys:add", "auth:token",
                        "login", "stacks", "stacks:build", "images:gc"):  # not about one app
            assert {"-a", "--app"} <= options, name
        if name not in ("auth:token", "login", "run"):  # run attaches to the command's output
            assert "--json" in options, name


def test_app_from_the_first_word_or_the_checkout() -> None:
    answers = {("GET", "/apps/hello/ps"): {"replicas": []}}
    assert paas("ps", "hello", answers=answers).out == "hello has no replicas.\n"
    assert paas("ps", answers=answers, remote=HELLO_REMOTE).code == 0
    assert paas("ps", "-a", "hello", answers=answers).code == 0


def test_no_app_given() -> None:
    result = paas("ps")
    assert result.code == 2
    assert result.err == (
        "error: No app given: run this inside an app's git checkout with a `paas` remote, "
        "or pass -a APP.\n"
    )
    assert result.calls == []


def test_ps_scale_in_a_checkout_and_with_the_app_named() -> None:
    answers = {("PATCH", "/apps/hello/formation"): {"formation": {"web": 3, "worker": 1}}}
    for args in (["ps:scale", "web=3", "worker=1"], ["ps:scale", "hello", "web=3", "worker=1"]):
        result = paas(*args, answers=answers, remote=HELLO_REMOTE)
        assert result.out == "web=3 worker=1\n"
        assert result.calls == [("PATCH", "/apps/hello/formation", {"web": 3, "worker": 1})]
    shown = paas("ps:scale", "hello", answers={("GET", "/apps/hello/formation"): {
        "formation": {"web": 1}}})
    assert shown.out == "web=1\n"
    bad = paas("ps:scale", "hello", "web=three")
    assert bad.code == 2 and "use TYPE=COUNT" in bad.err and bad.calls == []


def test_config_set_sends_exact_values_and_reports_the_release() -> None:
    value = "a b 'c' \"d\" $E = f=g\nline two"
    answers = {("PATCH", "/apps/hello/config"): {"config": {"K": value}, "release": "v5"}}
    result = paas("config:set", "hello", f"K={value}", "L=", answers=answers)
    assert result.calls == [
        ("PATCH", "/apps/hello/config", {"set": {"K": value, "L": ""}, "unset": [],
                                         "restart": True})
    ]
    assert result.out == "Setting K, L and restarting hello... done, v5\n"


def test_config_set_without_restart() -> None:
    answers = {("PATCH", "/apps/hello/config"): {"config": {"K": "1"}, "release": None}}
    result = paas("config:set", "K=1", "--no-restart", answers=answers, remote=HELLO_REMOTE)
    assert result.calls[0][2] == {"set": {"K": "1"}, "unset": [], "restart": False}
    assert result.out == "Setting K of hello: it applies from the next deploy.\n"


def test_config_set_refuses_bad_keys_before_calling() -> None:
    for word in ("1K=V", "K"):
        result = paas("config:set", "hello", word)
        assert result.code == 2 and result.calls == []


def test_config_unset() -> None:
    answers = {("PATCH", "/apps/hello/config"): {"config": {}, "release": "v6"}}
    result = paas("config:unset", "hello", "K", "L", "--json", answers=answers)
    assert result.calls[0][2] == {"set": {}, "unset": ["K", "L"], "restart": True}
    assert json.loads(result.out) == {"config": {}, "release": "v6"}


def test_config_get_prints_the_value_and_one_newline() -> None:
    value = "two\nlines  "
    answers = {("GET", "/apps/hello/config"): {"config": {"K": value}}}
    assert paas("config:get", "hello", "K", answers=answers).out == value + "\n"
    in_checkout = paas("config:get", "K", "--json", answers=answers, remote=HELLO_REMOTE)
    assert json.loads(in_checkout.out) == {"K": value}
    missing = paas("config:get", "hello", "NOPE", answers=answers)
    assert missing.code == 3 and "hello has no config var NOPE" in missing.err


def test_config_shell_and_human_output() -> None:
    answers = {("GET", "/apps/hello/config"): {"config": {"B": "x y", "LONGER": "1\n2"}}}
    assert paas("config", "hello", "--shell", answers=answers).out == (
        "export B='x y'\nexport LONGER='1\n2'\n"
    )
    assert paas("config", "hello", answers=answers).out == (
        "=== hello Config Vars\nB:      x y\nLONGER: 1\n        2\n"
    )


def test_releases_and_rollback() -> None:
    answers = {
        ("GET", "/apps/hello/releases"): {"releases": [
            {"version": 2, "name": "v2", "description": "Set K", "git_rev": "abc",
             "created_at": 0, "created_by": "alice", "current": True},
            {"version": 1, "name": "v1", "description": "Deploy abc", "git_rev": "abc",
             "created_at": 0, "created_by": "git", "current": False},
        ]},
        ("POST", "/apps/hello/rollback"): {"release": "v3", "description": "Rollback to v1"},
    }
    listed = paas("releases", "hello", answers=answers).out.splitlines()
    assert listed[0] == "=== hello Releases - Current: v2"
    assert listed[1].startswith("v2    Set K       alice")
    for version in ("v1", "1"):
        result = paas("rollback", "hello", version, answers=answers)
        assert result.calls == [("POST", "/apps/hello/rollback", {"version": 1})]
        assert result.out == "Rolled back hello to v1: v3\n"
    assert paas("rollback", "v1", answers=answers, remote=HELLO_REMOTE).code == 0
    assert paas("rollback", "hello", "latest").code == 2


def test_process_control() -> None:
    ok = {"ok": True}
    answers = {
        ("POST", "/apps/hello/ps/restart"): ok,
        ("POST", "/apps/hello/ps/stop"): ok,
        ("POST", "/apps/hello/ps/start"): ok,
    }
    web = paas("ps:restart", "web", answers=answers, remote=HELLO_REMOTE)
    assert web.calls == [("POST", "/apps/hello/ps/restart", {"process_type": "web"})]
    assert web.out == "Restarted hello's web replicas.\n"
    whole = paas("ps:restart", "hello", answers=answers, remote=HELLO_REMOTE)
    assert whole.calls == [("POST", "/apps/hello/ps/restart", {"process_type": None})]
    assert paas("ps:stop", "hello", answers=answers).out.startswith("Stopped hello;")
    assert paas("ps:start", "hello", answers=answers).out == "Started hello.\n"


def test_domains() -> None:
    answers = {
        ("GET", "/apps/hello/domains"): {"domains": []},
        ("POST", "/apps/hello/domains"): Conflict("example.test is already used by other."),
        ("DELETE", "/apps/hello/domains/example.test"): {"domains": []},
    }
    assert paas("domains", "hello", answers=answers).out == "hello has no custom domains.\n"
    taken = paas("domains:add", "hello", "example.test", answers=answers)
    assert taken.code == 5 and taken.err == "error: example.test is already used by other.\n"
    assert taken.calls == [("POST", "/apps/hello/domains", {"domain": "example.test"})]
    removed = paas("domains:remove", "example.test", answers=answers, remote=HELLO_REMOTE)
    assert removed.out == "Removed example.test from hello.\n"


def test_apps_info() -> None:
    answers = {("GET", "/apps/hello"): APP_INFO}
    out = paas("apps:info", answers=answers, remote=HELLO_REMOTE).out
    assert "=== hello\n" in out and "Release:" in out and "example.test" in out
    assert json.loads(paas("apps:info", "hello", "--json", answers=answers).out) == APP_INFO


def test_apps_destroy_asks_for_the_name() -> None:
    answers = {("DELETE", "/apps/hello?confirm=hello"): {"destroyed": "hello"}}
    wrong = paas("apps:destroy", "hello", answers=answers, interactive=True, input="helo\n")
    assert wrong.code == 2 and "nothing was destroyed" in wrong.err and wrong.calls == []
    assert "Type the app name to confirm" in wrong.err
    right = paas("apps:destroy", "hello", answers=answers, interactive=True, input="hello\n")
    assert right.code == 0 and right.out == "Destroyed hello.\n"


def test_apps_destroy_without_a_terminal_needs_force() -> None:
    answers = {("DELETE", "/apps/hello?confirm=hello"): {"destroyed": "hello"}}
    refused = paas("apps:destroy", "hello", answers=answers)
    assert refused.code == 2 and "--force" in refused.err and refused.calls == []
    forced = paas("apps:destroy", "hello", "--force", answers=answers)
    assert forced.code == 0 and forced.calls == [("DELETE", "/apps/hello?confirm=hello", None)]


def test_api_errors_are_shown_with_their_exit_code() -> None:
    answers = {("GET", "/apps/helo/ps"): NotFound(
        'App "helo" not found. Did you mean "hello"? Run paas apps:list to see your apps.')}
    result = paas("ps", "helo", answers=answers)
    assert result.code == 3
    assert result.err.startswith('error: App "helo" not found. Did you mean "hello"?')


@pytest.mark.parametrize(
    "args",
    [["ps", "a", "b"], ["config:get"], ["domains:add"], ["ps", "Hello"], ["nosuch"]],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = paas(*args, remote=HELLO_REMOTE)
    assert result.code == 2, result
    assert result.calls == []


def test_help_exits_0() -> None:
    result = paas("--help")
    assert result.code == 0 and "config:set" in result.out
