"""What the API needs from the host that only root may see or do: observe the containers,
read the replicas' output files, run one-off containers, build stacks, collect layers and
export images (control layer).

The API runs unprivileged, so it reaches these through ``Host``. ``LocalHost`` does them in
the calling process (the platform's agent, which is root: ``paas.agent``);
``paas.agent.client.AgentClient`` asks the agent over its Unix socket.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from paas.applogs import AppLogs, LogLine, ProcessFilter
from paas.build.launch import launch_command
from paas.errors import Conflict, PaasError, PlatformError
from paas.gitserver.sshd import authorized_keys_line, parse_public_key
from paas.images.oci import OciImage, export_oci
from paas.model import CONTAINER_PORT, WEB, Replica
from paas.oneoff import OneOffs, RunRequest, release_of
from paas.runtime.attach import error_frame, exit_frame, send_last
from paas.services import Services, WorkerParts, check_storage_dir, prepare_storage_dir


class Host(Protocol):
    def observe(self, app: str | None) -> list[Replica]:
        """The replicas of ``app`` (of every app with ``None``) as they run now."""
        ...

    def recent_logs(self, app: str, lines: int, process: ProcessFilter) -> list[LogLine]: ...

    def follow_logs(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        """Batches of log lines until closed (``AppLogs.follow``)."""
        ...

    def run(self, app: str, request: RunRequest, channel: socket.socket) -> None:
        """A one-off run of ``app`` attached to ``channel``, ending with the last frame."""
        ...

    def stacks(self) -> dict[str, dict[str, Any]]: ...

    def build_stack(self, name: str, out: Callable[[str], None]) -> tuple[str, ...]: ...

    def collect_garbage(self) -> list[str]: ...

    def export_image(self, app: str, version: int | None) -> tuple[int, BinaryIO]:
        """The OCI image layout tar of a release (default: the current one), as an open
        file of an already removed path, and the release's version."""
        ...

    def write_authorized_keys(self) -> None:
        """sshd's authorized_keys from the SSH keys in the store (root's file)."""
        ...

    def prepare_storage_dir(self, path: Path) -> None:
        """An allowed storage dir made ready for apps (``paas.services.prepare_storage_dir``)."""
        ...


class LocalHost:
    """``Host`` in this process: needs the worker parts (root)."""

    def __init__(self, services: Services, applogs: AppLogs, oneoffs: OneOffs) -> None:
        if services.worker is None:
            raise PlatformError("The host's view needs the worker parts (run it as root).")
        self._services = services
        self._worker: WorkerParts = services.worker
        self._applogs = applogs
        self._oneoffs = oneoffs

    def observe(self, app: str | None) -> list[Replica]:
        if app is not None:
            self._services.store.get_app(app)
        return self._worker.reconciler.observe(app)

    def recent_logs(self, app: str, lines: int, process: ProcessFilter) -> list[LogLine]:
        return self._applogs.recent(app, lines, process)

    def follow_logs(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        return self._applogs.follow(app, lines, process)

    def run(self, app: str, request: RunRequest, channel: socket.socket) -> None:
        try:
            release = release_of(self._services.store, app)
            code = self._oneoffs.run(release, request, channel)
        except PaasError as exc:
            send_last(channel, error_frame(exc))
        except BaseException:
            send_last(channel, error_frame(PlatformError("The run failed; see the agent's log.")))
            raise
        else:
            send_last(channel, exit_frame(code))

    def stacks(self) -> dict[str, dict[str, Any]]:
        return self._worker.stacks.stacks()

    def build_stack(self, name: str, out: Callable[[str], None]) -> tuple[str, ...]:
        """(Re)build a stack from Debian's packages; apps get it at their next deploy."""
        return self._worker.stacks.ensure(name, out, rebuild=True)

    def collect_garbage(self) -> list[str]:
        return self._worker.collect_garbage(self._services)

    def export_image(self, app: str, version: int | None) -> tuple[int, BinaryIO]:
        """Config vars are left out of the image: they may be secret."""
        store = self._services.store
        store.get_app(app)
        release = store.release(app, version) if version is not None else store.current_release(app)
        if release is None:
            raise Conflict(f"{app} has no release yet: push to build one first.")
        image = self._worker.images.load(release.image_id)
        web = release.processes.get(WEB)
        port = image.port or CONTAINER_PORT
        tmp_dir = self._services.settings.tmp_dir
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="export-", suffix=".tar", dir=tmp_dir)
        os.close(fd)
        target = Path(path)
        try:
            export_oci(
                OciImage(
                    layers=image.layers,
                    env={**image.env, "PORT": str(port)},
                    workdir=image.workdir,
                    user=None if image.user is None else f"{image.user[0]}:{image.user[1]}",
                    command=image.command or (launch_command(web) if web else None),
                    exposed_port=port,
                    labels=image.labels,
                ),
                self._worker.layers,
                target,
                ref=release.name,
            )
            return release.version, target.open("rb")
        finally:
            target.unlink(missing_ok=True)  # the open file keeps the data until it is read

    def write_authorized_keys(self) -> None:
        s = self._services.settings
        venv = Path(sys.executable).parent.parent
        lines = [
            authorized_keys_line(parse_public_key(k), name, s.settings_file, venv)
            for name, k in self._services.store.ssh_keys().items()
        ]
        target = s.ssh_dir / "authorized_keys"
        tmp = target.with_name("authorized_keys.tmp")
        tmp.write_text("".join(lines))
        tmp.chmod(0o644)
        os.replace(tmp, target)

    def prepare_storage_dir(self, path: Path) -> None:
        check_storage_dir(path, self._services.settings.storage_dirs)
        prepare_storage_dir(path)
