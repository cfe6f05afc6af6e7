"""The pre-receive hook's decisions: which pushes deploy, and what the pusher sees."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from paas.errors import InvalidInput
from paas.gitserver.hook import ZERO, app_from_git_dir, pre_receive
from paas.state.logstream import LogEvent

OLD, NEW = "1" * 40, "2" * 40


@dataclass
class FakeLogs:
    events: list[LogEvent]

    def follow(self, stream: str, idle_timeout: float) -> Iterator[LogEvent]:
        yield from self.events


@dataclass
class FakeServices:
    events: list[LogEvent] = field(default_factory=list)
    pushed: list[tuple[str, str]] = field(default_factory=list)
    error: Exception | None = None

    @property
    def logs(self) -> FakeLogs:
        return FakeLogs(self.events)

    def push_received(self, app: str, rev: str, actor: str) -> Any:
        if self.error:
            raise self.error
        self.pushed.append((app, rev))
        return type("Build", (), {"id": "b1"})()


def run(services: FakeServices, *lines: str) -> tuple[int, str]:
    out = io.StringIO()
    code = pre_receive(services, "hello", list(lines), out)  # type: ignore[arg-type]
    return code, out.getvalue()


def test_master_and_main_deploy_and_relay_the_build() -> None:
    for branch in ("master", "main"):
        services = FakeServices([LogEvent("line", "-----> Building"),
                                 LogEvent("end", "Released v1", ok=True)])
        code, out = run(services, f"{OLD} {NEW} refs/heads/{branch}")
        assert code == 0
        assert services.pushed == [("hello", NEW)]
        assert out == "-----> Building\n=====> Released v1\n"


def test_other_refs_and_deletions_do_not_deploy() -> None:
    services = FakeServices()
    code, _ = run(services, f"{OLD} {NEW} refs/heads/feature", f"{OLD} {ZERO} refs/heads/master",
                  f"{ZERO} {NEW} refs/tags/v1")
    assert code == 0 and services.pushed == []


def test_failed_build_declines_with_the_reason() -> None:
    services = FakeServices([LogEvent("end", "pip could not find no-such-pkg", ok=False)])
    code, out = run(services, f"{OLD} {NEW} refs/heads/master")
    assert code == 1
    assert "Deploy failed: pip could not find no-such-pkg" in out
    assert "previous release keeps serving" in out


def test_refused_push_prints_the_message() -> None:
    services = FakeServices(error=InvalidInput("Invalid app name 'X'"))
    code, out = run(services, f"{OLD} {NEW} refs/heads/master")
    assert code == 1 and "Invalid app name 'X'" in out


def test_pushing_master_and_main_at_once_is_refused() -> None:
    services = FakeServices()
    code, out = run(services, f"{OLD} {NEW} refs/heads/master", f"{OLD} {NEW} refs/heads/main")
    assert code == 1 and services.pushed == [] and "not both" in out


def test_app_from_git_dir() -> None:
    assert app_from_git_dir("/var/lib/paas/repos/hello.git") == "hello"
    assert app_from_git_dir("/var/lib/paas/repos/hello.git/") == "hello"
