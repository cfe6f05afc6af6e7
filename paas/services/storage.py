"""Storage: host dirs (below the allowed storage dirs) bound into an app's replicas, and
the checks and making of those dirs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from paas.errors import Conflict, DeployFailed, InvalidInput, NotFound
from paas.model import APP_USER, StorageMount, parse_storage_mount
from paas.services.base import ServicesBase


def check_storage_dir(host: Path, allowed: Sequence[Path]) -> None:
    """``InvalidInput`` unless ``host`` is below one of the ``allowed`` storage dirs."""
    if not any(host.is_relative_to(d) and host != d for d in allowed):
        dirs = ", ".join(str(d) for d in allowed)
        raise InvalidInput(f"{host} is outside the storage dirs ({dirs}); use a dir below one "
                           "of them (PAAS_STORAGE_ALLOW sets them).")


def prepare_storage_dir(host: Path) -> None:
    """A storage dir, made if missing (owned by the user buildpack apps run as); one that
    was there is kept as is. ``InvalidInput`` when it is not a plain directory."""
    if host.is_symlink() or (host.exists() and not host.is_dir()):
        raise InvalidInput(f"{host} must be a directory.")
    created = not host.exists()
    host.mkdir(parents=True, exist_ok=True)
    if host.resolve() != host:
        raise InvalidInput(f"{host} leads elsewhere through a symbolic link.")
    if created:
        os.chown(host, *APP_USER)


class Storage(ServicesBase):
    # --- storage ------------------------------------------------------------------------------

    def storage(self, app: str) -> list[StorageMount]:
        self.store.get_app(app)
        return self.store.storage(app)

    def mount_storage(self, app: str, spec: str, actor: str) -> list[StorageMount]:
        """Bind a host dir (under an allowed storage dir; created if missing) into every
        replica of the app at a container path; the replicas restart onto it."""
        self.store.get_app(app)
        mount = parse_storage_mount(spec)
        check_storage_dir(Path(mount.host), self.settings.storage_dirs)
        current = self.store.storage(app)
        if any(m.container == mount.container for m in current):
            raise Conflict(f"{mount.container} is mounted already; storage:unmount it first.")
        (self.storage_dirs or prepare_storage_dir)(Path(mount.host))
        return self._change_storage(app, [*current, mount], actor)

    def unmount_storage(self, app: str, spec: str, actor: str) -> list[StorageMount]:
        self.store.get_app(app)
        mount = parse_storage_mount(spec)
        current = self.store.storage(app)
        if mount not in current:
            raise NotFound(f"{mount} is not mounted in {app}. Run paas storage {app}.")
        return self._change_storage(app, [m for m in current if m != mount], actor)

    def _change_storage(
        self, app: str, mounts: list[StorageMount], actor: str
    ) -> list[StorageMount]:
        before = self.store.storage(app)
        self.store.set_storage(app, mounts)
        if self.store.current_release(app) is not None:
            try:
                self.request(app, "restart", {"process_type": None}, actor)
            except DeployFailed:
                self.store.set_storage(app, before)
                raise
        return mounts
