"""Entry point for gunicorn (``paas.web.wsgi:app``), wired from this machine's settings."""

from __future__ import annotations

from paas.settings import Settings
from paas.web.app import create_app
from paas.wiring import worker_services

app = create_app(worker_services(Settings.from_env()))
