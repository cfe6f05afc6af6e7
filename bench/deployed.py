"""The platform and app that the whole-platform benchmarks share (redeploy, rollback, scaling,
router throughput), started once for all of them.

``deployed_platform()`` runs a whole platform (embedded Redis, gunicorn, Celery, nginx; the
end-to-end tests' ``Platform``) in a temp root on free ports and its own subnet, with the
test stack hard-linked in so that no stack is built, and pushes a small Flask app ``bench``
to it over git smart HTTP (cold, not measured). It yields a ``Deployed``: the platform, the
app's checkout and its git remote, plus the steps the benchmarks time (push, CLI commands,
what the router answers, what its config lists). On the way out everything it made is
removed (``paas-platform uninstall``, the temp root, its log, the checkout), on failure too.

The app (flask and gunicorn from ``requirements.txt``, ``PROCFILE``) answers ``version N`` at
``/`` (N changes with each pushed commit) and its replica's ``DYNO`` (``web.1``, ``web.2``,
...) at ``/dyno``.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paas.settings import Settings
from tests.e2e.platform_fixture import Platform, new_platform
from tests.stack_cache import seed_platform_root

APP_NAME = "bench"
HOST = f"{APP_NAME}.paas.test"
APP = """\
import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "version {n}\\n"


@app.get("/dyno")
def dyno():
    return os.environ["DYNO"] + "\\n"
