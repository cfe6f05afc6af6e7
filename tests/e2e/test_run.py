"""End to end: one-off runs of a pushed app through the CLI and the API (gunicorn) and over
SSH: config and platform variables, exit codes, piped stdin, a terminal, the app's network
(isolated from its replicas), and nothing left behind afterwards."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from paas import wiring
from paas.model import APP_USER
from paas.settings import Settings
from tests.e2e.platform_fixture import VENV_BIN, Platform, runc_list
from tests.e2e.test_push_deploy import git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "oneoff"
TIMEOUT = 120.0


def _run_netns(settings: Settings) -> list[str]:
    """The netns of one-off runs that still exist (their lease names the container)."""
    network = wiring.network(settings)
    return [
        network.netns_name(cid) for cid in network.attached() if ".run." in cid
        if (Path("/run/netns") / network.netns_name(cid)).exists()
    ]


@pytest.fixture(scope="module")
def deployed(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """The app pushed and configured."""
    repo = make_app(tmp_path_factory.mktemp("oneoff") / APP, "run me")
    created = platform.cli("apps:create", APP)
    assert created.returncode == 0, created.stderr
    git(repo, "push", http_remote(platform, APP), "master")
    configured = platform.cli("config:set", APP, "MYVAR=from config")
    assert configured.returncode == 0, configured.stderr
    return platform


@pytest.fixture
def nothing_left(deployed: Platform) -> Iterator[Platform]:
    """After each run: no run container of the app and no netns beyond the replicas'."""
    settings = Settings.from_env(deployed.env)
    yield deployed
    runs = [c["id"] for c in runc_list(settings.runc_root) if c["id"].startswith(f"{APP}.run.")]
    assert not runs
    assert not _run_netns(settings)
    leftovers = [p.name for p in settings.containers_dir.iterdir() if ".run." in p.name]
    assert not leftovers


def test_config_and_exit_code_come_back(nothing_left: Platform) -> None:
    script = 'echo "$MYVAR|$PAAS_APP|$DYNO|$PORT"; echo oops >&2; exit 3'
    result = nothing_left.cli("run", APP, "--", "sh", "-c", script, timeout=TIMEOUT)
    assert result.returncode == 3, result
    var, app, dyno, port = result.stdout.strip().split("|")
    assert (var, app, port) == ("from config", APP, "5000")
    assert dyno.startswith("run.") and dyno[4:].isdigit(), dyno
    assert result.stderr == "oops\n"


def test_the_run_is_the_apps_user_who_may_write_its_dirs(nothing_left: Platform) -> None:
    script = "grep ^Uid: /proc/self/status; whoami; touch ./cwd $HOME/home /tmp/tmp && echo written"
    result = nothing_left.cli("run", APP, "--", "sh", "-c", script, timeout=TIMEOUT)
    assert result.returncode == 0, result
    uid = str(APP_USER[0])
    assert result.stdout.split() == ["Uid:", uid, uid, uid, uid, "app", "written"], result.stdout


def test_piped_stdin_reaches_the_command(nothing_left: Platform) -> None:
    text = "line one\n" + "x" * 200_000 + "\nlast line\n"
    result = nothing_left.cli("run", APP, "--", "cat", input=text, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == text


def test_a_terminal_when_the_caller_has_one(nothing_left: Platform) -> None:
    command = shlex.join([str(VENV_BIN / "paas"), "run", APP, "--", "sh", "-c", "tty; exit 4"])
    env = {k: v for k, v in nothing_left.env.items() if k not in ("PAAS_API_URL", "PAAS_TOKEN")}
    result = subprocess.run(
        ["script", "-q", "-e", "-c", command, "/dev/null"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )  # fmt: skip
    assert result.returncode == 4, result
    assert "/dev/pts/" in result.stdout, result.stdout


def test_the_run_cannot_reach_the_replicas_directly(nothing_left: Platform) -> None:
    ps = json.loads(nothing_left.cli("ps", APP, "--json").stdout)
    address = ps["replicas"][0]["address"]
    connect = (
        "import socket\ntry:\n"
        f"    socket.create_connection(('{address}', 5000), timeout=10); print('connected')\n"
        "except OSError as exc:\n    print(type(exc).__name__)"
    )
    result = nothing_left.cli("run", APP, "--", "python3", "-c", connect, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() not in ("", "connected"), result.stdout
    assert nothing_left.get(f"{APP}.paas.test") == (200, "run me from oneoff\n")


def test_errors_before_the_run(nothing_left: Platform) -> None:
    missing = nothing_left.cli("run", "no-such-app", "--", "true")
    assert missing.returncode == 3 and "not found" in missing.stderr
    created = nothing_left.cli("apps:create", "oneoff-empty")
    assert created.returncode == 0, created.stderr
    empty = nothing_left.cli("run", "oneoff-empty", "--", "true")
    assert empty.returncode == 5 and "push first" in empty.stderr
    not_found = nothing_left.cli("run", APP, "--", "no-such-command")
    assert not_found.returncode == 127, not_found


def test_over_ssh_with_and_without_a_terminal(nothing_left: Platform, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    added = nothing_left.cli("ssh-keys:add", "runner", input=key.with_suffix(".pub").read_text())
    assert added.returncode == 0, added.stderr
    ssh = [
        "ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-p", str(nothing_left.ssh_port), "paas@127.0.0.1",
    ]  # fmt: skip
    piped = subprocess.run(
        [*ssh, "run", APP, "--", "sh", "-c", shlex.quote("cat; echo $DYNO; exit 6")],
        input="over ssh\n", capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert piped.returncode == 6, piped
    assert piped.stdout.startswith("over ssh\nrun."), piped.stdout
    terminal = subprocess.run(
        [*ssh, "-tt", "run", APP, "--", "tty"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert terminal.returncode == 0, terminal
    assert "/dev/pts/" in terminal.stdout, terminal.stdout
