"""Platform settings: read once from ``PAAS_*`` environment variables, with working defaults.

``Settings`` also owns the layout of the platform root (where repos, layers, containers,
the router's and sshd's files live), so that every module derives paths the same way and
two platforms with different roots never share a file, a bridge, a netns or a cgroup.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from paas.errors import InvalidInput

_SIZE_RE = re.compile(r"^(\d+)([kmg]?)b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``"512m"`` -> bytes. Accepts k, m, g suffixes (powers of 1024)."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise InvalidInput(f"Invalid size {text!r}: use a number with k, m or g, e.g. 512m.")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines and ``#`` comments ignored)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{path}: not a KEY=VALUE line: {line!r}")
        values[key.strip()] = value.strip()
    return values


def load_settings(env: Mapping[str, str]) -> Settings:
    """Settings from ``env`` over the KEY=VALUE lines of the file ``PAAS_SETTINGS_FILE``
    names (sshd and git run our commands with a bare environment and that variable)."""
    merged = dict(env)
    path = env.get("PAAS_SETTINGS_FILE")
    if path:
        merged = {**read_env_file(Path(path)), **merged}
    return Settings.from_env(merged)


@dataclass(frozen=True)
class Limits:
    """cgroup limits of one container."""

    memory_bytes: int
    cpu: float  # in CPUs: 0.5 = half a core
    pids: int


def limits_for(stored: Mapping[str, Limits], process_type: str, default: Limits) -> Limits:
    """The limits of a process type: its own, else the app's ("" key), else ``default``."""
    return stored.get(process_type) or stored.get("") or default


@dataclass(frozen=True)
class LogRotation:
    """How much output of one container is kept: files of up to ``max_bytes``, the current
    one and ``keep`` rotated ones."""

    max_bytes: int = 10 * 1024**2
    keep: int = 3


def _log_rotation(env: Mapping[str, str]) -> LogRotation:
    max_bytes = parse_size(env.get("PAAS_LOG_MAX_BYTES", "10m"))
    keep = env.get("PAAS_LOG_KEEP", "3")
    if max_bytes < 4096:
        raise InvalidInput("PAAS_LOG_MAX_BYTES must be at least 4k.")
    if not keep.isdecimal() or not 1 <= int(keep) <= 100:
        raise InvalidInput(f"PAAS_LOG_KEEP={keep!r}: use a number of files from 1 to 100.")
    return LogRotation(max_bytes, int(keep))


MIN_MEMORY = 16 * 1024**2
MIN_PIDS = 8


def checked_limits(limits: Limits) -> Limits:
    """``limits`` if the kernel and the app can live with them, else ``InvalidInput``."""
    if not MIN_MEMORY <= limits.memory_bytes <= 1024**4:
        raise InvalidInput("Memory must be between 16m and 1024g.")
    if not 0.01 <= limits.cpu <= 64:
        raise InvalidInput("CPU must be between 0.01 and 64 (in CPUs: 0.5 is half a core).")
    if not MIN_PIDS <= limits.pids <= 4_194_304:
        raise InvalidInput(f"Pids must be between {MIN_PIDS} and 4194304.")
    return limits


