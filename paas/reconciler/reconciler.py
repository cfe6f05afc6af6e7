"""Applying plans: start replicas (network, rootfs, runc), wait until they serve, route
them, retire the old ones, and clean up whatever nothing owns.

Every step is idempotent, so running a reconcile twice changes nothing, and a crash in
the middle is repaired by the next pass.
"""

from __future__ import annotations

import http.client
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass

from paas.appjson import HealthCheck, parse_app_json
from paas.build.launch import release_spec
from paas.errors import DeployFailed, PlatformError
from paas.images.layers import LayerStore
from paas.images.store import ImageStore
from paas.model import (
    CONTAINER_PORT,
    RELEASE_PHASE,
    WEB,
    DesiredReplica,
    Release,
    Replica,
    ReplicaKey,
    ReplicaState,
)
from paas.network import Attachment, Network
from paas.reconciler.backoff import after_crash
from paas.reconciler.plan import Plan, desired_replicas, plan
from paas.router.nginx import Router
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerInfo
from paas.settings import Limits, Settings, limits_for
from paas.state.events import Events
from paas.state.store import Store

Log = Callable[[str], None]

_LABELS = ("app", "process_type", "index", "release")
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
    schedule_retire: Callable[[float], None]  # run ``retire_due`` after this many seconds
    schedule_reconcile: Callable[[str, float], None]  # reconcile APP after this many seconds


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

        New replicas must serve before old ones are retired. For a new ``release``, if any
        fails, the new ones are removed, the old ones keep serving and ``DeployFailed`` says
        why; for the current release (restarts, scaling) a replica that fails its start-up
        counts as a crash and is restarted with backoff.
        """
        store = self._p.store
        going_live = release is not None  # a new release: any failed replica fails it
        release = release or store.current_release(app)
        retiring = store.retiring()
        observed = [r for r in self.observe(app) if r.container_id not in retiring]
        if release is None or store.stopped(app):
            desired: list[DesiredReplica] = []
        else:
            desired = desired_replicas(
                app, release.version, store.formation(app), release.processes,
                store.generations(app),
            )  # fmt: skip
        hold = self._crashes(app, desired, observed, log)
        todo = plan(desired, observed, hold)
        known = {r.container_id: r for r in observed}
        for cid in todo.remove:
            self._teardown(cid)
        modes = store.check_modes(app)
        checks = parse_app_json(release.app_json).healthchecks if release else {}
        # Process types with checks disabled cannot run old and new side by side.
        early = [c for c in todo.retire if modes.get(known[c].key.process_type) == "disabled"]
        if early:
            self.route(app, release, exclude=set(early))
            for cid in early:
                self.stop_replica(known[cid], log)
        started: list[tuple[DesiredReplica, str, str, int, float]] = []
        try:
            for want in todo.start:
                assert release is not None
                self._say(app, want.key.dyno, f"starting {release.name}", log)
                started.append((want, *self._start(want, release), time.monotonic()))
            # All start at once; each one's boot and settle time counts from its own start.
            for want, cid, address, port, since in started:
                ptype = want.key.process_type
                try:
                    self._wait_serving(
                        want, cid, address, port, checks.get(ptype, ()), modes.get(ptype), since
                    )
                except DeployFailed as exc:
                    if going_live:
                        raise
                    # A restart or scale of the live release: this replica stays out of the
                    # router and counts as a crash; the others go on.
                    self._failed_start(want, cid, exc, log)
                    continue
                self._say(app, want.key.dyno, f"up at {address}", log)
        except DeployFailed as exc:
            for _, cid, _, _, _ in started:
                self._teardown(cid)
            self._say(app, "deploy", f"failed: {exc.message.splitlines()[0]}", _quiet)
            raise
        # Old replicas leave the router first, drain, and only then are stopped.
        late = [c for c in todo.retire if c not in early]
        self.route(app, release, exclude=set(late))
        if late and self._s.wait_to_retire > 0:
            store.retire_later(late, time.time() + self._s.wait_to_retire)
            for cid in late:
                self._say(app, known[cid].key.dyno, f"retiring {cid} "
                          f"(draining for {self._s.wait_to_retire:g} s)", log)
            self._p.schedule_retire(self._s.wait_to_retire)
        else:
            for cid in late:
                self.stop_replica(known[cid], log)
        return todo

    def _crashes(
        self, app: str, desired: list[DesiredReplica], observed: list[Replica], log: Log
    ) -> set[ReplicaKey]:
        """Count the crashes of desired slots (once each) and return the slots whose restart
        must wait (backoff); a reconcile is scheduled for when each is due (and the periodic
        pass catches up should that be lost)."""
        wanted = {d.key for d in desired}
        for r in observed:
            if r.state not in (ReplicaState.RUNNING, ReplicaState.STARTING) and r.key in wanted:
                self._count_crash(r.key, r.container_id, r.started_at, _exit_text(r), log)
        states, now = self._p.store.crashes(app), time.time()  # now: after the counting
        return {k for k in wanted if k.dyno in states and states[k.dyno].restart_at > now}

    def _count_crash(
        self, key: ReplicaKey, cid: str, started_at: float | None, what: str, log: Log
    ) -> None:
        store, now = self._p.store, time.time()
        previous = store.crashes(key.app).get(key.dyno)
        state = after_crash(previous, cid, started_at, now)
        if state == previous:
            return
        store.record_crash(key.app, key.dyno, state)
        wait = state.restart_at - now
        self._say(key.app, key.dyno,
                  f"{what}; restarting" + (f" in {wait:.0f} s" if wait > 0 else ""), log)
        if wait > 0:
            self._p.schedule_reconcile(key.app, wait)

    def _failed_start(self, want: DesiredReplica, cid: str, exc: DeployFailed, log: Log) -> None:
        info = self._p.runtime.get(cid)
        started_at = info.started_at if info is not None else None
        self._teardown(cid)
        self._count_crash(want.key, cid, started_at, f"failed to start: "
                          f"{exc.message.splitlines()[0]}", log)

    def retire_due(self, now: float | None = None) -> None:
        """Stop the retiring replicas whose drain time is over."""
        now = time.time() if now is None else now
        store = self._p.store
        retiring = store.retiring()
        if not retiring:
            return
        present = {info.id for info in self._p.runtime.list()}
        replicas = {r.container_id: r for r in self.observe()}
        for cid, deadline in retiring.items():
            if cid not in present:
                store.retired(cid)
            elif deadline <= now:
                replica = replicas.get(cid)
                if replica is not None:
                    self.stop_replica(replica, _quiet)
                else:
                    self._teardown(cid)
                store.retired(cid)

    def release_phase(self, release: Release, log: Log = _quiet) -> None:
        """Run the release's ``release`` command once, in a one-off container, before the
        release goes live; a failure fails the release and changes nothing."""
        command = release.processes.get(RELEASE_PHASE)
        if not command:
            return
        cid = f"{release.app}.release.v{release.version}.{secrets.token_hex(2)}"
        image = self._p.images.load(release.image_id)
        self._say(release.app, "release", f"running `{command}` for {release.name}", log)
        attachment = self._p.network.attach(cid)
        try:
            spec = release_spec(
                container_id=cid,
                release=release,
                image=image,
                layer_paths=tuple(self._p.layers.path(d) for d in image.layers),
                dyno=RELEASE_PHASE,
                command=command,
                attachment=attachment,
                limits=self._s.default_limits,
                labels={"app": release.app, "run": "1"},
            )
            code = self._p.runtime.run(spec, lambda line: log(f"       {line}"),
                                       self._s.release_timeout)
        finally:
            self._p.network.detach(cid)
        if code != 0:
            raise DeployFailed(
                f"The release command `{command}` of {release.name} failed (exit {code}); "
                "nothing changed."
            )

    def route(self, app: str, release: Release | None, exclude: Set[str] = frozenset()) -> None:
        """Point the app's router entry at its running web replicas of ``release`` (or at any
        running web replica while none of that release runs), leaving out ``exclude`` and
        the replicas that are retiring."""
        leaving = exclude | set(self._p.store.retiring())
        web = [
            r for r in self.observe(app)
            if r.key.process_type == WEB and r.state == ReplicaState.RUNNING and r.address
            and r.container_id not in leaving
        ]
        current = [r for r in web if release is not None and r.release == release.version]
        chosen = current or web
        upstreams = sorted(f"{r.address}:{r.port}" for r in chosen)
        names = [f"{app}.{self._s.domain}", *self._p.store.domains(app)]
        ports = [p.host for p in self._p.store.ports(app)]
        self._p.router.set_app(app, names, upstreams, ports)

    def _app_port(self, app: str) -> int | None:
        """The port ``ports:set`` gave the app's web process, if any."""
        ports = self._p.store.ports(app)
        return ports[0].container if ports else None

    def limits_of(self, app: str, process_type: str) -> Limits:
        return limits_for(self._p.store.limits(app), process_type, self._s.default_limits)

    def apply_limits(self, app: str, process_type: str | None, log: Log = _quiet) -> list[str]:
        """Apply the app's limits to its running replicas (of ``process_type``) in place;
        returns the process types the kernel would not update live (restart those)."""
        refused: set[str] = set()
        for r in self.observe(app):
            ptype = r.key.process_type
            if r.state != ReplicaState.RUNNING or process_type not in (None, ptype):
                continue
            try:
                self._p.runtime.update(r.container_id, self.limits_of(app, ptype))
                self._say(app, r.key.dyno, "limits updated", log)
            except PlatformError as exc:
                self._say(app, r.key.dyno, f"limits not applied live ({exc.message}); "
                          "restarting", log)
                refused.add(ptype)
        return sorted(refused)

    def unroute(self, app: str) -> None:
        self._p.router.remove_app(app)

    def cleanup(self, known_apps: Iterable[str]) -> None:
        """Remove replicas of apps that no longer exist, dead containers that are not
        replicas, routes of gone apps, and network leftovers (netns, veth, leases) that no
        container owns. Live containers that are not replicas (builds, one-off runs, release
        commands) remove themselves when done; only one older than any of them may run is
        debris."""
        apps = set(known_apps)
        containers = self._p.runtime.list()
        ids = {info.id for info in containers}
        oldest = time.time() - max(self._s.build_timeout, self._s.release_timeout) - 600
        for info in containers:
            replica = all(k in info.labels for k in _LABELS)
            if replica and info.labels["app"] in apps:
                continue  # reconcile_app owns it
            live = info.status != "stopped"
            if not replica and live and (info.started_at or 0) > oldest:
                continue
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

    def _start(self, want: DesiredReplica, release: Release) -> tuple[str, str, int]:
        """Start a replica; returns its container id, address and port."""
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
            limits=self.limits_of(key.app, key.process_type),
            port=self._app_port(key.app),
            storage=tuple(self._p.store.storage(key.app)),
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
        return cid, str(attachment.address), self._app_port(key.app) or image.port or CONTAINER_PORT

    def _wait_serving(
        self, want: DesiredReplica, cid: str, address: str, port: int,
        checks: tuple[HealthCheck, ...], mode: str | None, since: float,
    ) -> None:
        """A new replica passes when it is up and (web) its port accepts within
        ``boot_timeout`` of its start at ``since`` (monotonic), then passes its health checks,
        or with none is still up ``checks_wait`` seconds after its start (servers such as
        gunicorn listen before their app has loaded). Checks "skipped": up is enough."""
        self._alive(want, cid)
        if mode == "skipped":
            return
        web = want.key.process_type == WEB
        deadline = since + self._s.boot_timeout
        while web and not port_accepts(address, port):
            self._alive(want, cid)
            if time.monotonic() > deadline:
                raise DeployFailed(
                    f"{want.key.dyno} did not listen on PORT ({port}) within "
                    f"{self._s.boot_timeout:.0f} s. Make the web process bind 0.0.0.0:$PORT."
                    f"{self._log_tail(cid)}"
                )
            time.sleep(0.05)
        if web and checks:
            for check in checks:
                self._check(want, cid, address, port, check)
            return
        settle_until = since + self._s.checks_wait
        while time.monotonic() < settle_until:
            time.sleep(0.1)
            self._alive(want, cid)

    def _alive(self, want: DesiredReplica, cid: str) -> None:
        info = self._p.runtime.get(cid)
        if info is None or info.status != "running":
            raise DeployFailed(
                f"{want.key.dyno} exited during start-up{_exit_detail(info)}."
                f"{self._log_tail(cid)}"
            )

    def _check(
        self, want: DesiredReplica, cid: str, address: str, port: int, check: HealthCheck
    ) -> None:
        label = check.name or f"GET {check.path}"
        time.sleep(check.initial_delay)
        failure = ""
        for attempt in range(1, check.attempts + 1):
            self._alive(want, cid)
            failure = http_check(address, port, check)
            if not failure:
                return
            self._p.events.emit(want.key.app, want.key.dyno,
                                f"health check {label} failed ({attempt}/{check.attempts}): "
                                f"{failure}")
            if attempt < check.attempts:
                time.sleep(check.wait)
        raise DeployFailed(
            f"{want.key.dyno} failed its health check {label} after {check.attempts} "
            f"attempts: {failure}.{self._log_tail(cid)}"
        )

    def stop_replica(self, replica: Replica, log: Log = _quiet) -> None:
        """Stop one replica now and free its address."""
        self._say(replica.key.app, replica.key.dyno, f"stopping {replica.container_id}", log)
        grace = self._p.store.stop_timeout(replica.key.app)
        self._p.runtime.stop(replica.container_id, self._s.stop_timeout if grace is None else grace)
        self._p.network.detach(replica.container_id)

    def _say(self, app: str, source: str, text: str, log: Log) -> None:
        """An event of the app (shown by ``logs``), also passed to ``log`` (the push)."""
        self._p.events.emit(app, source, text)
        log(f"{source}: {text}")

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


