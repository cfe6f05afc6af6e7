"""Config vars and releases: read and change an app's config (with a restart, a new
release runs it), list its releases and roll back to one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from paas.errors import InvalidInput
from paas.model import Release, is_env_text, validate_config_key
from paas.services.base import ServicesBase


class ConfigAndReleases(ServicesBase):
    # --- config ---------------------------------------------------------------------------------

    def config(self, app: str) -> dict[str, str]:
        self.store.get_app(app)
        return self.store.config(app)

    def set_config(
        self, app: str, values: Mapping[str, str], unset: Sequence[str], restart: bool, actor: str
    ) -> str | None:
        """Change config; with ``restart`` a new release runs it. Returns that release's name."""
        self.store.get_app(app)
        for key, value in values.items():
            validate_config_key(key)
            if not isinstance(value, str) or not is_env_text(value):
                raise InvalidInput(f"The value of {key} must be text without NUL characters.")
        for key in unset:
            validate_config_key(key)
        if not values and not unset:
            raise InvalidInput("Give at least one KEY=VALUE to set or KEY to unset.")
        params = {"set": dict(values), "unset": list(unset), "restart": restart}
        message = self.request(app, "config", params, actor)
        current = self.store.current_release(app)
        return current.name if current is not None and message.startswith("Released ") else None

    # --- releases -------------------------------------------------------------------------------

    def releases(self, app: str) -> list[Release]:
        self.store.get_app(app)
        return list(reversed(self.store.releases(app)))

    def rollback(self, app: str, version: int, actor: str) -> str:
        self.store.get_app(app)
        self.store.release(app, version)  # a clear NotFound before queueing
        return self.request(app, "rollback", {"version": version}, actor)
