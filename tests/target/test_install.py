"""The ansible installer against a real systemd host (a booted Debian bookworm under
systemd-nspawn): install, idempotence, healthy units, git push deploys, the privilege split,
unit restarts and upgrades that leave apps serving, a reboot, and at last a move to an
external Redis with an admin password from ansible-vault.

The tests share one target and run in order (installing builds the default stack inside
the target, a few minutes): each later test starts from what the earlier ones left.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from paas.procfile import parse_procfile
from tests.target.target import PROJECT, VENV_BIN, PlaybookRun, Target

pytestmark = pytest.mark.target

SSH_PORT = 2222
API_PORT = 8000
APP = "hello"
APP_HOST = f"{APP}.paas.test"
GREETING = "hello from a server installed by ansible"
# The relay to the host's package proxy, on the target's loopback (see build-image.sh).
TARGET_PROXY = "http://127.0.0.1:3128"
CODE_UNITS = {"paas-web", "paas-worker", "paas-beat", "paas-monitor", "paas-agent"}
SETTLE = 5.0


def _git(*args: str, repo: Path = PROJECT) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip()


# What the tests install: this checkout's HEAD when they start (commits made meanwhile
# would otherwise look like upgrades).
VERSION = _git("rev-parse", "HEAD")


def _units() -> list[str]:
    procfile = _git("show", f"{VERSION}:Procfile")
    return ["paas-prepare", *(f"paas-{name}" for name in parse_procfile(procfile))]


def _vars(target: Target, **more: Any) -> dict[str, Any]:
    return {
        "paas_version": VERSION,
        "paas_ssh_keys": {"tester": target.run.key.with_suffix(".pub").read_text().strip()},
        "paas_build_environment": {"http_proxy": TARGET_PROXY, "https_proxy": TARGET_PROXY},
        **more,
    }


def assert_healthy(target: Target, units: list[str]) -> None:
    """Every unit active and enabled with no restarts after settling; nothing failed."""
    running = target.ssh("systemctl is-system-running --wait", timeout=180, check=False)
    time.sleep(SETTLE)
    states = target.unit_states(units)
    for unit, state in states.items():
        assert state["ActiveState"] == "active", (unit, state, _journal(target, unit))
        assert state["UnitFileState"] == "enabled", (unit, state)
        assert state["NRestarts"] == "0", (unit, state, _journal(target, unit))
    assert target.ssh("systemctl --failed --no-legend --plain").strip() == ""
    assert running.strip() == "running", target.ssh("systemctl list-jobs", check=False)


def _journal(target: Target, unit: str) -> str:
    return target.ssh(f"journalctl -u {unit} --no-pager -n 30", check=False)


@pytest.fixture(scope="module")
def installed(target: Target) -> PlaybookRun:
    return target.playbook(_vars(target))


@pytest.fixture(scope="module")
def app_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Procfile-only app: Python's http.server over a text file."""
    repo = tmp_path_factory.mktemp("app")
    (repo / "Procfile").write_text("web: python3 -m http.server $PORT\n")
    (repo / "greeting.txt").write_text(GREETING + "\n")
    for argv in (["init", "-q", "-b", "master"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "app"]):
        subprocess.run(["git", "-C", str(repo), *argv], check=True, timeout=30)
    return repo


def test_playbook_installs_and_a_second_run_changes_nothing(
    target: Target, installed: PlaybookRun
) -> None:
    installed.check()
    again = target.playbook(_vars(target)).check()
    assert again.recap is not None and again.recap.changed == 0, again.output[-6000:]


def test_every_unit_is_active_enabled_and_never_restarted(
    target: Target, installed: PlaybookRun
) -> None:
    installed.check()
    assert_healthy(target, _units())
    assert target.ssh("sysctl -n net.ipv4.tcp_tw_reuse").strip() == "1"


