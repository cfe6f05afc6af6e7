"""Processes: their settings (stop timeout), resource limits and health-check modes,
restart, stop, start and scale, and the reconciles that make the desired state real."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from paas.appjson import HealthCheck, parse_app_json
from paas.errors import DeployFailed, InvalidInput, PaasError
from paas.model import CHECK_MODES, RELEASE_PHASE, WEB
from paas.procfile import validate_process_type
from paas.services.base import ServicesBase
from paas.settings import Limits, checked_limits, limits_for, parse_size

log = logging.getLogger(__name__)

MAX_SCALE = 50


class Processes(ServicesBase):
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
