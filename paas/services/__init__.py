"""Use cases every edge calls (CLI through the API, the dashboard, git hooks, tasks).

Commands only write desired state and ask for a reconcile; the worker-side use cases
(``deploy``, ``reconcile_app``, ``reconcile_all``) make it real.

The use cases are split by topic, one module each (apps, deploys, config, routing, storage,
builder, processes, access) over ``base.ServicesBase``, which holds the collaborators;
``Services`` combines them. ``worker.WorkerParts`` is the worker's side.
"""

from __future__ import annotations

from dataclasses import dataclass

from paas.services.access import Access
from paas.services.apps import AppInfo, Apps
from paas.services.base import TaskQueue
from paas.services.builder import BuilderSettings
from paas.services.config import ConfigAndReleases
from paas.services.deploys import Deploys
from paas.services.processes import MAX_SCALE, Processes
from paas.services.routing import Routing
from paas.services.storage import Storage, check_storage_dir, prepare_storage_dir
from paas.services.worker import GC_GRACE, KEPT_RELEASES, WorkerParts

__all__ = [
    "GC_GRACE",
    "KEPT_RELEASES",
    "MAX_SCALE",
    "AppInfo",
    "Services",
    "TaskQueue",
    "WorkerParts",
    "check_storage_dir",
    "prepare_storage_dir",
]


@dataclass(frozen=True)
class Services(
    Deploys, Apps, ConfigAndReleases, Routing, Storage, BuilderSettings, Processes, Access
):
    """Every use case, over the collaborators of ``ServicesBase``."""
