"""Applying plans: start replicas (network, rootfs, runc), wait until they serve, route
them, retire the old ones, and clean up whatever nothing owns.

Every step is idempotent, so running a reconcile twice changes nothing, and a crash in
the middle is repaired by the next pass.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from paas.build.launch import launch_command
from paas.errors import DeployFailed
from paas.images.layers import LayerStore
from paas.images.store import ImageStore
from paas.model import (
    CONTAINER_PORT,
    WEB,
    DesiredReplica,
    Release,
    Replica,
    ReplicaKey,
    ReplicaState,
)
from paas.network import Attachment, Network
from paas.reconciler.plan import Plan, desired_replicas, plan
from paas.router.nginx import Router
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerInfo, ContainerSpec
from paas.settings import Settings
from paas.state.store import Store

Log = Callable[[str], None]

_LABELS = ("app", "process_type", "index", "release")
SETTLE = 1.0  # seconds a new replica must stay up after it first serves


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Collaborators:
    settings: Settings
    store: Store
    images: ImageStore
    layers: LayerStore
    runtime: Runtime
    network: Network
    router: Router


class Reconciler:
    def __init__(self, parts: Collaborators) -> None:
        self._p = parts
        self._s = parts.settings

    # --- observe ------------------------------------------------------------------------------

    def observe(self, app: str | None = None) -> list[Replica]:
        """Every container of ours (of ``app`` when given) as a replica."""
        attached = self._p.network.attached()
        replicas = []
        for info in self._p.runtime.list():
            replica = _replica(info, attached.get(info.id))
            if replica is None:
                continue
            if app is None or replica.key.app == app:
                replicas.append(replica)
        return replicas

    # --- reconcile ------------------------------------------------------------------------------

    def reconcile_app(self, app: str, release: Release | None = None, log: Log = _quiet) -> Plan:
        """Make app's replicas match its formation for ``release`` (default: the current one).

        New replicas must serve before old ones are retired; if any fails, the new ones are
        removed, the old ones keep serving and ``DeployFailed`` says why.
        """
        release = release or self._p.store.current_release(app)
        observed = self.observe(app)
        if release is None:
            desired: list[DesiredReplica] = []
        else:
            desired = desired_replicas(
                app, release.version, self._p.store.formation(app), release.processes
            )
        todo = plan(desired, observed)
        for cid in todo.remove:
            self._teardown(cid)
        started: list[tuple[DesiredReplica, str, str]] = []
        try:
            for want in todo.start:
                assert release is not None
                log(f"Starting {want.key.dyno} ({release.name})")
                started.append((want, *self._start(want, release)))
            for want, cid, address in started:
                self._wait_serving(want, cid, address)
                log(f"{want.key.dyno} is up at {address}")
        except DeployFailed:
            for _, cid, _ in started:
                self._teardown(cid)
            raise
        self.route(app, release)
        for cid in todo.retire:
            log(f"Stopping {cid}")
            self._p.runtime.stop(cid, self._s.stop_timeout)
            self._p.network.detach(cid)
        return todo

    def route(self, app: str, release: Release | None) -> None:
        """Point the app's router entry at its running web replicas of ``release``
        (or at any running web replica while none of that release runs)."""
        web = [
            r for r in self.observe(app)
            if r.key.process_type == WEB and r.state == ReplicaState.RUNNING and r.address
        ]
        current = [r for r in web if release is not None and r.release == release.version]
        chosen = current or web
        upstreams = sorted(f"{r.address}:{CONTAINER_PORT}" for r in chosen)
        self._p.router.set_app(app, [f"{app}.{self._s.domain}"], upstreams)

    def cleanup(self, known_apps: Iterable[str]) -> None:
        """Remove containers of apps that no longer exist, routes of such apps, and network
        leftovers (netns, veth, leases) that no container owns."""
        apps = set(known_apps)
        containers = self._p.runtime.list()
        ids = {info.id for info in containers}
        for info in containers:
            if info.labels.get("app") not in apps or not all(k in info.labels for k in _LABELS):
                self._teardown(info.id)
        for cid in self._p.network.attached():
            if cid not in ids:
                self._p.network.detach(cid)
        self._p.network.remove_orphans()
        for app in self._p.router.apps() - apps:
            self._p.router.remove_app(app)

    # --- steps ----------------------------------------------------------------------------------

    def _start(self, want: DesiredReplica, release: Release) -> tuple[str, str]:
        key = want.key
        cid = f"{key.app}.{key.process_type}.{key.index}.v{release.version}.{secrets.token_hex(2)}"
        image = self._p.images.load(release.image_id)
        attachment = self._p.network.attach(cid)
        hostname = f"{key.app}-{key.process_type}-{key.index}"
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/app",
            **image.env,
            **release.config,
            "PORT": str(CONTAINER_PORT),
            "DYNO": key.dyno,
            "PAAS_APP": key.app,
            "GIT_REV": release.git_rev,
        }
        spec = ContainerSpec(
            id=cid,
            lowers=tuple(self._p.layers.path(d) for d in reversed(image.layers)),
            command=launch_command(release.processes[key.process_type]),
            env=env,
            limits=self._s.default_limits,
            netns=attachment.netns_path,
            hostname=hostname,
            cwd=image.workdir,
            labels={
                "app": key.app,
                "process_type": key.process_type,
                "index": str(key.index),
                "release": str(release.version),
            },
            hosts=f"127.0.0.1\tlocalhost\n{attachment.address}\t{hostname}\n",
        )
        try:
            self._p.runtime.start(spec)
        except Exception:
            self._teardown(cid)
            raise
        return cid, str(attachment.address)

    def _wait_serving(self, want: DesiredReplica, cid: str, address: str) -> None:
        """A web replica serves when its port accepts; every replica must then stay up for
        ``SETTLE`` seconds (servers such as gunicorn listen before their app has loaded)."""
        deadline = time.monotonic() + self._s.boot_timeout
        up_since: float | None = None
        while True:
            info = self._p.runtime.get(cid)
            if info is None or info.status != "running":
                raise DeployFailed(
                    f"{want.key.dyno} exited during start-up"
                    f"{_exit_text(info)}.{self._log_tail(cid)}"
                )
            if up_since is None and (
                want.key.process_type != WEB or _accepts(address, CONTAINER_PORT)
            ):
                up_since = time.monotonic()
            if up_since is not None and time.monotonic() - up_since >= SETTLE:
                return
            if up_since is None and time.monotonic() > deadline:
                raise DeployFailed(
                    f"{want.key.dyno} did not listen on PORT ({CONTAINER_PORT}) within "
                    f"{self._s.boot_timeout:.0f} s. Make the web process bind 0.0.0.0:$PORT."
                    f"{self._log_tail(cid)}"
                )
            time.sleep(0.05)

    def _log_tail(self, cid: str, lines: int = 15) -> str:
        path = self._p.runtime.log_path(cid)
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return ("\nLast output:\n" + "\n".join(text)) if text else ""

    def _teardown(self, cid: str) -> None:
        self._p.runtime.remove(cid)
        self._p.network.detach(cid)


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _exit_text(info: ContainerInfo | None) -> str:
    if info is None or info.exit_code is None:
        return ""
    if info.oom_killed:
        return f" (exit {info.exit_code}, out of memory)"
    return f" (exit {info.exit_code})"


def _replica(info: ContainerInfo, attachment: Attachment | None) -> Replica | None:
    labels = info.labels
    if not all(k in labels for k in _LABELS):
        return None
    try:
        key = ReplicaKey(labels["app"], labels["process_type"], int(labels["index"]))
        release = int(labels["release"])
    except ValueError:
        return None
    state = {
        "running": ReplicaState.RUNNING,
        "creating": ReplicaState.STARTING,
        "created": ReplicaState.STARTING,
    }.get(info.status, ReplicaState.CRASHED if info.exit_code else ReplicaState.STOPPED)
    return Replica(
        container_id=info.id,
        key=key,
        release=release,
        state=state,
        address=None if attachment is None else str(attachment.address),
        started_at=info.started_at,
        exit_code=info.exit_code,
        reason="out of memory" if info.oom_killed else None,
    )
