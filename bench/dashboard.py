"""Dashboard pages: response time with 50 apps and 200 running replicas.

What is real: a redis-server (the platform's embedded configuration, on a Unix socket in a
temp root), the store and events written through ``Services`` (50 apps made with
``create_app``, with their git repos), 200 runc containers started by the platform's
``Network.attach`` + ``Runtime.start`` (netns, veth, leased address, overlay, shim, cgroups)
and labelled as replicas (``web.1-3`` running ``busybox httpd`` and ``worker.1`` running
``sleep``, under tini), and the web server: the platform's own gunicorn command line
(``paas.platform.process_argv(settings, "web")``: 2 gthread workers of 8 threads) serving
``paas.web.wsgi``, signed in over HTTP like a browser, each page fetched over keep-alive
HTTP on loopback. The pages read the replicas as they do in production (``runc list``, the
containers' files, leases, cgroup files for memory and CPU).

What is not: the releases point at no built image (the containers run busybox from a layer
made here, started directly rather than by the reconciler, whose health checks and settle
time would take minutes for 200 replicas and are not what is measured), and no worker or
router runs.

Everything lives under its own temp root, bridge, subnet, netns prefix and cgroup parent, and
is removed at the end, on failure too (``paas.platform.uninstall`` plus the temp dirs).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench.common import Table, build_busybox_layer, duration, free_subnet, stats, wait_for_port
from paas.model import Release
from paas.platform import (
    ProcessGroup,
    ensure_admin,
    prepare,
    process_argv,
    process_user,
    uninstall,
    wait_for_redis,
)
from paas.runtime.spec import ContainerSpec
from paas.services import Services
from paas.settings import Limits, Settings
from paas.web.auth import set_admin_password
from paas.wiring import network, runtime, worker_services

APPS = 50
REPLICAS = {"web": 3, "worker": 1}  # per app: 4, so 200 in all
PASSWORD = "bench password, not secret"
BUSY_APP = "app-07"
PAGES = (
    ("apps list", "/"),
    ("apps list, live fragment (polled every second)", "/live"),
    ("one app (4 replicas)", f"/apps/{BUSY_APP}"),
    ("one app, live fragment (polled every second)", f"/apps/{BUSY_APP}/live"),
    ("one app's logs", f"/apps/{BUSY_APP}/logs"),
    ("one app's events", f"/apps/{BUSY_APP}/events"),
)
COMMANDS = {
    "web": ("/bin/httpd", "-f", "-p", "5000", "-h", "/www"),
    "worker": ("/bin/sleep", "100000"),
}
LIMITS = Limits(memory_bytes=32 * 1024**2, cpu=0.5, pids=16)


@dataclass
class Result:
    runs: int
    apps: int
    replicas: int
    seed_seconds: float
    pages: dict[str, list[float]]  # label -> seconds per request


def _release(app: str) -> Release:
    return Release(
        app=app, version=1, image_id="busybox", config={"GREETING": "hi"},
        processes={"web": " ".join(COMMANDS["web"]), "worker": " ".join(COMMANDS["worker"])},
        git_rev="0" * 40, description="Deploy 0000000", created_at=time.time(),
        created_by="bench",
    )  # fmt: skip


def _seed(services: Services, layer: Path) -> int:
    """50 apps with a release, a formation and events; their replicas as running containers."""
    s = services.settings
    net, rt = network(s), runtime(s)
    net.ensure_bridge()
    started = 0
    for n in range(APPS):
        app = f"app-{n:02d}"
        services.create_app(app)
        services.store.add_release(_release(app))
        services.store.set_formation(app, REPLICAS)
        services.events.emit(app, "deploy", "v1 by bench")
        for ptype, count in REPLICAS.items():
            for index in range(1, count + 1):
                cid = f"{app}.{ptype}.{index}.v1.b{n:02d}"
                attachment = net.attach(cid)
                labels = {"app": app, "process_type": ptype, "index": str(index),
                          "release": "1", "generation": "0"}  # fmt: skip
                rt.start(
                    ContainerSpec(
                        id=cid, lowers=(layer,), command=COMMANDS[ptype], env={"HOME": "/"},
                        limits=LIMITS, netns=attachment.netns_path, labels=labels,
                    )
                )  # fmt: skip
                services.events.emit(app, f"{ptype}.{index}", f"up at {attachment.address}")
                started += 1
    return started


class _Browser:
    """One keep-alive HTTP connection with a session cookie, as a browser holds."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return response.status, text

    def sign_in(self) -> None:
        _, page = self.request("GET", "/signin")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if match is None:
            raise RuntimeError("the sign-in page has no CSRF token")
        form = {"csrf_token": match.group(1), "username": "admin", "password": PASSWORD}
        status, _ = self.request("POST", "/signin", urlencode(form))
        if status != 303:
            raise RuntimeError(f"signing in answered {status}")


