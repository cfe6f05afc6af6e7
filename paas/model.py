"""Typed domain objects: apps, images, releases, formations and replicas.

Plain frozen dataclasses with no behaviour beyond validation and naming, shared by
every layer above.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from paas.errors import InvalidInput

APP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$|^[a-z]$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEPLOY_BRANCHES = (b"refs/heads/master", b"refs/heads/main")
WEB = "web"
RELEASE_PHASE = "release"  # the Procfile entry run once per release, never as a replica
CHECK_MODES = ("enabled", "skipped", "disabled")
CONTAINER_PORT = 5000
# (uid, gid) that buildpack-built apps run as and own their /app files as: herokuish's
# (Dokku's) dyno user. Not root, and none that Debian creates on the host or in the stack;
# the stack's /etc/passwd has no entry for it, so HOME (/app) comes from the environment.
APP_USER = (32767, 32767)


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise ``InvalidInput`` saying why."""
    if not isinstance(name, str) or not APP_NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 40 else f"{str(name)[:40]}..."
        raise InvalidInput(
            f"Invalid app name {shown!r}: use 1-30 lowercase letters, digits and dashes, "
            "starting with a letter and not ending with a dash (for example 'hello-world')."
        )
    return name


def validate_config_key(key: str) -> str:
    if not CONFIG_KEY_RE.fullmatch(key):
        raise InvalidInput(
            f"Invalid config key {key!r}: use letters, digits and '_', not starting with a digit."
        )
    return key


@dataclass(frozen=True)
class PortMap:
    """``http:8080:5000``: the router listens on host port 8080 for the app, whose web
    process listens on 5000 (its PORT)."""

    scheme: str
    host: int
    container: int

    def __str__(self) -> str:
        return f"{self.scheme}:{self.host}:{self.container}"


def parse_port_map(text: str) -> PortMap:
    scheme, _, rest = text.partition(":")
    host, _, container = rest.partition(":")
    if scheme != "http" or not (host.isascii() and host.isdecimal() and container.isascii()
                                and container.isdecimal()):
        raise InvalidInput(f"Invalid port mapping {text!r}: use http:HOST_PORT:CONTAINER_PORT, "
                           "for example http:8080:5000.")
    mapping = PortMap(scheme, int(host), int(container))
    if not (0 < mapping.host < 65536 and 0 < mapping.container < 65536):
        raise InvalidInput(f"Invalid port mapping {text!r}: ports are 1 to 65535.")
    return mapping


RESERVED_MOUNT_POINTS = ("/", "/proc", "/sys", "/dev", "/etc/hosts", "/etc/resolv.conf", "/app")


@dataclass(frozen=True)
class StorageMount:
    """``/var/lib/paas/storage/hello:/data``: a host dir bind-mounted into every replica."""

    host: str
    container: str

    def __str__(self) -> str:
        return f"{self.host}:{self.container}"


def parse_storage_mount(text: str) -> StorageMount:
    host, sep, container = text.partition(":")
    where = f"Invalid storage mount {text[:200]!r}"
    if not sep or not host.startswith("/") or not container.startswith("/"):
        raise InvalidInput(f"{where}: use /HOST/DIR:/CONTAINER/DIR with absolute paths.")
    for path in (host, container):
        parts = path.split("/")
        if ".." in parts or "." in parts or not is_env_text(path) or any(
            c in path for c in ":,\n"
        ):
            raise InvalidInput(f"{where}: paths must be plain absolute paths.")
    normal = "/" + "/".join(p for p in container.split("/") if p)
    if any(normal == r or normal.startswith(r + "/") for r in RESERVED_MOUNT_POINTS[1:]) or (
        normal == "/"
    ):
        raise InvalidInput(f"{where}: {normal} belongs to the platform or the app's code.")
    return StorageMount("/" + "/".join(p for p in host.split("/") if p), normal)


def is_env_text(value: str) -> bool:
    """Whether ``value`` can be an environment value or argument: UTF-8 text without NUL
    (JSON can carry lone surrogates, which no environment can)."""
    if "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class App:
    name: str
    created_at: float


@dataclass(frozen=True)
class Image:
    """What a build produced: layer digests from the bottom (stack) to the top (app)."""

    id: str
    layers: tuple[str, ...]
    process_types: Mapping[str, str] = field(default_factory=dict)  # buildpack defaults
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/app"
    port: int | None = None  # the port the web process listens on (EXPOSE); None: 5000
    user: tuple[int, int] | None = None  # (uid, gid) processes run as (USER); None: root
    command: tuple[str, ...] | None = None  # what the image runs (ENTRYPOINT + CMD)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Release:
    app: str
    version: int
    image_id: str
    config: Mapping[str, str]
    processes: Mapping[str, str]  # process type -> command (Procfile over buildpack defaults)
    git_rev: str
    description: str
    created_at: float
    created_by: str
    app_json: str = ""  # the app.json of git_rev ("" when it has none)

    @property
    def name(self) -> str:
        return f"v{self.version}"


class ReplicaState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    CRASHED = "crashed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ReplicaKey:
    """Which slot a replica fills: ``web.1`` of app ``hello``."""

    app: str
    process_type: str
    index: int

    @property
    def dyno(self) -> str:
        return f"{self.process_type}.{self.index}"


@dataclass(frozen=True)
class DesiredReplica:
    key: ReplicaKey
    release: int
    generation: int = 0  # bumped by ps:restart: replicas of an older generation are replaced


@dataclass(frozen=True)
class CrashState:
    """The crashes of one replica slot: how many in a row, when it may start again, and
    which container's crash was counted last (so a crash is counted once)."""

    count: int
    restart_at: float
    container_id: str


@dataclass(frozen=True)
class Replica:
    """A replica as observed: one container of ours, whatever its state."""

    container_id: str
    key: ReplicaKey
    release: int
    state: ReplicaState
    address: str | None
    started_at: float | None
    exit_code: int | None = None
    reason: str | None = None
    generation: int = 0
    port: int = CONTAINER_PORT  # the port its web process listens on
