"""Use cases every edge calls (CLI through the API, the dashboard, git hooks, tasks).

Commands only write desired state and ask for a reconcile; the worker-side use cases
(``deploy``, ``reconcile_app``, ``reconcile_all``) make it real.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from paas.appjson import HealthCheck, parse_app_json
from paas.build.buildpack import BuildpackBuilder, chosen_buildpack
from paas.build.docker_builder import DOCKERFILE, DockerfileBuilder
from paas.build.options import build_options, checked_builder_setting, checked_stack
from paas.errors import BuildFailed, Conflict, DeployFailed, InvalidInput, NotFound, PaasError
from paas.gitserver.repos import RepoStore
from paas.gitserver.sshd import parse_public_key, validate_key_name
from paas.images.layers import LayerStore
from paas.images.stack import StackBuilder
from paas.images.store import ImageStore
from paas.model import (
    APP_USER,
    CHECK_MODES,
    RELEASE_PHASE,
    WEB,
    App,
    Image,
    PortMap,
    Release,
    StorageMount,
    is_env_text,
    parse_port_map,
    parse_storage_mount,
    validate_app_name,
    validate_config_key,
)
from paas.procfile import parse_procfile, validate_process_type
from paas.reconciler.reconciler import Reconciler
from paas.router.nginx import validate_server_name
from paas.runtime.runtime import Runtime
from paas.settings import Limits, Settings, checked_limits, limits_for, parse_size
from paas.state.events import Events
from paas.state.logstream import LogStreams
from paas.state.store import Build, Operation, Store

log = logging.getLogger(__name__)

MAX_SCALE = 50
KEPT_RELEASES = 10  # the images of this many last releases of each app stay for rollbacks
GC_GRACE = 3600.0  # seconds a new layer is kept before it may be collected


class TaskQueue(Protocol):
    def enqueue_deploy(self, build_id: str) -> None: ...
    def enqueue_reconcile(self, app: str, delay: float = 0.0) -> None: ...
    def enqueue_operation(self, op_id: str) -> None: ...
    def enqueue_retire(self, delay: float) -> None: ...


@dataclass(frozen=True)
class AppInfo:
    app: App
    release: Release | None
    formation: Mapping[str, int]
    web_url: str
    git_http: str
    git_ssh: str
    domains: tuple[str, ...] = ()


def check_storage_dir(host: Path, allowed: Sequence[Path]) -> None:
    """``InvalidInput`` unless ``host`` is below one of the ``allowed`` storage dirs."""
    if not any(host.is_relative_to(d) and host != d for d in allowed):
        dirs = ", ".join(str(d) for d in allowed)
        raise InvalidInput(f"{host} is outside the storage dirs ({dirs}); use a dir below one "
                           "of them (PAAS_STORAGE_ALLOW sets them).")


def prepare_storage_dir(host: Path) -> None:
    """A storage dir, made if missing (owned by the user buildpack apps run as); one that
    was there is kept as is. ``InvalidInput`` when it is not a plain directory."""
    if host.is_symlink() or (host.exists() and not host.is_dir()):
        raise InvalidInput(f"{host} must be a directory.")
    created = not host.exists()
    host.mkdir(parents=True, exist_ok=True)
    if host.resolve() != host:
        raise InvalidInput(f"{host} leads elsewhere through a symbolic link.")
    if created:
        os.chown(host, *APP_USER)


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    logs: LogStreams
    events: Events
    repos: RepoStore
    queue: TaskQueue
    # Worker side (None in processes that only record desired state).
    worker: WorkerParts | None = None
    # makes an allowed storage dir ready on the host (root: by the agent, or in this process)
    storage_dirs: Callable[[Path], None] | None = None

    # --- apps ---------------------------------------------------------------------------------

    def create_app(self, name: str) -> App:
        validate_app_name(name)
        app = self.store.create_app(name)
        self.repos.ensure(name)
        return app

    def ensure_app(self, name: str) -> None:
        """Create the app unless it exists (a push to a new app creates it, as in Dokku)."""
        validate_app_name(name)
        if not self.store.app_exists(name):
            self.create_app(name)

    def list_apps(self) -> list[App]:
        return self.store.list_apps()

    def app_info(self, name: str) -> AppInfo:
        app = self.store.get_app(name)
        s = self.settings
        host = "127.0.0.1" if s.bind in ("0.0.0.0", "") else s.bind
        port = "" if s.http_port == 80 else f":{s.http_port}"
        return AppInfo(
            app=app,
            release=self.store.current_release(name),
            formation=self.store.formation(name),
            web_url=f"http://{name}.{s.domain}{port}/",
            git_http=f"{s.api_url}/git/{name}.git",
            git_ssh=f"ssh://{s.ssh_user}@{host}:{s.ssh_port}/{name}",
            domains=tuple(self.store.domains(name)),
        )

    # --- pushes and deploys ---------------------------------------------------------------------

    def push_received(self, app: str, rev: str, actor: str = "git") -> Build:
        self.ensure_app(app)
        build = self.store.new_build(app, rev, actor)
        self.logs.append(build.id, f"Build {build.id} queued for {rev[:7]}")
        self.queue.enqueue_deploy(build.id)
        return build

    def deploy(self, build_id: str) -> None:
        """Build the pushed revision, release it and wait until it serves (worker side)."""
        worker = self._worker()
        build = self.store.get_build(build_id)
        if build.status in ("succeeded", "failed"):
            return  # a redelivered task: the build already ran
        out = _Output(self.logs, build_id)
        try:
            with self.store.app_lock(build.app):
                self.store.save_build(replace(build, status="running"))
                release = worker.build_and_release(self, build, out)
            self.store.save_build(replace(build, status="succeeded", release=release.version))
            self.events.emit(build.app, "deploy", f"{release.name} by {build.actor}")
            url = self.app_info(build.app).web_url
            self.logs.finish(build_id, True, f"Released {release.name}: {url}", keep=True)
        except PaasError as exc:
            self.store.save_build(replace(build, status="failed", message=exc.message))
            self.logs.finish(build_id, False, exc.message)
        except Exception as exc:
            log.exception("deploy of %s failed", build_id)
            self.store.save_build(replace(build, status="failed", message=str(exc)))
            self.logs.finish(build_id, False, f"Internal error: {exc}. See the worker's log.")
            raise

    # --- changes carried out by the worker ------------------------------------------------------

    def request(
        self, app: str, kind: str, params: Mapping[str, Any], actor: str, wait: float = 600.0
    ) -> str:
        """Queue a change of ``app`` and wait for it; returns its closing message, or raises
        ``DeployFailed`` with the reason (the app then runs as before)."""
        self.store.get_app(app)
        op = self.store.new_operation(app, kind, params, actor)
        self.queue.enqueue_operation(op.id)
        for event in self.logs.follow(op.id, wait):
            if event.kind == "end":
                if not event.ok:
                    raise DeployFailed(event.text)
                return event.text
        raise DeployFailed(f"{kind} of {app} did not finish.")

    def operate(self, op_id: str) -> None:
        """Carry out a queued change (worker side), under the app's lock."""
        op = self.store.get_operation(op_id)
        if self.logs.read(op_id):
            return  # a redelivered task: it already ran
        out = _Output(self.logs, op_id)
        try:
            with self.store.app_lock(op.app):
                message = self._worker().operate(self, op, out)
            self.logs.finish(op_id, True, message)
        except PaasError as exc:
            self.logs.finish(op_id, False, exc.message)
        except Exception as exc:
            log.exception("operation %s failed", op_id)
            self.logs.finish(op_id, False, f"Internal error: {exc}. See the worker's log.")
            raise

    # --- config ---------------------------------------------------------------------------------

    def config(self, app: str) -> dict[str, str]:
        self.store.get_app(app)
        return self.store.config(app)

    def set_config(
        self, app: str, values: Mapping[str, str], unset: Sequence[str], restart: bool, actor: str
    ) -> str | None:
        """Change config; with ``restart`` a new release runs it. Returns that release's name."""
        self.store.get_app(app)
        for key, value in values.items():
            validate_config_key(key)
            if not isinstance(value, str) or not is_env_text(value):
                raise InvalidInput(f"The value of {key} must be text without NUL characters.")
        for key in unset:
            validate_config_key(key)
        if not values and not unset:
            raise InvalidInput("Give at least one KEY=VALUE to set or KEY to unset.")
        params = {"set": dict(values), "unset": list(unset), "restart": restart}
        message = self.request(app, "config", params, actor)
        current = self.store.current_release(app)
        return current.name if current is not None and message.startswith("Released ") else None

    # --- releases -------------------------------------------------------------------------------

    def releases(self, app: str) -> list[Release]:
        self.store.get_app(app)
        return list(reversed(self.store.releases(app)))

    def rollback(self, app: str, version: int, actor: str) -> str:
        self.store.get_app(app)
        self.store.release(app, version)  # a clear NotFound before queueing
        return self.request(app, "rollback", {"version": version}, actor)

    # --- domains --------------------------------------------------------------------------------

    def domains(self, app: str) -> list[str]:
        self.store.get_app(app)
        return self.store.domains(app)

    def add_domain(self, app: str, domain: str, actor: str) -> None:
        self.store.get_app(app)
        name = validate_server_name(domain.strip().lower())
        if name.endswith(f".{self.settings.domain}") and name != f"{app}.{self.settings.domain}":
            raise Conflict(f"{name} is under the platform's domain; it belongs to another app.")
        had = name in self.store.domains(app)
        self.store.add_domain(app, name)
        try:
            self.request(app, "route", {}, actor)
        except DeployFailed:
            if not had:
                self.store.remove_domain(app, name)  # the router never served it
            raise
        self.events.emit(app, "router", f"domain {name} added by {actor}")

    def remove_domain(self, app: str, domain: str, actor: str) -> None:
        self.store.get_app(app)
        name = domain.strip().lower()
        self.store.remove_domain(app, name)
        try:
            self.request(app, "route", {}, actor)
        except DeployFailed:
            self.store.add_domain(app, name)  # the router still serves it
            raise
        self.events.emit(app, "router", f"domain {name} removed by {actor}")

    # --- destroying -----------------------------------------------------------------------------

    def destroy_app(self, app: str, confirm: str | None, actor: str) -> None:
        self.store.get_app(app)
        if confirm != app:
            raise InvalidInput(f"To destroy {app}, confirm with its name ({app}).")
        self.request(app, "destroy", {}, actor)

    # --- images -------------------------------------------------------------------------------

    # --- ports --------------------------------------------------------------------------------

    def ports(self, app: str) -> list[PortMap]:
        self.store.get_app(app)
        return self.store.ports(app)

    def set_ports(self, app: str, mappings: Sequence[str], actor: str) -> list[PortMap]:
        """Listen for the app on host ports (``http:8080:5000``: host 8080 to the web
        process's PORT 5000); no mappings: back to the router's port only. The web replicas
        restart onto a new container port, without downtime."""
        self.store.get_app(app)
        ports = [parse_port_map(m) for m in mappings]
        s = self.settings
        reserved = {s.http_port, s.api_port, s.ssh_port}
        for p in ports:
            if p.host in reserved:
                raise Conflict(f"Port {p.host} is the platform's own; pick another.")
        if len({p.host for p in ports}) != len(ports):
            raise InvalidInput("Each host port may appear once.")
        if len({p.container for p in ports}) > 1:
            raise InvalidInput("All mappings must lead to the same container port (the "
                               "web process's PORT).")
        before = self.store.ports(app)
        self.store.set_ports(app, ports)
        try:
            self.request(app, "ports", {"changed": _container(before) != _container(ports)},
                         actor)
        except DeployFailed:
            self.store.set_ports(app, before)
            raise
        return ports

    # --- storage ------------------------------------------------------------------------------

    def storage(self, app: str) -> list[StorageMount]:
        self.store.get_app(app)
        return self.store.storage(app)

    def mount_storage(self, app: str, spec: str, actor: str) -> list[StorageMount]:
        """Bind a host dir (under an allowed storage dir; created if missing) into every
        replica of the app at a container path; the replicas restart onto it."""
        self.store.get_app(app)
        mount = parse_storage_mount(spec)
        check_storage_dir(Path(mount.host), self.settings.storage_dirs)
        current = self.store.storage(app)
        if any(m.container == mount.container for m in current):
            raise Conflict(f"{mount.container} is mounted already; storage:unmount it first.")
        (self.storage_dirs or prepare_storage_dir)(Path(mount.host))
        return self._change_storage(app, [*current, mount], actor)

    def unmount_storage(self, app: str, spec: str, actor: str) -> list[StorageMount]:
        self.store.get_app(app)
        mount = parse_storage_mount(spec)
        current = self.store.storage(app)
        if mount not in current:
            raise NotFound(f"{mount} is not mounted in {app}. Run paas storage {app}.")
        return self._change_storage(app, [m for m in current if m != mount], actor)

    def _change_storage(
        self, app: str, mounts: list[StorageMount], actor: str
    ) -> list[StorageMount]:
        before = self.store.storage(app)
        self.store.set_storage(app, mounts)
        if self.store.current_release(app) is not None:
            try:
                self.request(app, "restart", {"process_type": None}, actor)
            except DeployFailed:
                self.store.set_storage(app, before)
                raise
        return mounts

    # --- builder settings ---------------------------------------------------------------------

    def builder_settings(self, app: str) -> dict[str, Any]:
        """The stack and memory limit of the app's next build (``paas.build.options``)."""
        self.store.get_app(app)
        options = build_options(
            self.settings, self.store.builder_settings(app), self.store.config(app)
        )
        return {"stack": options.stack, "stack_from": options.stack_origin,
                "memory_bytes": options.limits.memory_bytes}

    def set_builder_setting(self, app: str, key: str, value: str, actor: str) -> dict[str, Any]:
        """``builder:set APP stack NAME`` or ``builder:set APP memory 1g`` ("" or "default":
        the platform's); applies from the next push, which fails if the stack is unknown."""
        self.store.get_app(app)
        stored = checked_builder_setting(key, value)
        self.store.set_builder_setting(app, key, stored)
        self.events.emit(app, "builder", f"{key} set to {value or 'default'} by {actor}")
        return self.builder_settings(app)

    # --- process settings ---------------------------------------------------------------------

    def process_settings(self, app: str) -> dict[str, float]:
        self.store.get_app(app)
        own = self.store.stop_timeout(app)
        return {"stop_timeout": self.settings.stop_timeout if own is None else own}

    def set_process_setting(self, app: str, key: str, value: str, actor: str) -> dict[str, float]:
        """``ps:set APP stop-timeout N``: seconds between TERM and KILL when a replica stops
        ("" or "default": the platform's)."""
        self.store.get_app(app)
        if key != "stop-timeout":
            raise InvalidInput(f"Unknown process setting {key!r}: the one there is is "
                               "stop-timeout.")
        if value in ("", "default"):
            self.store.set_stop_timeout(app, None)
        else:
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= 3600:
                raise InvalidInput("stop-timeout must be a number of seconds from 0 to 3600.")
            self.store.set_stop_timeout(app, seconds)
        self.events.emit(app, "ps", f"{key} set to {value or 'default'} by {actor}")
        return self.process_settings(app)

    # --- resource limits ----------------------------------------------------------------------

    def limits(self, app: str) -> dict[str, Limits]:
        """Process type -> the limits its replicas get (the defaults where none are set)."""
        self.store.get_app(app)
        stored = self.store.limits(app)
        return {t: limits_for(stored, t, self.settings.default_limits)
                for t in sorted({*self._process_types(app), *(k for k in stored if k)})}

    def set_limits(
        self, app: str, process_type: str | None, memory: str | None, cpu: float | None,
        pids: int | None, actor: str,
    ) -> dict[str, Limits]:
        """Change some limits of one process type (None: the whole app); running replicas get
        them in place where the kernel allows, by a rolling restart otherwise."""
        self.store.get_app(app)
        if process_type is not None:
            validate_process_type(process_type)
        scope = process_type or ""
        base = limits_for(self.store.limits(app), scope, self.settings.default_limits)
        new = checked_limits(Limits(
            memory_bytes=parse_size(memory) if memory is not None else base.memory_bytes,
            cpu=base.cpu if cpu is None else float(cpu),
            pids=base.pids if pids is None else pids,
        ))  # fmt: skip
        before = self.store.limits(app).get(scope)
        self.store.set_limits(app, scope, new)
        try:
            self.request(app, "limits", {"process_type": process_type}, actor)
        except DeployFailed:
            self.store.set_limits(app, scope, before)
            raise
        return self.limits(app)

    def clear_limits(self, app: str, process_type: str | None, actor: str) -> dict[str, Limits]:
        self.store.get_app(app)
        self.store.set_limits(app, process_type or "", None)
        self.request(app, "limits", {"process_type": process_type}, actor)
        return self.limits(app)

    # --- health checks --------------------------------------------------------------------------

    def checks(self, app: str) -> dict[str, tuple[str, tuple[HealthCheck, ...]]]:
        """Process type -> (check mode, the current release's health checks)."""
        self.store.get_app(app)
        release = self.store.current_release(app)
        checks = parse_app_json(release.app_json).healthchecks if release else {}
        modes = self.store.check_modes(app)
        types = sorted({*self._process_types(app), *checks, *modes})
        return {t: (modes.get(t, "enabled"), checks.get(t, ())) for t in types}

    def set_check_mode(
        self, app: str, process_types: Sequence[str], mode: str, actor: str
    ) -> dict[str, tuple[str, tuple[HealthCheck, ...]]]:
        """Enable, skip (no checks, still zero-downtime) or disable (no zero-downtime: old
        replicas stop before new ones start) the checks of some or all process types."""
        self.store.get_app(app)
        if mode not in CHECK_MODES:
            raise InvalidInput(f"Check mode must be one of {', '.join(CHECK_MODES)}.")
        types = list(process_types) or self._process_types(app)
        for ptype in types:
            validate_process_type(ptype)
        self.store.set_check_mode(app, types, mode)
        self.events.emit(app, "checks", f"{mode} for {', '.join(types)} by {actor}")
        return self.checks(app)

    def _process_types(self, app: str) -> list[str]:
        release = self.store.current_release(app)
        if release is None:
            return [WEB]
        return sorted(p for p in release.processes if p != RELEASE_PHASE)

    # --- processes ------------------------------------------------------------------------------

    def restart(self, app: str, process_type: str | None, actor: str) -> str:
        if process_type is not None:
            validate_process_type(process_type)
        return self.request(app, "restart", {"process_type": process_type}, actor)

    def stop(self, app: str, actor: str) -> str:
        return self.request(app, "stop", {}, actor)

    def start(self, app: str, actor: str) -> str:
        return self.request(app, "start", {}, actor)

    def scale(self, app: str, changes: Mapping[str, int]) -> dict[str, int]:
        self.store.get_app(app)
        release = self.store.current_release(app)
        for ptype, count in changes.items():
            validate_process_type(ptype)
            if ptype == RELEASE_PHASE:
                raise InvalidInput("The release process runs once per release; it is not scaled.")
            if not 0 <= count <= MAX_SCALE:
                raise InvalidInput(f"Invalid count {count} for {ptype}: use 0 to {MAX_SCALE}.")
            if release is not None and ptype not in release.processes:
                known = ", ".join(sorted(release.processes)) or "none"
                raise InvalidInput(
                    f'No process type "{ptype}" in {app} {release.name} (it has: {known}).'
                )
        self.store.set_formation(app, changes)
        self.queue.enqueue_reconcile(app)
        return self.store.formation(app)

    def reconcile_app(self, app: str) -> None:
        # A change in progress reconciles the app itself; if it does not let go soon, the
        # periodic pass (every RECONCILE_EVERY seconds) catches up.
        with self.store.app_lock(app, wait=5.0) as acquired:
            if acquired:
                self._worker().reconciler.reconcile_app(app)
            else:
                log.info("reconcile of %s skipped: a change of the app is in progress", app)

    def retire_due(self) -> None:
        self._worker().reconciler.retire_due()

    def reconcile_all(self) -> None:
        """Boot recovery and drift repair: clean what nothing owns, then every app."""
        names = self.store.app_names()
        self._worker().reconciler.retire_due()
        self._worker().reconciler.cleanup(names)
        for app in names:
            try:
                self.reconcile_app(app)
            except PaasError as exc:
                log.warning("reconcile of %s: %s", app, exc.message)

    # --- SSH keys ----------------------------------------------------------------------------

    def add_ssh_key(self, name: str, public_key: str) -> str:
        """Allow ``public_key`` to push over SSH; returns its fingerprint."""
        validate_key_name(name)
        key = parse_public_key(public_key.strip())
        self.store.add_ssh_key(name, f"{key.type} {key.base64}")
        return key.fingerprint  # sshd sees it once the host rewrites authorized_keys

    def ssh_keys(self) -> dict[str, str]:
        """Key name -> fingerprint."""
        return {n: parse_public_key(k).fingerprint for n, k in self.store.ssh_keys().items()}

    # --- tokens ---------------------------------------------------------------------------------

    def token_owner(self, token: str | None) -> str | None:
        return self.store.token_owner(token) if token else None

    def _worker(self) -> WorkerParts:
        if self.worker is None:
            raise RuntimeError("this process has no worker parts wired")
        return self.worker


