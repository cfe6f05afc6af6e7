"""Applying plans: start replicas (network, rootfs, runc), wait until they serve, route
them, retire the old ones, and clean up whatever nothing owns.

Every step is idempotent, so running a reconcile twice changes nothing, and a crash in
the middle is repaired by the next pass.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass

from paas.build.launch import release_spec
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
from paas.runtime.spec import ContainerInfo
from paas.settings import Settings
from paas.state.events import Events
from paas.state.store import Store

Log = Callable[[str], None]

_LABELS = ("app", "process_type", "index", "release")
SETTLE = 1.0  # seconds a new replica must stay up after it first serves
LEASE_GRACE = 120.0  # seconds a lease may exist before its container does


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
    events: Events


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
        store = self._p.store
        release = release or store.current_release(app)
        observed = self.observe(app)
        if release is None or store.stopped(app):
            desired: list[DesiredReplica] = []
        else:
            desired = desired_replicas(
                app, release.version, store.formation(app), release.processes,
                store.generations(app),
            )  # fmt: skip
        todo = plan(desired, observed)
        dead = {r.container_id: r for r in observed}
        for cid in todo.remove:
            self._report_exit(dead[cid])
            self._teardown(cid)
        started: list[tuple[DesiredReplica, str, str]] = []
        try:
            for want in todo.start:
                assert release is not None
                self._say(app, want.key.dyno, f"starting {release.name}", log)
                started.append((want, *self._start(want, release)))
            for want, cid, address in started:
                self._wait_serving(want, cid, address)
                self._say(app, want.key.dyno, f"up at {address}", log)
        except DeployFailed as exc:
            for _, cid, _ in started:
                self._teardown(cid)
            self._say(app, "deploy", f"failed: {exc.message.splitlines()[0]}", _quiet)
            raise
        # Retired replicas leave the router before they are stopped.
        self.route(app, release, exclude=set(todo.retire))
        for cid in todo.retire:
            replica = dead[cid]
            self._say(app, replica.key.dyno, f"stopping ({replica.container_id})", log)
            self._p.runtime.stop(cid, self._s.stop_timeout)
            self._p.network.detach(cid)
        return todo

    def route(self, app: str, release: Release | None, exclude: Set[str] = frozenset()) -> None:
        """Point the app's router entry at its running web replicas of ``release`` (or at any
        running web replica while none of that release runs), leaving out ``exclude``."""
        web = [
            r for r in self.observe(app)
            if r.key.process_type == WEB and r.state == ReplicaState.RUNNING and r.address
            and r.container_id not in exclude
        ]
        current = [r for r in web if release is not None and r.release == release.version]
        chosen = current or web
        upstreams = sorted(f"{r.address}:{CONTAINER_PORT}" for r in chosen)
        names = [f"{app}.{self._s.domain}", *self._p.store.domains(app)]
        self._p.router.set_app(app, names, upstreams)

    def unroute(self, app: str) -> None:
        self._p.router.remove_app(app)

    def cleanup(self, known_apps: Iterable[str]) -> None:
        """Remove containers of apps that no longer exist, routes of such apps, and network
        leftovers (netns, veth, leases) that no container owns."""
        apps = set(known_apps)
        containers = self._p.runtime.list()
        ids = {info.id for info in containers}
        for info in containers:
            if info.labels.get("run") and info.status != "stopped":
                continue  # a one-off run starting or in progress; it removes itself when done
            if info.labels.get("app") not in apps or not all(k in info.labels for k in _LABELS):
                self._teardown(info.id)
        for cid in self._p.network.attached():
            age = self._p.network.leases.age(cid)
            # A fresh lease belongs to a container being started right now.
            if cid not in ids and (age is None or age > LEASE_GRACE):
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
        spec = release_spec(
            container_id=cid,
            release=release,
            image=image,
            layer_paths=tuple(self._p.layers.path(d) for d in image.layers),
            dyno=key.dyno,
            command=release.processes[key.process_type],
            attachment=attachment,
            limits=self._s.default_limits,
            labels={
                "app": key.app,
                "process_type": key.process_type,
                "index": str(key.index),
                "release": str(release.version),
                "generation": str(want.generation),
            },
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

    def _say(self, app: str, source: str, text: str, log: Log) -> None:
        """An event of the app (shown by ``logs``), also passed to ``log`` (the push)."""
        self._p.events.emit(app, source, text)
        log(f"{source}: {text}")

    def _report_exit(self, replica: Replica) -> None:
        code = replica.exit_code
        how = "exited" if code == 0 else "crashed"
        detail = "" if code is None else f", exit {code}"
        if replica.reason:
            detail += f" ({replica.reason})"
        self._p.events.emit(replica.key.app, replica.key.dyno, f"{how}{detail}")

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
    generation = labels.get("generation", "0")
    return Replica(
        container_id=info.id,
        key=key,
        release=release,
        generation=int(generation) if generation.isdigit() else 0,
        state=state,
        address=None if attachment is None else str(attachment.address),
        started_at=info.started_at,
        exit_code=info.exit_code,
        reason="out of memory" if info.oom_killed else None,
    )
