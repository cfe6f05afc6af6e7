"""A whole platform (redis, gunicorn, celery, nginx, sshd) on free ports in a temp root."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import free_subnet

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def runc_list(runc_root: Path) -> list[dict[str, Any]]:
    """``runc list`` of the platform's containers, read again when a container was deleted
    while runc listed them (it then fails on the state dir it had just found)."""
    for _ in range(5):
        done = subprocess.run(
            ["runc", "--root", str(runc_root), "list", "--format", "json"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.returncode == 0:
            return list(json.loads(done.stdout or "[]") or [])
        if "no such file or directory" not in done.stderr:
            break
    raise AssertionError(f"runc list failed: {done.stderr}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    root: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['PAAS_API_PORT']}"

    @property
    def http_port(self) -> int:
        return int(self.env["PAAS_HTTP_PORT"])

    @property
    def ssh_port(self) -> int:
        return int(self.env["PAAS_SSH_PORT"])

    @property
    def token(self) -> str:
        return (self.root / "api-token").read_text().strip()

    def start(self, timeout: float = 900.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "paas-platform"), "run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"platform exited: {self.tail()}")
            if (self.root / "api-token").exists():
                try:
                    req = urllib.request.Request(
                        f"{self.api}/api/v1/apps",
                        headers={"Authorization": f"Bearer {self.token}"},
                    )
                    with urllib.request.urlopen(req, timeout=2):
                        return
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.5)
        raise RuntimeError(f"platform did not come up: {self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def uninstall(self) -> None:
        subprocess.run(
            [str(VENV_BIN / "paas-platform"), "uninstall"], env=self.env, timeout=180, check=False
        )

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cli(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in self.env.items() if k not in ("PAAS_API_URL", "PAAS_TOKEN")}
        return subprocess.run(
            [str(VENV_BIN / "paas"), *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def get(self, host: str, path: str = "/", timeout: float = 10) -> tuple[int, str]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def new_platform(preferred_subnet: str) -> Platform:
    """A platform on free ports and a /24 no interface of this host uses yet."""
    subnet = str(free_subnet(preferred_subnet))
    root = Path(tempfile.mkdtemp(prefix="paas-e2e-", dir="/var/tmp"))
    env = {
        **os.environ,
        "PAAS_ROOT": str(root),
        "PAAS_HTTP_PORT": str(free_port()),
        "PAAS_API_PORT": str(free_port()),
        "PAAS_SSH_PORT": str(free_port()),
        "PAAS_BIND": "127.0.0.1",
        "PAAS_SUBNET": subnet,
        "PAAS_BOOT_TIMEOUT": "20",
        "PAAS_STOP_TIMEOUT": "5",
        "PAAS_WAIT_TO_RETIRE": "3",
    }
    env.pop("PAAS_REDIS_URL", None)
    return Platform(root=root, env=env, log_path=root.parent / f"{root.name}.log")
