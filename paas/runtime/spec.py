"""What a container is asked to be (``ContainerSpec``) and what it was seen to be
(``ContainerInfo``). Pure data shared by the runtime, the builders and the reconciler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from paas.settings import Limits


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path into the container."""

    source: Path
    destination: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    id: str  # runc container id, unique within one platform: [A-Za-z0-9_.-]
    lowers: tuple[Path, ...]  # read-only layer dirs, TOP FIRST (overlay lowerdir order)
    command: tuple[str, ...]  # run under tini (/usr/bin/tini in the image) as PID 1
    env: Mapping[str, str]
    limits: Limits
    netns: Path | None  # a netns file (/run/netns/NAME); None shares the host's (builds)
    hostname: str = "app"
    cwd: str = "/"
    mounts: tuple[Mount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # kept with the container
    hosts: str = "127.0.0.1\tlocalhost\n"  # content of /etc/hosts
    resolv: str = ""  # content of /etc/resolv.conf ("" = no nameserver)
    upper: Path | None = None  # keep the writable layer here (builds); None: per container
    user: tuple[int, int] | None = None  # (uid, gid) of the process; None: root
    confined: bool = False  # apps: fewer capabilities, no_new_privileges, seccomp denylist
    terminal: bool = False  # a pty as stdio (foreground one-off runs; runc allocates it)


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    labels: Mapping[str, str]
    status: str  # "running", "stopped", "creating" (runc not yet started)
    pid: int | None
    started_at: float | None
    exit_code: int | None = None  # set once stopped and reaped
    oom_killed: bool = False
    log_path: Path | None = None
