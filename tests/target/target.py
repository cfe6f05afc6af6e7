"""A test target for the installer: a systemd-booted Debian bookworm under systemd-nspawn.

``TargetRun`` owns what one test run shares (the work dir, the golden image, the proxy);
``Target`` is one booted machine, reached over SSH through its own network namespace, with
what the tests do to it: run the playbook, run commands, push an app, fetch a page through
its router. The shell scripts beside this file do the machine work (see their headers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
PLAYBOOK = PROJECT / "ansible" / "site.yml"
VENV_BIN = Path(sys.executable).parent
TOOLS = ("systemd-nspawn", "socat", "tinyproxy", "debootstrap", "ip", "ssh", "curl", "git")
_RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                       re.MULTILINE)


def missing_requirements() -> str | None:
    """Why targets cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "target tests need root (netns, nspawn, cgroups)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not (VENV_BIN / "ansible-playbook").exists():
        missing.append("ansible-playbook (the test extra of pyproject.toml)")
    if missing:
        return f"missing for target tests: {', '.join(missing)} (scripts/setup.sh installs them)"
    return None


def _script(name: str, *args: str, timeout: float) -> None:
    env = {**os.environ, "PYTHON": str(VENV_BIN / "python")}
    subprocess.run([str(HERE / name), *args], check=True, timeout=timeout, env=env)


@dataclass(frozen=True)
class Recap:
    """The PLAY RECAP line of one host."""

    ok: int
    changed: int
    unreachable: int
    failed: int


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    output: str
    recap: Recap | None

    def check(self) -> PlaybookRun:
        assert self.returncode == 0, self.output[-6000:]
        return self


class TargetRun:
    """The work dir of one test run: the golden image, the SSH key and the proxy."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.key = work / "id_ed25519"

    def build_image(self) -> None:
        _script("build-image.sh", str(self.work), timeout=600)

    def proxy_up(self) -> None:
        _script("proxy-up.sh", str(self.work), timeout=60)

    def proxy_down(self) -> None:
        _script("proxy-down.sh", str(self.work), timeout=60)

    def start(self, name: str) -> Target:
        _script("target-up.sh", str(self.work), name, timeout=180)
        return Target(name, self)

    def stop(self, name: str) -> None:
        _script("target-down.sh", str(self.work), name, timeout=120)


class Target:
    def __init__(self, name: str, run: TargetRun) -> None:
        self.name = name
        self.run = run
        self.proxy_command = f"ip netns exec {name} socat - TCP:127.0.0.1:%p"
        self.ssh_options = [
            "-i", str(run.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", f"ProxyCommand={self.proxy_command}",
        ]  # fmt: skip

    # --- ansible --------------------------------------------------------------------------

    def inventory(self) -> Path:
        path = self.run.work / f"{self.name}.ini"
        common = " ".join(o if " " not in o else f'"{o}"' for o in self.ssh_options[2:])
        path.write_text(
            "[paas]\n"
            f"{self.name} ansible_host={self.name} ansible_user=root "
            f"ansible_ssh_private_key_file={self.run.key} ansible_ssh_common_args='{common}'\n"
        )
        return path

    def playbook(
        self, extra_vars: dict[str, Any], timeout: float = 900, more: Sequence[str] = ()
    ) -> PlaybookRun:
        """``more``: further arguments of ansible-playbook (vars files, a vault password)."""
        return self._ansible(["ansible-playbook", str(PLAYBOOK), *more], extra_vars, timeout)

    def module(self, module: str, args: str, timeout: float = 300) -> PlaybookRun:
        """One ad-hoc ansible module on the target (``ansible.builtin.reboot``...)."""
        return self._ansible(["ansible", "paas", "-m", module, "-a", args], {}, timeout)

    def _ansible(self, argv: list[str], extra_vars: dict[str, Any], timeout: float) -> PlaybookRun:
        vars_file = self.run.work / f"{self.name}-vars.json"
        vars_file.write_text(json.dumps(extra_vars))
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(PROJECT / "ansible" / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
        done = subprocess.run(
            [str(VENV_BIN / argv[0]), *argv[1:], "-i", str(self.inventory()),
             "-e", f"@{vars_file}"],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        recap = None
        for match in _RECAP_RE.finditer(output):
            if match.group(1) == self.name:
                ok, changed, unreachable, failed = (int(g) for g in match.groups()[1:])
                recap = Recap(ok, changed, unreachable, failed)
        return PlaybookRun(done.returncode, output, recap)

    # --- commands -------------------------------------------------------------------------

    def ssh(self, command: str, timeout: float = 120, check: bool = True) -> str:
        """Run a shell command as root on the target; its stdout."""
        done = subprocess.run(
            ["ssh", *self.ssh_options, f"root@{self.name}", command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{command!r} on {self.name}: {done.returncode}\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done.stdout

    def unit_states(self, units: list[str]) -> dict[str, dict[str, str]]:
        """Unit -> {ActiveState, UnitFileState, NRestarts, MainPID, ...}."""
        props = "ActiveState,UnitFileState,NRestarts,MainPID,SubState"
        states: dict[str, dict[str, str]] = {}
        for unit in units:
            out = self.ssh(f"systemctl show --property={props} {unit}")
            states[unit] = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return states

    def http_get(self, host: str, path: str = "/", port: int = 80) -> tuple[int, str]:
        """GET through the target's router from the host (inside the target's netns)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, "curl", "-sS", "--max-time", "10",
             "-H", f"Host: {host}", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        body, _, code = done.stdout.rpartition("\n")
        return int(code or 0), body

    def wait_http(self, host: str, path: str, expect: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: tuple[int, str] = (0, "")
        while time.monotonic() < deadline:
            last = self.http_get(host, path)
            if last[0] == 200 and expect in last[1]:
                return
            time.sleep(2)
        raise AssertionError(f"http://{host}{path} on {self.name} never served {expect!r}: {last}")

    def sign_in(self, password: str, api_port: int) -> tuple[int, str]:
        """Sign in to the dashboard as admin (through the sign-in form, with its CSRF token);
        the status and body of the apps page then."""
        jar = self.run.work / f"{self.name}-cookies"
        jar.unlink(missing_ok=True)
        base = f"http://127.0.0.1:{api_port}"

        def curl(*args: str) -> str:
            done = subprocess.run(
                ["ip", "netns", "exec", self.name, "curl", "-sS", "--max-time", "20",
                 "-b", str(jar), "-c", str(jar), *args],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            return done.stdout

        form = curl(f"{base}/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token, form[:2000]
        curl("-o", "/dev/null", "--data-urlencode", "username=admin",
             "--data-urlencode", f"password={password}",
             "--data-urlencode", f"csrf_token={token.group(1)}", f"{base}/signin")
        body, _, code = curl("-w", "\n%{http_code}", f"{base}/").rpartition("\n")
        return int(code), body

    def platform_ssh(self, command: str, ssh_port: int) -> str:
        """A command over the platform's SSH (its forced command), as a pushing user."""
        done = subprocess.run(
            ["ssh", *self.ssh_options, "-p", str(ssh_port), f"paas@{self.name}", command],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def git_push(self, repo: Path, app: str, ssh_port: int) -> str:
        env = {
            **os.environ,
            "GIT_SSH_COMMAND": " ".join(
                ["ssh", *(o if " " not in o else f"'{o}'" for o in self.ssh_options)]),
        }
        done = subprocess.run(
            ["git", "-C", str(repo), "push", f"ssh://paas@{self.name}:{ssh_port}/{app}",
             "HEAD:refs/heads/master"],
            capture_output=True, text=True, timeout=600, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stderr
