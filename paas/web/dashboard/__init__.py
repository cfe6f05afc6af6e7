"""The web dashboard: HTML pages over the same services as the JSON API and the CLI.

Pages are plain HTML forms that post and redirect, so every basic action works without
JavaScript; ``static/dashboard.js`` adds live updates (replica states polled every second,
logs followed over server-sent events) and posts forms in the background.
"""

from __future__ import annotations

from flask import Flask

from paas.web.auth import configure_sessions
from paas.web.dashboard.views import dashboard


def init_dashboard(app: Flask, secret_key: bytes) -> None:
    """Serve the dashboard at ``/`` of ``app``, with sessions signed by ``secret_key``."""
    configure_sessions(app, secret_key)
    app.register_blueprint(dashboard)
