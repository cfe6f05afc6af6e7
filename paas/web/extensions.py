"""The collaborators ``create_app`` hands to the views, read back in a request."""

from __future__ import annotations

from flask import current_app

from paas.errors import PlatformError
from paas.host import Host


def host() -> Host:
    """What only root may see or do (containers, their logs, runs, stacks, layers)."""
    found: Host | None = current_app.extensions.get("paas.host")
    if found is None:
        raise PlatformError("This server has no access to the containers (no agent).")
    return found
