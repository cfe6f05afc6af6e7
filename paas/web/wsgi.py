"""Entry point for gunicorn (``paas.web.wsgi:app``), wired from this machine's settings: the
API runs unprivileged and asks the platform's agent for what only root may see or do."""

from __future__ import annotations

from paas.settings import Settings
from paas.web.app import create_app
from paas.wiring import agent_client, services

_settings = Settings.from_env()
app = create_app(services(_settings), agent_client(_settings))
