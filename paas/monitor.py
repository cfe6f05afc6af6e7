"""The monitor: between reconciles, notices replicas that died and web replicas that
stopped answering, and asks for a reconcile of their app (which restarts them, with
backoff). Runs as the platform's ``monitor`` process (``paas-platform monitor``)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from paas.appjson import HealthCheck, parse_app_json
from paas.errors import PaasError
from paas.model import WEB, Replica, ReplicaState
from paas.reconciler.reconciler import Reconciler, http_check, port_accepts
from paas.state.events import Events
from paas.state.store import Store

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks at the containers
CHECK_EVERY = 10.0  # seconds between liveness checks of running web replicas
FAILURES_TO_RESTART = 3  # consecutive failed checks before a replica is restarted
PORT_CHECK = HealthCheck(path="", timeout=2.0)  # no app.json check: the port must accept


class Monitor:
    def __init__(
        self,
        store: Store,
        events: Events,
        reconciler: Reconciler,
        reconcile: Callable[[str], None],
    ) -> None:
        self._store, self._events, self._reconciler = store, events, reconciler
        self._reconcile = reconcile
        self._reported: set[str] = set()
        self._failures: Counter[str] = Counter()
        self._last_check = 0.0
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="check")

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(POLL):
            try:
                self.tick(time.monotonic())
            except Exception:  # one bad pass must not end the monitor
                log.exception("monitor pass failed")

    def tick(self, now: float) -> None:
        retiring = self._store.retiring()
        replicas = [r for r in self._reconciler.observe() if r.container_id not in retiring]
        self._notice_deaths(replicas)
        if now - self._last_check >= CHECK_EVERY:
            self._last_check = now
            self._check_liveness(replicas)

    def _notice_deaths(self, replicas: list[Replica]) -> None:
        dead = {r.container_id: r for r in replicas if r.state in (ReplicaState.CRASHED,
                                                                   ReplicaState.STOPPED)}
        for cid, replica in dead.items():
            if cid not in self._reported:
                self._reported.add(cid)
                self._reconcile(replica.key.app)
        self._reported &= set(dead)

    def _check_liveness(self, replicas: list[Replica]) -> None:
        web = [r for r in replicas if r.key.process_type == WEB and r.state ==
               ReplicaState.RUNNING and r.address]
        checks = {app: self._check_of(app) for app in {r.key.app for r in web}}
        jobs = {}
        for r in web:
            check = checks[r.key.app]
            if check is not None:
                jobs[r.container_id] = (r, self._pool.submit(_probe, r, check))
        for cid, (replica, job) in jobs.items():
            failure = job.result()
            if not failure:
                self._failures.pop(cid, None)
                continue
            self._failures[cid] += 1
            if self._failures[cid] >= FAILURES_TO_RESTART:
                self._restart(replica, failure)
        self._failures = Counter({c: n for c, n in self._failures.items() if c in jobs})

    def _check_of(self, app: str) -> HealthCheck | None:
        """The app's first web check, the port check without one; None: checks skipped."""
        if self._store.check_modes(app).get(WEB) in ("skipped", "disabled"):
            return None
        release = self._store.current_release(app)
        try:
            listed = parse_app_json(release.app_json).healthchecks.get(WEB, ()) if release else ()
        except PaasError as exc:  # one app's bad data must not stop the others' checks
            log.warning("no liveness check for %s: %s", app, exc.message)
            return None
        return replace(listed[0], timeout=min(listed[0].timeout, 5.0)) if listed else PORT_CHECK

    def _restart(self, replica: Replica, failure: str) -> None:
        self._failures.pop(replica.container_id, None)
        self._events.emit(
            replica.key.app, replica.key.dyno,
            f"not answering its health check ({failure}) {FAILURES_TO_RESTART} times; "
            "restarting",
        )  # fmt: skip
        self._reconciler.stop_replica(replica)
        self._reconcile(replica.key.app)


def _probe(replica: Replica, check: HealthCheck) -> str:
    assert replica.address is not None
    if check is PORT_CHECK:
        accepts = port_accepts(replica.address, replica.port)
        return "" if accepts else f"port {replica.port} does not accept connections"
    return http_check(replica.address, replica.port, check)
