"""The Flask app factory: API, git over HTTP and the landing page, over given services."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from paas.gitserver.http import make_git_wsgi
from paas.host import Host
from paas.services import Services
from paas.web.api import api, register_errors
from paas.web.api_logs import api_logs
from paas.web.auth import ensure_secret_key, secret_key_path
from paas.web.dashboard import init_dashboard
from paas.web.openapi import openapi


def hook_env(services: Services) -> Mapping[str, str]:
    """Environment for git hooks: our bin dir first on PATH, and where the settings are."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PAAS_SETTINGS_FILE": str(services.settings.settings_file),
        **services.settings.to_env(),
    }


api.register_blueprint(api_logs)  # once, at import: under /api/v1, behind the token check


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body nested deeper than the parser goes is invalid JSON
    (``get_json(silent=True)`` gives None: a 400 saying what to send), not a crash."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def create_app(services: Services, host: Host | None = None) -> Flask:
    """The API over ``services``; replicas, logs, runs, stacks and images need ``host``
    (root only: the agent, or ``LocalHost`` in a root process)."""
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.extensions["paas.services"] = services
    if host is not None:
        app.extensions["paas.host"] = host
    app.register_blueprint(api)
    app.register_blueprint(openapi)  # GET /api/v1/openapi.json, no token
    register_errors(app)
    init_dashboard(app, ensure_secret_key(secret_key_path(services.settings)))

    git = make_git_wsgi(
        repos=services.repos,
        authenticate=lambda _user, password: services.token_owner(password) is not None,
        on_push_to_missing=services.ensure_app,
        hook_env=hook_env(services),
    )
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/git": git})  # type: ignore[method-assign]
    return app
