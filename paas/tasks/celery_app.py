"""The Celery app and its tasks. Each task is a thin call into ``Services``; the object
graph is built once per worker process, on first use."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from celery import Celery

from paas.services import Services
from paas.settings import Settings

DEPLOY = "paas.deploy"
RECONCILE_APP = "paas.reconcile_app"
RECONCILE_ALL = "paas.reconcile_all"
OPERATE = "paas.operate"
RETIRE_DUE = "paas.retire_due"
RECONCILE_EVERY = 30.0


def create_celery(settings: Settings, services: Callable[[], Services] | None = None) -> Celery:
    app = Celery("paas", broker=settings.celery_broker_url)
    app.conf.update(
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_connection_retry_on_startup=True,
        # Longer than the longest build, or Redis redelivers a deploy still running.
        broker_transport_options={"visibility_timeout": settings.build_timeout + 600},
        beat_schedule={
            "reconcile-all": {"task": RECONCILE_ALL, "schedule": RECONCILE_EVERY},
        },
        worker_hijack_root_logger=False,
        # Platforms sharing one external Redis must not take each other's tasks.
        task_default_queue=f"paas-{settings.instance}",
    )

    @cache
    def _services() -> Services:
        if services is not None:
            return services()
        from paas.wiring import worker_services

        return worker_services(settings)

    @app.task(name=DEPLOY)  # type: ignore[untyped-decorator]
    def deploy(build_id: str) -> None:
        _services().deploy(build_id)

    @app.task(name=OPERATE)  # type: ignore[untyped-decorator]
    def operate(op_id: str) -> None:
        _services().operate(op_id)

    @app.task(name=RETIRE_DUE)  # type: ignore[untyped-decorator]
    def retire_due() -> None:
        _services().retire_due()

    @app.task(name=RECONCILE_APP)  # type: ignore[untyped-decorator]
    def reconcile_app(app_name: str) -> None:
        _services().reconcile_app(app_name)

    @app.task(name=RECONCILE_ALL)  # type: ignore[untyped-decorator]
    def reconcile_all() -> None:
        _services().reconcile_all()

    return app


class CeleryQueue:
    """``TaskQueue`` over Celery: enqueue by task name, no import of the task code needed."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def enqueue_deploy(self, build_id: str) -> None:
        self._app.send_task(DEPLOY, args=[build_id], task_id=build_id)

    def enqueue_operation(self, op_id: str) -> None:
        self._app.send_task(OPERATE, args=[op_id], task_id=op_id)

    def enqueue_retire(self, delay: float) -> None:
        self._app.send_task(RETIRE_DUE, countdown=delay + 0.5)

    def enqueue_reconcile(self, app: str, delay: float = 0.0) -> None:
        self._app.send_task(RECONCILE_APP, args=[app], countdown=delay or None)

    def enqueue_reconcile_all(self) -> None:
        self._app.send_task(RECONCILE_ALL)
