"""Apps: create one (a first push creates it too), list them, describe one (``AppInfo``:
release, formation, URLs) and destroy one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from paas.errors import InvalidInput
from paas.model import App, Release, validate_app_name
from paas.services.base import ServicesBase


@dataclass(frozen=True)
class AppInfo:
    app: App
    release: Release | None
    formation: Mapping[str, int]
    web_url: str
    git_http: str
    git_ssh: str
    domains: tuple[str, ...] = ()


class Apps(ServicesBase):
    # --- apps ---------------------------------------------------------------------------------

    def create_app(self, name: str) -> App:
        validate_app_name(name)
        app = self.store.create_app(name)
        self.repos.ensure(name)
        return app

    def ensure_app(self, name: str) -> None:
        """Create the app unless it exists (a push to a new app creates it, as in Dokku)."""
        validate_app_name(name)
        if not self.store.app_exists(name):
            self.create_app(name)

    def list_apps(self) -> list[App]:
        return self.store.list_apps()

    def app_info(self, name: str) -> AppInfo:
        app = self.store.get_app(name)
        s = self.settings
        host = "127.0.0.1" if s.bind in ("0.0.0.0", "") else s.bind
        port = "" if s.http_port == 80 else f":{s.http_port}"
        return AppInfo(
            app=app,
            release=self.store.current_release(name),
            formation=self.store.formation(name),
            web_url=f"http://{name}.{s.domain}{port}/",
            git_http=f"{s.api_url}/git/{name}.git",
            git_ssh=f"ssh://{s.ssh_user}@{host}:{s.ssh_port}/{name}",
            domains=tuple(self.store.domains(name)),
        )

    # --- destroying -----------------------------------------------------------------------------

    def destroy_app(self, app: str, confirm: str | None, actor: str) -> None:
        self.store.get_app(app)
        if confirm != app:
            raise InvalidInput(f"To destroy {app}, confirm with its name ({app}).")
        self.request(app, "destroy", {}, actor)