def _port(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, str(default))
    if not raw.isdecimal() or not 0 < int(raw) < 65536:
        raise InvalidInput(f"{key}={raw!r} is not a TCP port (1-65535).")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    root: Path = Path("/var/lib/paas")
    domain: str = "paas.test"
    http_port: int = 80
    api_port: int = 8000
    ssh_port: int = 2222
    bind: str = "0.0.0.0"
    redis_url: str | None = None  # None: the platform runs its own redis-server
    subnet: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network("198.18.0.0/24")
    )
    ssh_user: str = "paas"
    stack: str = "bookworm"
    default_limits: Limits = field(
        default_factory=lambda: Limits(memory_bytes=512 * 1024**2, cpu=1.0, pids=256)
    )
    boot_timeout: float = 60.0
    stop_timeout: float = 10.0
    build_timeout: float = 1800.0
    checks_wait: float = 2.0  # a new replica without health checks must stay up this long
    wait_to_retire: float = 10.0  # an old replica drains this long after leaving the router
    release_timeout: float = 600.0
    storage_allow: tuple[Path, ...] = ()  # dirs storage:mount may use; (): root/storage
    log_rotation: LogRotation = field(default_factory=LogRotation)  # each replica's output

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            subnet = ipaddress.IPv4Network(env.get("PAAS_SUBNET", "198.18.0.0/24"))
        except ValueError as exc:
            raise InvalidInput(
                f"PAAS_SUBNET: {exc}. Use a network such as 198.18.0.0/24."
            ) from None
        if subnet.num_addresses < 16:
            raise InvalidInput("PAAS_SUBNET must hold at least 16 addresses (a /28 or larger).")
        return cls(
            root=Path(env.get("PAAS_ROOT", "/var/lib/paas")).absolute(),
            domain=env.get("PAAS_DOMAIN", "paas.test"),
            http_port=_port(env, "PAAS_HTTP_PORT", 80),
            api_port=_port(env, "PAAS_API_PORT", 8000),
            ssh_port=_port(env, "PAAS_SSH_PORT", 2222),
            bind=env.get("PAAS_BIND", "0.0.0.0"),
            redis_url=env.get("PAAS_REDIS_URL") or None,
            subnet=subnet,
            ssh_user=env.get("PAAS_SSH_USER", "paas"),
            stack=env.get("PAAS_STACK", "bookworm"),
            default_limits=Limits(
                memory_bytes=parse_size(env.get("PAAS_DEFAULT_MEMORY", "512m")),
                cpu=float(env.get("PAAS_DEFAULT_CPU", "1.0")),
                pids=int(env.get("PAAS_DEFAULT_PIDS", "256")),
            ),
            boot_timeout=float(env.get("PAAS_BOOT_TIMEOUT", "60")),
            stop_timeout=float(env.get("PAAS_STOP_TIMEOUT", "10")),
            build_timeout=float(env.get("PAAS_BUILD_TIMEOUT", "1800")),
            checks_wait=float(env.get("PAAS_CHECKS_WAIT", "2")),
            wait_to_retire=float(env.get("PAAS_WAIT_TO_RETIRE", "10")),
            release_timeout=float(env.get("PAAS_RELEASE_TIMEOUT", "600")),
            storage_allow=tuple(
                Path(p).absolute() for p in env.get("PAAS_STORAGE_ALLOW", "").split(":") if p
            ),
            log_rotation=_log_rotation(env),
        )

    def to_env(self) -> dict[str, str]:
        """The ``PAAS_*`` variables that reproduce these settings in a child process."""
        env = {
            "PAAS_ROOT": str(self.root),
            "PAAS_DOMAIN": self.domain,
            "PAAS_HTTP_PORT": str(self.http_port),
            "PAAS_API_PORT": str(self.api_port),
            "PAAS_SSH_PORT": str(self.ssh_port),
            "PAAS_BIND": self.bind,
            "PAAS_SUBNET": str(self.subnet),
            "PAAS_SSH_USER": self.ssh_user,
            "PAAS_STACK": self.stack,
            "PAAS_DEFAULT_MEMORY": str(self.default_limits.memory_bytes),
            "PAAS_DEFAULT_CPU": str(self.default_limits.cpu),
            "PAAS_DEFAULT_PIDS": str(self.default_limits.pids),
            "PAAS_BOOT_TIMEOUT": str(self.boot_timeout),
            "PAAS_STOP_TIMEOUT": str(self.stop_timeout),
            "PAAS_BUILD_TIMEOUT": str(self.build_timeout),
            "PAAS_CHECKS_WAIT": str(self.checks_wait),
            "PAAS_WAIT_TO_RETIRE": str(self.wait_to_retire),
            "PAAS_RELEASE_TIMEOUT": str(self.release_timeout),
            "PAAS_LOG_MAX_BYTES": str(self.log_rotation.max_bytes),
            "PAAS_LOG_KEEP": str(self.log_rotation.keep),
        }
        if self.storage_allow:
            env["PAAS_STORAGE_ALLOW"] = ":".join(str(p) for p in self.storage_allow)
        if self.redis_url:
            env["PAAS_REDIS_URL"] = self.redis_url
        return env

    # --- identity -------------------------------------------------------------------------

    @property
    def instance(self) -> str:
        """Short id of this platform (from its root): prefixes netns, bridge and cgroups."""
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:6]

    @property
    def bridge(self) -> str:
        return f"paas-{self.instance}"  # 11 chars, under IFNAMSIZ

    @property
    def cgroup_parent(self) -> str:
        return f"paas-{self.instance}"

    # --- redis ----------------------------------------------------------------------------

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"unix://{self.redis_socket}"

    @property
    def celery_broker_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"redis+socket://{self.redis_socket}"

    # --- layout of the root -----------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def agent_socket(self) -> Path:
        """Where the agent (root) answers the API (unprivileged): ``paas.agent``."""
        return self.run_dir / "agent.sock"

    @property
    def runc_root(self) -> Path:
        """runc's state: on /run so that it goes away with a reboot, like the containers."""
        return Path("/run") / f"paas-{self.instance}" / "runc"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the same filesystem as the layers (renames stay atomic)."""
        return self.root / "tmp"

    @property
    def storage_dirs(self) -> tuple[Path, ...]:
        """Where ``storage:mount`` host paths may be (PAAS_STORAGE_ALLOW, colon-separated)."""
        return self.storage_allow or (self.root / "storage",)

    @property
    def repos_dir(self) -> Path:
        return self.root / "repos"

    @property
    def layers_dir(self) -> Path:
        return self.root / "layers"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def stacks_dir(self) -> Path:
        return self.root / "stacks"

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def network_dir(self) -> Path:
        return self.root / "network"

    @property
    def nginx_dir(self) -> Path:
        return self.root / "nginx"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def token_file(self) -> Path:
        return self.root / "api-token"

    @property
    def ssh_token_file(self) -> Path:
        """The API token of SSH commands (readable by the SSH user's group)."""
        return self.run_dir / "ssh-token"

    @property
    def settings_file(self) -> Path:
        """The settings as ``KEY=VALUE`` lines, for processes started by sshd or git."""
        return self.root / "settings.env"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "") else self.bind
        return f"http://{host}:{self.api_port}"
