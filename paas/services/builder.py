"""Builder settings: the stack and memory limit of an app's next build."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from paas.build.options import build_options, checked_builder_setting, known_stack
from paas.services.base import ServicesBase


class BuilderSettings(ServicesBase):
    # --- builder settings ---------------------------------------------------------------------

    def builder_settings(self, app: str) -> dict[str, Any]:
        """The stack and memory limit of the app's next build (``paas.build.options``)."""
        self.store.get_app(app)
        options = build_options(
            self.settings, self.store.builder_settings(app), self.store.config(app)
        )
        return {"stack": options.stack, "stack_from": options.stack_origin,
                "memory_bytes": options.limits.memory_bytes}

    def set_builder_setting(
        self, app: str, key: str, value: str, actor: str, stacks: Collection[str]
    ) -> dict[str, Any]:
        """``builder:set APP stack NAME`` (one of the platform's ``stacks``) or
        ``builder:set APP memory 1g`` ("" or "default": the platform's); applies from the
        next push."""
        self.store.get_app(app)
        stored = checked_builder_setting(key, value)
        if key == "stack" and stored is not None:
            known_stack(stored, stacks)
        self.store.set_builder_setting(app, key, stored)
        self.events.emit(app, "builder", f"{key} set to {value or 'default'} by {actor}")
        return self.builder_settings(app)
