"""Entry point for gunicorn (``paas.web.wsgi:app``), wired from this machine's settings."""

from __future__ import annotations

from paas.settings import Settings
from paas.web.app import create_app
from paas.wiring import applogs, oneoffs, worker_services

_settings = Settings.from_env()
_services = worker_services(_settings)
app = create_app(_services, applogs(_services), oneoffs(_settings, _services.store))
