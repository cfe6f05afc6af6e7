"""Which app a CLI command acts on: -a, a leading app name, the checkout's `paas` remote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from paas.cli.target import (
    NO_APP,
    NO_APP_REMOTE,
    Shape,
    Target,
    app_from_remote_url,
    is_assignment,
    is_config_key,
    is_process_type,
    paas_remote_url,
    resolve,
)
from paas.errors import InvalidInput

PS = Shape("ps")
CONFIG_GET = Shape("config:get", "KEY", least=1, most=1)
SCALE = Shape("ps:scale", "[TYPE=COUNT...]", most=None, own_word=is_assignment)
CONFIG_SET = Shape("config:set", "KEY=VALUE...", least=1, most=None, own_word=is_assignment)
CONFIG_UNSET = Shape("config:unset", "KEY...", least=1, most=None, own_word=is_config_key)
RESTART = Shape("ps:restart", "[TYPE]", most=1, own_word=is_process_type)

IN_HELLO = "http://paas:secret@127.0.0.1:8000/git/hello.git"


@pytest.mark.parametrize(
    ("url", "app"),
    [
        ("http://127.0.0.1:8000/git/hello.git", "hello"),
        ("https://paas.example.test/git/hello-world.git", "hello-world"),
        ("http://paas:tok@127.0.0.1:8000/git/hello", "hello"),
        ("http://127.0.0.1:8000/git/hello.git/", "hello"),
        ("ssh://paas@127.0.0.1:2222/hello", "hello"),
        ("ssh://paas@127.0.0.1:2222/hello.git", "hello"),
        ("ssh://paas@host/hello", "hello"),
        ("paas@host:hello", "hello"),
        ("dokku@host:hello.git", "hello"),
        ("http://127.0.0.1:8000/hello.git", None),
        ("http://127.0.0.1:8000/git/Hello.git", None),
        ("http://127.0.0.1:8000/git/a/b.git", None),
        ("ssh://paas@host/a/b", None),
        ("file:///srv/hello.git", None),
        ("/srv/hello.git", None),
        ("", None),
    ],
)
def test_app_from_remote_url(url: str, app: str | None) -> None:
    assert app_from_remote_url(url) == app


@pytest.mark.parametrize(
    ("app", "words", "shape", "url", "expected"),
    [
        # -a names the app; every word is the command's.
        ("hello", [], PS, None, Target("hello", ())),
        ("hello", ["KEY"], CONFIG_GET, IN_HELLO, Target("hello", ("KEY",))),
        ("hello", ["web"], RESTART, None, Target("hello", ("web",))),
        # No words: the checkout's remote.
        (None, [], PS, IN_HELLO, Target("hello", ())),
        (None, [], SCALE, "ssh://paas@h:2222/other", Target("other", ())),
        # The count decides.
        (None, ["hello"], PS, IN_HELLO, Target("hello", ())),
        (None, ["other"], PS, IN_HELLO, Target("other", ())),
        (None, ["hello", "KEY"], CONFIG_GET, None, Target("hello", ("KEY",))),
        (None, ["KEY"], CONFIG_GET, IN_HELLO, Target("hello", ("KEY",))),
        (None, ["key"], CONFIG_GET, IN_HELLO, Target("hello", ("key",))),
        (None, ["hello"], CONFIG_UNSET, IN_HELLO, Target("hello", ("hello",))),
        # Both counts fit: the form of the word decides.
        (None, ["web=3"], SCALE, IN_HELLO, Target("hello", ("web=3",))),
        (None, ["hello", "web=3"], SCALE, None, Target("hello", ("web=3",))),
        (None, ["hello"], SCALE, None, Target("hello", ())),
        (None, ["K=V"], CONFIG_SET, IN_HELLO, Target("hello", ("K=V",))),
        (None, ["K=a=b", "L="], CONFIG_SET, IN_HELLO, Target("hello", ("K=a=b", "L="))),
        (None, ["hello", "K=V"], CONFIG_SET, IN_HELLO, Target("hello", ("K=V",))),
        (None, ["KEY", "OTHER"], CONFIG_UNSET, IN_HELLO, Target("hello", ("KEY", "OTHER"))),
        (None, ["my-app", "key"], CONFIG_UNSET, IN_HELLO, Target("my-app", ("key",))),
        # Either reading fits: the checkout's app, or the app when there is no checkout.
        (None, ["web"], RESTART, IN_HELLO, Target("hello", ("web",))),
        (None, ["hello"], RESTART, IN_HELLO, Target("hello", ())),
        (None, ["web"], RESTART, None, Target("web", ())),
        (None, ["hello", "web"], RESTART, IN_HELLO, Target("hello", ("web",))),
        (None, ["hello", "key"], CONFIG_UNSET, IN_HELLO, Target("hello", ("key",))),
        (None, ["hello", "key"], CONFIG_UNSET, None, Target("hello", ("key",))),
        (None, ["foo", "bar"], CONFIG_UNSET, IN_HELLO, Target("hello", ("foo", "bar"))),
        (None, ["Web"], RESTART, IN_HELLO, Target("hello", ("Web",))),
        (None, ["web"], RESTART, "http://elsewhere/not-an-app-url", Target("web", ())),
    ],
)
def test_resolve(
    app: str | None, words: list[str], shape: Shape, url: str | None, expected: Target
) -> None:
    assert resolve(app, words, shape, lambda: url) == expected


def test_no_app_anywhere_says_how_to_name_one() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve(None, [], PS, lambda: None)
    assert exc.value.message == NO_APP
    assert exc.value.exit_code == 2
    with pytest.raises(InvalidInput, match="-a APP"):
        resolve(None, ["KEY"], CONFIG_GET, lambda: None)


def test_without_a_checkout_the_app_must_be_named() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve(None, ["web=3"], SCALE, None)
    assert exc.value.message == NO_APP_REMOTE
    assert resolve(None, ["web"], RESTART, None) == Target("web", ())


def test_a_remote_that_names_no_app_is_reported_without_its_password() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve(None, [], PS, lambda: "http://paas:s3cret@host/other/path")
    assert "does not name an app" in exc.value.message
    assert "s3cret" not in exc.value.message and "paas:***@host" in exc.value.message


@pytest.mark.parametrize(
    ("app", "words", "shape"),
    [
        (None, ["a", "b"], PS),
        ("hello", ["extra"], PS),
        (None, ["a", "b", "c"], CONFIG_GET),
        ("hello", [], CONFIG_GET),
        ("hello", ["web", "worker"], RESTART),
    ],
)
def test_wrong_number_of_words_shows_the_usage(
    app: str | None, words: list[str], shape: Shape
) -> None:
    with pytest.raises(InvalidInput, match=f"Usage: paas {shape.command} "):
        resolve(app, words, shape, lambda: IN_HELLO)


@pytest.mark.parametrize(
    ("app", "words", "shape"),
    [
        ("Hello", [], PS),
        (None, ["Hello"], PS),
        (None, ["Hello_World", "web=1"], SCALE),
        (None, ["../etc", "KEY"], CONFIG_GET),
    ],
)
def test_invalid_app_names_are_refused(app: str | None, words: list[str], shape: Shape) -> None:
    with pytest.raises(InvalidInput, match="Invalid app name"):
        resolve(app, words, shape, lambda: IN_HELLO)


def test_the_remote_is_only_asked_when_needed() -> None:
    def fail() -> str | None:
        raise AssertionError("the remote was looked up")

    assert resolve("hello", ["web"], RESTART, fail) == Target("hello", ("web",))
    assert resolve(None, ["hello", "KEY"], CONFIG_GET, fail) == Target("hello", ("KEY",))
    assert resolve(None, ["hello", "web=2"], SCALE, fail) == Target("hello", ("web=2",))


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def test_paas_remote_url_of_a_checkout(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert paas_remote_url(tmp_path) is None
    git(tmp_path, "remote", "add", "origin", "https://example.test/x.git")
    assert paas_remote_url(tmp_path) is None
    git(tmp_path, "remote", "add", "paas", "ssh://paas@127.0.0.1:2222/hello")
    (tmp_path / "sub").mkdir()
    assert paas_remote_url(tmp_path / "sub") == "ssh://paas@127.0.0.1:2222/hello"


def test_paas_remote_url_outside_a_checkout(tmp_path: Path) -> None:
    assert paas_remote_url(tmp_path) is None
