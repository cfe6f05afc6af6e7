"""What every topic of the use cases shares: the collaborators (``ServicesBase``) and the
round trip of a change the worker carries out (``request`` queues it and waits for its end,
``operate`` carries it out under the app's lock, its output going to ``_Output``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from paas.errors import DeployFailed, PaasError
from paas.gitserver.repos import RepoStore
from paas.services.worker import WorkerParts
from paas.settings import Settings
from paas.state.events import Events
from paas.state.logstream import LogStreams
from paas.state.store import Store

log = logging.getLogger(__name__)


class TaskQueue(Protocol):
    def enqueue_deploy(self, build_id: str) -> None: ...
    def enqueue_reconcile(self, app: str, delay: float = 0.0) -> None: ...
    def enqueue_operation(self, op_id: str) -> None: ...
    def enqueue_retire(self, delay: float) -> None: ...


@dataclass(frozen=True)
class ServicesBase:
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

    def _worker(self) -> WorkerParts:
        if self.worker is None:
            raise RuntimeError("this process has no worker parts wired")
        return self.worker


class _Output:
    """Build output: every line goes to the build's log stream, live."""

    def __init__(self, logs: LogStreams, build_id: str) -> None:
        self._logs = logs
        self._id = build_id

    def __call__(self, line: str) -> None:
        self._logs.append(self._id, line.rstrip("\n"))