def _start(
    group: ProcessGroup, name: str, settings: Settings, env: dict[str, str], base: Path
) -> None:
    """Start a platform process as ``paas-platform run`` does, its output to a file."""
    with (base / f"{name}.log").open("ab") as log:
        argv, user = process_argv(settings, name), process_user(settings, name)
        group.start(name, argv, env, user, output=log)


def measure(runs: int = 20) -> Result:
    """Seed, then fetch each page ``runs`` times (after one uncounted fetch)."""
    base = Path(tempfile.mkdtemp(prefix="paas-bench-dash-", dir="/var/tmp"))
    base.chmod(0o755)  # the API runs as the platform's user: it must reach the root below
    settings = Settings.from_env({
        "PAAS_ROOT": str(base / "root"), "PAAS_SUBNET": str(free_subnet("198.19.160.0/24")),
        "PAAS_BIND": "127.0.0.1", "PAAS_API_PORT": str(_free_port()), "PAAS_STOP_TIMEOUT": "2",
    })  # fmt: skip
    prepare(settings, out=lambda _line: None)  # directories, configs, the platform's user
    env = {**os.environ, **settings.to_env(), "PAAS_SETTINGS_FILE": str(settings.settings_file)}
    group = ProcessGroup()  # the platform's own: redis, agent, gunicorn; stopped together
    try:
        _start(group, "redis", settings, env, base)
        wait_for_redis(settings, group)
        services = worker_services(settings)
        ensure_admin(settings, out=lambda _line: None)  # the session key, for the API's user
        set_admin_password(services.store, PASSWORD)
        t0 = time.perf_counter()
        replicas = _seed(services, build_busybox_layer(base / "layer"))
        seeded = time.perf_counter() - t0
        _start(group, "agent", settings, env, base)  # the API asks it for the replicas
        _start(group, "web", settings, env, base)
        wait_for_port("127.0.0.1", settings.api_port, timeout=60)
        browser = _Browser(settings.api_port)
        browser.sign_in()
        pages: dict[str, list[float]] = {}
        for label, path in PAGES:
            status, text = browser.request("GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {text[:300]}")
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                browser.request("GET", path)
                times.append(time.perf_counter() - t)
            pages[label] = times
        _check_page(browser, replicas)
        return Result(runs, APPS, replicas, seeded, pages)
    finally:
        try:
            uninstall(settings)
        finally:
            group.stop()
            shutil.rmtree(base, ignore_errors=True)


def _check_page(browser: _Browser, replicas: int) -> None:
    """The apps page really listed every app with its replicas running."""
    _, text = browser.request("GET", "/")
    running = sum(int(m) for m in re.findall(r"(?:web|worker) (\d+)/\d+", text))
    if text.count('href="/apps/app-') != APPS or running != replicas:
        raise RuntimeError(f"the apps page shows {running} running replicas, not {replicas}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table(result: Result) -> Table:
    t = Table(
        title="Dashboard pages",
        about=(
            f"Response time of the dashboard's pages with {result.apps} apps and "
            f"{result.replicas} running replicas (runc containers of busybox, 4 per app), "
            "served by the platform's gunicorn command and fetched one at a time over a "
            f"keep-alive connection on loopback with a signed-in session, {result.runs} "
            "times each after one uncounted fetch. Each page observes the replicas as in "
            "production: the API (as the platform's user) asks the agent (root), which reads "
            "`runc list`, container files and leases; memory and CPU come from cgroups on an "
            "app's page, and the logs page's lines from the agent too. Releases point at no "
            "built image and no worker runs; "
            f"seeding the apps and starting the containers took {result.seed_seconds:.1f} s."
        ),
        columns=("page", "median", "min", "max"),
    )
    for label, times in result.pages.items():
        median, low, high = stats(times)
        t.rows.append((label, duration(median), duration(low), duration(high)))
    return t
