"""The worker's side of the use cases (``WorkerParts``): build a pushed revision into an
image and release it, carry out queued operations (config, rollback, restart, stop and
start, limits, ports, routes, destroy) and collect the image layers nothing keeps."""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from paas.appjson import parse_app_json
from paas.build.buildpack import BuildpackBuilder, chosen_buildpack
from paas.build.docker_builder import DOCKERFILE, DockerfileBuilder
from paas.build.launch import app_process_user
from paas.build.options import build_options, checked_stack
from paas.errors import BuildFailed, InvalidInput, NotFound, PaasError
from paas.images.layers import LayerStore
from paas.images.stack import StackBuilder
from paas.images.store import ImageStore
from paas.model import APP_USER, RELEASE_PHASE, WEB, Image, Release
from paas.procfile import parse_procfile
from paas.reconciler.reconciler import Reconciler
from paas.runtime.runtime import Runtime
from paas.state.store import Build, Operation

if TYPE_CHECKING:
    from paas.services.base import ServicesBase

KEPT_RELEASES = 10  # the images of this many last releases of each app stay for rollbacks
GC_GRACE = 3600.0  # seconds a new layer is kept before it may be collected


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
        self, services: ServicesBase, build: Build, out: Callable[[str], None]
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


    def collect_garbage(
        self, services: ServicesBase, released: Set[str] = frozenset()
    ) -> list[str]:
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
        self, services: ServicesBase, app: str, source: Path, out: Callable[[str], None]
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
            uid, gid = app_process_user(built.user_ids)
            if (uid, gid) != built.user_ids:
                out(f"-----> No USER but root: processes will run as uid {uid}, gid {gid} (no "
                    "app runs as root here); chown in a RUN step what they must write")
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

    def operate(self, services: ServicesBase, op: Operation, out: Callable[[str], None]) -> str:
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
        self, services: ServicesBase, op: Operation, current: Release | None,
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
    def _release(services: ServicesBase, base: Release, description: str, actor: str) -> Release:
        """A new release with ``base``'s image, processes, revision and config."""
        return replace(
            base,
            version=services.store.next_release_version(base.app),
            description=description,
            created_at=time.time(),
            created_by=actor,
        )