def test_the_admin_signs_in_with_the_password_shown_once(
    target: Target, installed: PlaybookRun
) -> None:
    shown = re.findall(r"Dashboard: user admin, password (\S+) \(shown once", installed.output)
    assert len(shown) == 1, installed.output[-6000:]
    status, page = target.sign_in(shown[0], API_PORT)
    assert status == 200 and 'action="/signin"' not in page, page[:2000]
    assert target.sign_in("not-" + shown[0], API_PORT)[0] != 200


def test_the_api_does_not_run_as_root(target: Target, installed: PlaybookRun) -> None:
    installed.check()
    pid = target.unit_states(["paas-web"])["paas-web"]["MainPID"]
    users = target.ssh(f"ps -o user= --pid {pid} --ppid {pid}").split()
    assert users and set(users) == {"paas"}, users


def test_git_push_deploys_an_app_served_by_the_router_and_ssh_commands_work(
    target: Target, installed: PlaybookRun, app_repo: Path
) -> None:
    installed.check()
    output = target.git_push(app_repo, APP, SSH_PORT)
    assert "Released v1" in output, output
    status, body = target.http_get(APP_HOST, "/greeting.txt")
    assert (status, body.strip()) == (200, GREETING)
    assert APP in target.platform_ssh("apps:list", SSH_PORT).split()


class Poller:
    """GETs the app through the router every 0.3 s in a thread; counts what failed."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.ok = 0
        self.failures: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = self.target.http_get(APP_HOST, "/greeting.txt")
            if status == 200 and body.strip() == GREETING:
                self.ok += 1
            else:
                self.failures.append((status, body[:200]))
            self._stop.wait(0.3)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _container_pids(target: Target) -> set[str]:
    """The pids of the app's shims (they supervise its containers)."""
    out = target.ssh(f"cat /var/lib/paas/containers/{APP}.*/shim.pid 2>/dev/null", check=False)
    return set(out.split())


def test_restarting_the_units_leaves_the_app_serving(target: Target) -> None:
    shims = _container_pids(target)
    assert shims, "the app of the push test is not running"
    # Each shim has a scope of its own, so no unit of the platform holds it.
    units = target.ssh(f"ps -o unit= --pid {','.join(shims)}").split()
    assert len(units) == len(shims), units
    assert all(re.fullmatch(rf"paas-\w+-{APP}\.web\.\d+\.\S+\.scope", u) for u in units), units
    since = target.ssh("date +%s").strip()
    restarted = sorted(CODE_UNITS & set(_units()))
    with Poller(target) as poller:
        target.ssh(f"systemctl restart {' '.join(restarted)}")
        time.sleep(3)
    assert poller.failures == [] and poller.ok > 0, poller.failures
    assert _container_pids(target) == shims
    alive = target.ssh(f"ps -o pid= --pid {','.join(shims)}").split()
    assert set(alive) == shims
    journal = target.ssh(f"journalctl -q --no-pager --since=@{since} "
                         + " ".join(f"-u {unit}" for unit in restarted))
    assert "left-over process" not in journal, journal[-4000:]


def test_a_replica_scaled_away_leaves_no_scope(target: Target) -> None:
    def scopes() -> list[str]:
        listed = target.ssh("systemctl list-units --all --plain --no-legend 'paas-*.scope'")
        return sorted(line.split()[0] for line in listed.splitlines() if line.strip())

    before = scopes()
    assert len(before) == len(_container_pids(target)) > 0, before
    target.platform_ssh(f"ps:scale {APP} web=2", SSH_PORT)
    deadline = time.monotonic() + 60
    while len(scopes()) != len(before) + 1:
        assert time.monotonic() < deadline, scopes()
        time.sleep(1)
    target.platform_ssh(f"ps:scale {APP} web=1", SSH_PORT)
    while scopes() != before:  # the new replica drains, stops, and its scope goes
        assert time.monotonic() < deadline + 60, scopes()
        time.sleep(1)