@dataclass(frozen=True)
class WorkerParts:
    stacks: StackBuilder
    builder: BuildpackBuilder
    docker: DockerfileBuilder
    layers: LayerStore
    images: ImageStore
    runtime: Runtime
    reconciler: Reconciler

    def build_and_release(
        self, services: Services, build: Build, out: Callable[[str], None]
    ) -> Release:
        s = services.settings
        store = services.store
        app = build.app
        out(f"-----> Building {app} at {build.rev[:7]}")
        workdir = Path(tempfile.mkdtemp(prefix="src-", dir=s.tmp_dir))
        try:
            services.repos.export(app, build.rev, workdir)
            procfile_raw = services.repos.read_file(app, build.rev, "Procfile")
            procfile = parse_procfile(procfile_raw.decode()) if procfile_raw is not None else {}
            app_json_raw = services.repos.read_file(app, build.rev, "app.json")
            app_json_text = "" if app_json_raw is None else app_json_raw.decode()
            app_json = parse_app_json(app_json_text)
            image = self.images.save(self._build_image(services, app, workdir, out))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        processes = {**image.process_types, **procfile}
        if not processes:
            raise BuildFailed(
                "No process types found: add a Procfile with a web process, "
                "for example 'web: gunicorn app:app --bind 0.0.0.0:$PORT'."
            )
        release = Release(
            app=app,
            version=store.next_release_version(app),
            image_id=image.id,
            config=store.config(app),
            processes=processes,
            git_rev=build.rev,
            description=f"Deploy {build.rev[:7]}",
            created_at=time.time(),
            created_by=build.actor,
            app_json=app_json_text,
        )
        if not store.formation(app):
            defaults = {p: (1 if p == WEB else 0) for p in processes if p != RELEASE_PHASE}
            store.set_formation(app, {**defaults, **app_json.formation})
        out(f"-----> Releasing {release.name}")
        self.reconciler.release_phase(release, out)
        self.reconciler.reconcile_app(app, release, out)
        store.add_release(release)
        self.collect_garbage(services)  # images older than the kept releases' go
        return release


    def collect_garbage(self, services: Services, released: Set[str] = frozenset()) -> list[str]:
        """Remove the layers nothing keeps: not in the images of any app's last
        ``KEPT_RELEASES`` releases, not in a stack, and either in ``released`` (the layers
        of a destroyed app) or committed more than ``GC_GRACE`` seconds ago (a build in
        progress has not recorded its release yet). Returns the removed digests."""
        store = services.store
        kept = self.stacks.all_layers()
        for app in store.app_names():
            for release in store.releases(app)[-KEPT_RELEASES:]:
                if self.images.exists(release.image_id):
                    kept |= set(self.images.load(release.image_id).layers)
        removed = []
        for digest in self.layers.digests():
            if digest not in kept and (digest in released or self.layers.age(digest) > GC_GRACE):
                self.layers.remove(digest)
                removed.append(digest)
        if self.builder.dependencies is not None:
            self.builder.dependencies.prune()  # keys of dependency layers removed just now
        self.docker.cache.prune()
        return removed

    def _build_image(
        self, services: Services, app: str, source: Path, out: Callable[[str], None]
    ) -> Image:
        """Build the source: from its Dockerfile unless a buildpack is named, else with the
        buildpack that detects it (over the stack)."""
        s, config = services.settings, services.store.config(app)
        options = build_options(s, services.store.builder_settings(app), config)
        if (source / DOCKERFILE).is_file() and chosen_buildpack(source, config) is None:
            out("-----> Dockerfile found: building it")
            built = self.docker.build(
                app, source, config, out, limits=options.limits, timeout=options.timeout
            )
            argv = built.process_argv
            return Image(
                id="",
                layers=built.layers,
                process_types={WEB: "exec " + shlex.join(argv)} if argv else {},
                env=built.env,
                workdir=built.workdir,
                port=built.exposed_port,
                user=built.user_ids,
                command=argv,
                labels=built.labels,
            )
        name = checked_stack(options, {*self.stacks.stacks(), s.stack})
        if name != s.stack:
            out(f"-----> Stack {name} (named by {options.stack_origin})")
        stack = self.stacks.ensure(name, out)
        result = self.builder.build(
            app=app,
            source_dir=source,
            stack_layers=stack,
            config=config,
            cache_dir=s.cache_dir / app,
            output=out,
            limits=options.limits,
            timeout=options.timeout,
        )
        return Image(
            id="", layers=(*stack, *result.layers), process_types=result.process_types,
            user=APP_USER,
        )

    def operate(self, services: Services, op: Operation, out: Callable[[str], None]) -> str:
        """Carry out ``op``; returns the message the requester sees."""
        store, app, p = services.store, op.app, op.params
        current = store.current_release(app)
        if op.kind == "config":
            return self._change_config(services, op, current, out)
        if op.kind == "rollback":
            target = store.release(app, int(p["version"]))
            release = self._release(services, target, f"Rollback to {target.name}", op.actor)
            self.reconciler.release_phase(release, out)
            self.reconciler.reconcile_app(app, release, out)
            store.add_release(release)
            store.replace_config(app, target.config)
            services.events.emit(app, "release", f"{release.name}: rollback to {target.name} "
                                                 f"by {op.actor}")
            return f"Released {release.name}: rollback to {target.name}"
        if op.kind == "restart":
            if current is None:
                raise NotFound(f"{app} has no release yet: push to deploy it first.")
            ptype = p.get("process_type")
            if ptype is not None and ptype not in current.processes:
                raise NotFound(f'{app} has no process type "{ptype}".')
            store.bump_generation(app, [ptype] if ptype else list(current.processes))
            services.events.emit(app, "restart", f"{ptype or 'all'} by {op.actor}")
            self.reconciler.reconcile_app(app, None, out)
            return f"Restarted {ptype or 'all processes'} of {app}"
        if op.kind in ("stop", "start"):
            store.set_stopped(app, op.kind == "stop")
            services.events.emit(app, op.kind, f"by {op.actor}")
            self.reconciler.reconcile_app(app, None, out)
            return f"{'Stopped' if op.kind == 'stop' else 'Started'} {app}"
        if op.kind == "limits":
            ptype = p.get("process_type")
            refused = self.reconciler.apply_limits(app, ptype, out)
            if refused:
                store.bump_generation(app, refused)
                self.reconciler.reconcile_app(app, None, out)
            services.events.emit(app, "limits", f"{ptype or 'all'} changed by {op.actor}")
            return f"Limits of {app} applied"
        if op.kind == "ports":
            if p.get("changed") and current is not None:
                store.bump_generation(app, [WEB])  # the replicas' PORT changes
                self.reconciler.reconcile_app(app, current, out)
            else:
                self.reconciler.route(app, current)
            services.events.emit(app, "router", f"ports set by {op.actor}")
            return f"Ports of {app} set"
        if op.kind == "route":
            self.reconciler.route(app, current)
            return f"Routed {app}"
        if op.kind == "destroy":
            own = {d for r in store.releases(app) if self.images.exists(r.image_id)
                   for d in self.images.load(r.image_id).layers}
            store.set_stopped(app, True)
            self.reconciler.reconcile_app(app, None, out)
            self.reconciler.unroute(app)
            services.repos.delete(app)
            shutil.rmtree(services.settings.cache_dir / app, ignore_errors=True)
            services.events.delete(app)
            services.logs.delete(*(b.id for b in store.builds(app)))
            store.delete_app(app)
            removed = self.collect_garbage(services, own)
            out(f"Removed {len(removed)} image layers no other app uses")
            return f"Destroyed {app}"
        raise InvalidInput(f"Unknown operation {op.kind!r}.")

    def _change_config(
        self, services: Services, op: Operation, current: Release | None,
        out: Callable[[str], None],
    ) -> str:
        store, app = services.store, op.app
        before = store.config(app)
        values, unset = dict(op.params["set"]), list(op.params["unset"])
        after = {k: v for k, v in {**before, **values}.items() if k not in unset}
        if after == before:
            return "No change"
        store.replace_config(app, after)
        names = ", ".join([*values, *unset])
        services.events.emit(app, "config", f"{'set' if values else 'unset'} {names} "
                                            f"by {op.actor}")
        if current is None or not op.params["restart"]:
            return "Config changed; it applies from the next deploy"
        verb = "Set" if values and not unset else "Unset" if unset and not values else "Change"
        release = replace(
            self._release(services, current, f"{verb} {names}", op.actor), config=after
        )
        try:
            self.reconciler.release_phase(release, out)
            self.reconciler.reconcile_app(app, release, out)
        except PaasError:
            store.replace_config(app, before)  # the new config did not run: keep the old one
            raise
        store.add_release(release)
        return f"Released {release.name}: {release.description}"

    @staticmethod
    def _release(services: Services, base: Release, description: str, actor: str) -> Release:
        """A new release with ``base``'s image, processes, revision and config."""
        return replace(
            base,
            version=services.store.next_release_version(base.app),
            description=description,
            created_at=time.time(),
            created_by=actor,
        )


def _container(ports: Sequence[PortMap]) -> int | None:
    return ports[0].container if ports else None


class _Output:
    """Build output: every line goes to the build's log stream, live."""

    def __init__(self, logs: LogStreams, build_id: str) -> None:
        self._logs = logs
        self._id = build_id

    def __call__(self, line: str) -> None:
        self._logs.append(self._id, line.rstrip("\n"))


