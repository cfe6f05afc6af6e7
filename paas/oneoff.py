"""One-off runs (``paas run APP -- CMD``): a container of the app's current release, made as
its replicas are (image, config, ``.profile.d`` prologue, a netns on the bridge), running one
command attached to the caller, then removed.

The run's dyno is ``run.N`` (N random, four digits, as Heroku's); its container is labelled
``{"app": APP, "run": "1"}``, which tells the reconciler's cleanup that a running one is in
use. The command is an argument vector: it is quoted for the shell that sources
``.profile.d``, so it runs exactly as given.
"""

from __future__ import annotations

import secrets
import shlex
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from paas.build.launch import release_spec
from paas.errors import Conflict, InvalidInput
from paas.images.layers import LayerStore
from paas.images.store import ImageStore
from paas.model import Release, is_env_text, validate_config_key
from paas.network import Network
from paas.runtime.attach import WindowSize, run_attached
from paas.runtime.runtime import Runtime
from paas.settings import Limits, limits_for
from paas.state.store import Store

PLATFORM_VARIABLES = frozenset({"PORT", "DYNO", "PAAS_APP", "GIT_REV"})
MAX_COMMAND_BYTES = 64 * 1024


@dataclass(frozen=True)
class RunRequest:
    command: tuple[str, ...]  # the argument vector
    tty: bool = False
    size: WindowSize | None = None  # the terminal's initial size, with ``tty``
    env: Mapping[str, str] = field(default_factory=dict)  # over the app's config

    def __post_init__(self) -> None:
        if not self.command or not self.command[0]:
            raise InvalidInput("Give a command to run: paas run APP -- COMMAND [ARGS]...")
        if not all(is_env_text(word) for word in self.command):
            raise InvalidInput("The command must be UTF-8 text without NUL characters.")
        if sum(len(word.encode()) + 1 for word in self.command) > MAX_COMMAND_BYTES:
            raise InvalidInput(f"The command is longer than {MAX_COMMAND_BYTES} bytes.")
        for key, value in self.env.items():
            validate_config_key(key)
            if key in PLATFORM_VARIABLES:
                raise InvalidInput(f"{key} is set by the platform; choose another name.")
            if not is_env_text(value):
                raise InvalidInput(f"The value of {key} must be text without NUL characters.")


def release_of(store: Store, app: str) -> Release:
    """The release a run of ``app`` uses: its current one. ``NotFound`` for an unknown app,
    ``Conflict`` when nothing was deployed yet."""
    store.get_app(app)
    release = store.current_release(app)
    if release is None:
        raise Conflict(f'App "{app}" has no release to run yet: push first (git push).')
    return release


class OneOffs:
    def __init__(
        self,
        store: Store,
        images: ImageStore,
        layers: LayerStore,
        runtime: Runtime,
        network: Network,
        limits: Limits,
    ) -> None:
        self._store = store
        self._images = images
        self._layers = layers
        self._runtime = runtime
        self._network = network
        self._limits = limits

    def run(self, release: Release, request: RunRequest, channel: socket.socket) -> int:
        """Run ``request`` in a new container of ``release``, its stdio relayed over
        ``channel`` (``paas.runtime.attach``); return the exit code once the container and its
        netns are gone. No time limit: it lasts as long as the command or the client."""
        number = 1000 + secrets.randbelow(9000)
        cid = f"{release.app}.run.{number}.{secrets.token_hex(2)}"
        image = self._images.load(release.image_id)
        try:
            spec = release_spec(
                container_id=cid,
                release=release,
                image=image,
                layer_paths=tuple(self._layers.path(d) for d in image.layers),
                dyno=f"run.{number}",
                command=shlex.join(request.command),
                attachment=self._network.attach(cid),
                # the app's own limits and storage, like its replicas
                limits=limits_for(self._store.limits(release.app), "run", self._limits),
                labels={"app": release.app, "run": "1"},
                storage=tuple(self._store.storage(release.app)),
            )
            spec = replace(spec, terminal=request.tty, env={**spec.env, **request.env})
            return run_attached(self._runtime, spec, channel, request.size)
        finally:
            self._network.detach(cid)
