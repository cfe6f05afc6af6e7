"""What the dashboard's pages show, read from the services: apps with their state, an app's
processes and replicas (with memory and CPU from their cgroups), and its events.

Reading every app's replicas costs one observation of all containers (``runc list`` and the
containers' files), whatever the number of apps.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from paas.host import Host
from paas.model import RELEASE_PHASE, Release, Replica, ReplicaState
from paas.runtime import cgroups
from paas.runtime.bundle import cgroups_path
from paas.services import AppInfo, Services
from paas.state.events import Event
from paas.state.store import Build

RECENT_EVENTS = 500  # events read for an app page (restart counts, last exits, the list)
SHOWN_EVENTS = 25


@dataclass(frozen=True)
class ProcessRow:
    process_type: str
    command: str
    desired: int
    running: int  # running replicas of the current release
    others: int  # running replicas of other releases (retiring, or of a release being made)


@dataclass(frozen=True)
class AppSummary:
    name: str
    state: str  # "running", "crashed", "deploying", "stopped" or "new" (never deployed)
    release: Release | None
    processes: tuple[ProcessRow, ...]
    web_url: str
    last_deploy: float | None


@dataclass(frozen=True)
class ReplicaRow:
    replica: Replica
    uptime: float | None
    memory_bytes: int | None
    cpu_seconds: float | None
    restarts: int  # crashes and exits of this slot since the replica's release was made
    last_exit: str | None  # the replica's own exit, or its slot's latest one


@dataclass(frozen=True)
class AppPage:
    summary: AppSummary
    info: AppInfo
    replicas: tuple[ReplicaRow, ...]
    events: tuple[Event, ...]  # newest first


def app_state(
    release: Release | None, stopped: bool, latest_build: Build | None, replicas: Iterable[Replica]
) -> str:
    """One word for an app: a build in progress is "deploying"; then "stopped" (by ps:stop),
    "new" (no release yet), "crashed" (a replica exited with an error and is not replaced
    yet), "running" (some replica runs), "deploying" (replicas starting), else "stopped"."""
    if latest_build is not None and latest_build.status in ("queued", "running"):
        return "deploying"
    if stopped:
        return "stopped"
    if release is None:
        return "new"
    states = {r.state for r in replicas}
    if ReplicaState.CRASHED in states:
        return "crashed"
    if ReplicaState.RUNNING in states:
        return "running"
    if ReplicaState.STARTING in states:
        return "deploying"
    return "stopped"


def process_rows(
    release: Release | None, formation: Mapping[str, int], replicas: Iterable[Replica]
) -> tuple[ProcessRow, ...]:
    current = None if release is None else release.version
    running = Counter(
        (r.key.process_type, r.release == current)
        for r in replicas if r.state == ReplicaState.RUNNING
    )  # fmt: skip
    commands = {} if release is None else dict(release.processes)
    names = sorted((set(commands) | set(formation)) - {RELEASE_PHASE})
    return tuple(
        ProcessRow(p, commands.get(p, ""), formation.get(p, 0), running[p, True], running[p, False])
        for p in names
    )


def exit_text(event: Event) -> bool:
    return event.text.startswith(("crashed", "exited"))


def replica_rows(
    replicas: Sequence[Replica],
    releases: Mapping[int, Release],
    events: Sequence[Event],
    cgroup_parent: str,
    now: float,
) -> tuple[ReplicaRow, ...]:
    """Rows of the replica table; ``events`` oldest first."""
    roots = cgroups.hierarchies() if replicas else {}
    rows = []
    for r in replicas:
        made = releases[r.release].created_at if r.release in releases else 0.0
        exits = [e for e in events if e.source == r.key.dyno and exit_text(e) and e.at >= made]
        own = None
        if r.state in (ReplicaState.CRASHED, ReplicaState.STOPPED) and r.exit_code is not None:
            own = f"exit {r.exit_code}" + (f" ({r.reason})" if r.reason else "")
        running = r.state == ReplicaState.RUNNING
        use = cgroups.usage(cgroups_path(cgroup_parent, r.container_id), roots)
        rows.append(
            ReplicaRow(
                replica=r,
                uptime=now - r.started_at if running and r.started_at else None,
                memory_bytes=use.memory_bytes if running else None,
                cpu_seconds=use.cpu_seconds if running else None,
                restarts=len(exits),
                last_exit=own or (exits[-1].text if exits else None),
            )
        )
    return tuple(rows)


class Overview:
    """Reads the pages' data through ``services`` and, for the replicas as they run,
    ``host``."""

    def __init__(self, services: Services, host: Host) -> None:
        self._s = services
        self._host = host

    def _observe(self, app: str | None) -> list[Replica]:
        found = self._host.observe(app)
        return sorted(found, key=lambda r: (r.key.app, r.key.process_type, r.key.index))

    def _summary(self, info: AppInfo, replicas: Sequence[Replica]) -> AppSummary:
        store, name = self._s.store, info.app.name
        release = info.release
        return AppSummary(
            name=name,
            state=app_state(release, store.stopped(name), store.latest_build(name), replicas),
            release=release,
            processes=process_rows(release, info.formation, replicas),
            web_url=info.web_url,
            last_deploy=None if release is None else release.created_at,
        )

    def apps(self) -> list[AppSummary]:
        by_app: dict[str, list[Replica]] = {}
        for replica in self._observe(None):
            by_app.setdefault(replica.key.app, []).append(replica)
        return [
            self._summary(self._s.app_info(app.name), by_app.get(app.name, []))
            for app in self._s.list_apps()
        ]

    def app(self, name: str) -> AppPage:
        info = self._s.app_info(name)
        replicas = self._observe(name)
        events = self._s.events.recent(name, RECENT_EVENTS)
        releases = {r.version: r for r in self._s.store.releases(name)}
        rows = replica_rows(
            replicas, releases, events, self._s.settings.cgroup_parent, time.time()
        )
        shown = tuple(reversed(events[-SHOWN_EVENTS:]))
        return AppPage(self._summary(info, replicas), info, rows, shown)