def http_check(address: str, port: int, check: HealthCheck) -> str:
    """Run one HTTP health check; "" when it passes, else what went wrong."""
    conn = http.client.HTTPConnection(address, port, timeout=check.timeout)
    try:
        conn.request("GET", check.path, headers={"User-Agent": "paas-healthcheck"})
        response = conn.getresponse()
        body = response.read(65536).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if not 200 <= response.status < 400:
        return f"status {response.status}"
    if check.content and check.content not in body:
        return f"the answer does not contain {check.content!r}"
    return ""


def port_accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _exit_text(replica: Replica) -> str:
    """``crashed, exit 137 (out of memory)``, ``exited, exit 0``."""
    code = replica.exit_code
    text = "exited" if code == 0 else "crashed"
    if code is not None:
        text += f", exit {code}"
    if replica.reason:
        text += f" ({replica.reason})"
    return text


def _exit_detail(info: ContainerInfo | None) -> str:
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
    generation, port = labels.get("generation", "0"), labels.get("port", "")
    return Replica(
        container_id=info.id,
        key=key,
        release=release,
        generation=int(generation) if generation.isdecimal() else 0,
        port=int(port) if port.isdecimal() else CONTAINER_PORT,
        state=state,
        address=None if attachment is None else str(attachment.address),
        started_at=info.started_at,
        exit_code=info.exit_code,
        reason="out of memory" if info.oom_killed else None,
    )