"""
# One gthread worker (a replica is limited to one CPU by default) that keeps connections
# alive: gunicorn's default sync worker closes each one, and the TIME_WAIT sockets of tens of
# thousands of connections in a throughput run would slow every later connect to the replica.
PROCFILE = "web: gunicorn app:app --bind 0.0.0.0:$PORT --worker-class gthread --threads 4\n"
GIT_TIMEOUT = 900.0
# A line of the app's upstream in the router's config: "    server 198.19.244.7:5000 ...;"
_UPSTREAM_RE = re.compile(r"^\s*server\s+(\S+:\d+)[\s;]", re.MULTILINE)


def body(n: int) -> str:
    """What the app answers at ``/`` once commit number ``n`` is deployed."""
    return f"version {n}\n"


@dataclass
class Deployed:
    platform: Platform
    repo: Path
    remote: str
    bodies: dict[int, str] = field(default_factory=dict)  # release version -> answer at "/"
    commits: int = 0  # versions of app.py committed so far

    # --- git -------------------------------------------------------------------------------

    def git(self, *args: str) -> None:
        done = subprocess.run(["git", *args], cwd=self.repo, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"git {args[0]} exited {done.returncode}:\n{done.stderr}")

    def commit(self) -> int:
        """Commit the next version of the app (a one-line change); its number N."""
        n = self.commits
        self.commits += 1
        (self.repo / "app.py").write_text(APP.replace("{n}", str(n)))
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"version {n}")
        return n

    def push(self, ref: str = "master") -> None:
        """``git push`` of HEAD to ``ref``; for master it returns once the release is live."""
        self.git("push", "-q", self.remote, f"HEAD:refs/heads/{ref}")

    def record_release(self, answer: str) -> int:
        """Note that the current release answers ``answer`` at ``/``; its version."""
        version = int(self.cli("releases", APP_NAME, "--json")["releases"][0]["version"])
        self.bodies[version] = answer
        return version

    def deploy(self) -> int:
        """Commit the next version, push it, wait until it answers; the release's version."""
        n = self.commit()
        self.push()
        self.wait_for_body(body(n))
        return self.record_release(body(n))

    @property
    def settings(self) -> Settings:
        """The platform's settings (``PAAS_CHECKS_WAIT``, ``PAAS_WAIT_TO_RETIRE``, ...)."""
        return Settings.from_env(self.platform.env)

    # --- the CLI ---------------------------------------------------------------------------

    def cli(self, *args: str) -> Any:
        """``paas ARGS`` (add ``--json`` for a parsed answer); raises if it fails."""
        done = self.platform.cli(*args)
        if done.returncode != 0:
            raise RuntimeError(f"paas {' '.join(args)} exited {done.returncode}: "
                               f"{done.stderr.strip()}")
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def scale(self, count: int) -> None:
        self.cli("ps:scale", APP_NAME, f"web={count}")

    def replicas(self) -> list[dict[str, Any]]:
        """``paas ps bench --json``: the app's replicas."""
        return list(self.cli("ps", APP_NAME, "--json")["replicas"])

    # --- the router ------------------------------------------------------------------------

    @property
    def app_conf(self) -> Path:
        return self.platform.root / "nginx" / "apps" / f"{APP_NAME}.conf"

    def upstreams(self) -> list[str]:
        """The ``server`` lines of the app's upstream in the router's config file."""
        try:
            return _UPSTREAM_RE.findall(self.app_conf.read_text())
        except FileNotFoundError:
            return []

    def get(self, path: str = "/") -> tuple[int, str]:
        try:
            return self.platform.get(HOST, path, timeout=2)
        except OSError:
            return 0, ""

    def dynos(self, requests: int) -> set[str]:
        """The ``DYNO`` values that answer ``requests`` GETs of ``/dyno`` through the router,
        sent one after another on one new keep-alive connection."""
        seen: set[str] = set()
        conn = http.client.HTTPConnection("127.0.0.1", self.platform.http_port, timeout=5)
        try:
            for _ in range(requests):
                conn.request("GET", "/dyno", headers={"Host": HOST})
                response = conn.getresponse()
                text = response.read().decode("utf-8", "replace").strip()
                if response.status == 200:
                    seen.add(text)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        return seen

    # --- waiting ---------------------------------------------------------------------------

    def wait_for_body(self, expected: str, timeout: float = 60.0) -> None:
        """Return as soon as the router answers ``expected`` at ``/``."""
        deadline = time.monotonic() + timeout
        while self.get() != (200, expected):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the router never answered {expected!r}")
            time.sleep(0.01)

    def wait_routed(self, count: int, timeout: float = 120.0) -> tuple[float, float]:
        """Wait until the router's config lists exactly ``count`` replicas of the app and then
        exactly ``count`` distinct ``DYNO`` values answer one round of requests through it
        (``3 * count``, at least 20: nginx takes the upstreams in turn, so each answers).
        Returns the ``time.monotonic()`` of each of the two moments."""
        deadline = time.monotonic() + timeout
        listed = answered = 0.0
        while not answered:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} replicas were not routed within {timeout:.0f} s "
                                   f"(config: {len(self.upstreams())})")
            if len(self.upstreams()) != count:
                listed = 0.0
                time.sleep(0.01)
                continue
            listed = listed or time.monotonic()
            if len(self.dynos(max(20, 3 * count))) == count:
                answered = time.monotonic()
            else:
                time.sleep(0.01)
        return listed, answered

    def wait_replicas(self, count: int, timeout: float = 120.0) -> None:
        """Wait until ``paas ps`` shows exactly ``count`` replicas (retired ones stopped)."""
        deadline = time.monotonic() + timeout
        while len(self.replicas()) != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app did not settle at {count} replicas")
            time.sleep(0.2)


@contextmanager
def deployed_platform(preferred_subnet: str = "198.19.244.0/24") -> Iterator[Deployed]:
    """A running platform with the app ``bench`` deployed (release v1, ``version 0``)."""
    platform = new_platform(preferred_subnet)
    work = Path(tempfile.mkdtemp(prefix="paas-bench-app-"))
    try:
        seed_platform_root(platform.root)
        platform.start()
        remote = f"http://paas:{platform.token}@127.0.0.1:{platform.env['PAAS_API_PORT']}"
        deployed = Deployed(platform, work / APP_NAME, f"{remote}/git/{APP_NAME}.git")
        deployed.repo.mkdir()
        (deployed.repo / "requirements.txt").write_text("flask\ngunicorn\n")
        (deployed.repo / "Procfile").write_text(PROCFILE)
        deployed.git("init", "-q", "-b", "master")
        deployed.git("config", "user.email", "bench@example.test")
        deployed.git("config", "user.name", "bench")
        deployed.deploy()  # cold: creates the app and builds its dependencies
        yield deployed
    except BaseException:
        print(f"the platform's log ends:\n{platform.tail()}", file=sys.stderr)
        raise
    finally:
        platform.stop()
        platform.uninstall()
        shutil.rmtree(platform.root, ignore_errors=True)
        platform.log_path.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
