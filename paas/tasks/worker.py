"""Entry point for ``celery -A paas.tasks.worker``: the Celery app for this machine's settings."""

from __future__ import annotations

from paas.settings import Settings
from paas.tasks.celery_app import create_celery

app = create_celery(Settings.from_env())