@pytest.fixture
def new_version(tmp_path: Path) -> tuple[Path, str]:
    """A clone of this checkout with one more commit: a new platform version."""
    clone = tmp_path / "paas"
    _git("clone", "-q", "--shared", "--no-checkout", str(PROJECT), str(clone))
    _git("checkout", "-q", "--detach", VERSION, repo=clone)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "next version", repo=clone)
    return clone, _git("rev-parse", "HEAD", repo=clone)


def test_an_upgrade_restarts_only_the_platform_code_and_apps_keep_serving(
    target: Target, new_version: tuple[Path, str]
) -> None:
    units = _units()
    before = target.unit_states(units)
    shims = _container_pids(target)
    source, sha = new_version
    with Poller(target) as poller:
        target.playbook(_vars(target, paas_source_dir=str(source), paas_version=sha)).check()
    assert target.ssh("cat /opt/paas/VERSION").strip() == sha
    after = target.unit_states(units)
    for unit in units:
        if unit == "paas-prepare":
            continue
        moved = before[unit]["MainPID"] != after[unit]["MainPID"]
        assert moved == (unit in CODE_UNITS), (unit, before[unit], after[unit])
    assert poller.failures == [] and poller.ok > 0, poller.failures
    assert _container_pids(target) == shims
    assert_healthy(target, units)


def test_after_a_reboot_every_unit_comes_back_and_the_app_serves(target: Target) -> None:
    boot = "cat /proc/sys/kernel/random/boot_id"
    before = target.ssh(boot)
    target.module("ansible.builtin.reboot", "reboot_timeout=300").check()
    assert target.ssh(boot) != before
    assert_healthy(target, _units())
    assert target.ssh("sysctl -n net.ipv4.tcp_tw_reuse").strip() == "1"
    target.wait_http(APP_HOST, "/greeting.txt", GREETING, timeout=180)


EXTERNAL_REDIS_PORT = 6390


def test_an_install_on_an_external_redis_with_a_vaulted_password(
    target: Target, app_repo: Path, tmp_path: Path
) -> None:
    """Last, as it moves the platform to a new, empty Redis: the playbook pointed at a Redis
    it does not run, and given the admin password as an ansible-vault secret."""
    target.ssh(
        "systemd-run --unit=external-redis --property=Restart=always /usr/bin/redis-server "
        f"--port {EXTERNAL_REDIS_PORT} --bind 127.0.0.1 --save '' --appendonly no"
    )
    password = f"vaulted-{secrets.token_hex(8)}"
    vault_password = tmp_path / "vault-password"
    vault_password.write_text(secrets.token_hex(16))
    encrypted = subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "encrypt_string", "--vault-password-file",
         str(vault_password), "--name", "paas_admin_password", password],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    vaulted = tmp_path / "vaulted.yml"
    vaulted.write_text(encrypted)
    redis_url = f"redis://127.0.0.1:{EXTERNAL_REDIS_PORT}/0"
    run = target.playbook(
        _vars(target, paas_redis_url=redis_url),
        more=["-e", f"@{vaulted}", "--vault-password-file", str(vault_password)],
    ).check()
    assert password not in run.output
    assert "LoadState=not-found" in target.ssh("systemctl show -p LoadState paas-redis")
    assert_healthy(target, [unit for unit in _units() if unit != "paas-redis"])
    status, page = target.sign_in(password, API_PORT)
    assert status == 200 and 'action="/signin"' not in page, page[:2000]
    output = target.git_push(app_repo, "again", SSH_PORT)
    assert "Released v1" in output, output
    status, body = target.http_get("again.paas.test", "/greeting.txt")
    assert (status, body.strip()) == (200, GREETING)
    keys = target.ssh(f"redis-cli -p {EXTERNAL_REDIS_PORT} --scan --pattern '*again*'")
    assert keys.split(), "the platform's state is not in the external Redis"
