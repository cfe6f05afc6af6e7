"""The Heroku buildpack API v2 runner: detect, compile and release in build containers.

``BuildpackBuilder`` turns an app's source into one layer holding ``app/...``. Each step
runs in its own build container over the stack's layers with a throwaway upper dir, in the
host network namespace (builds download dependencies), with these bind mounts:

=================== ========== ==============================================================
``/app``            read-write the work dir whose content becomes the app layer (``BUILD_DIR``)
``/cache``          read-write the app's build cache, kept for its next build (``CACHE_DIR``)
``/env``            read-only  one file per config var (``ENV_DIR``)
``/buildpacks``     read-only  the platform's buildpacks
CA bundle           read-only  the host's, over ``/etc/ssl/certs/ca-certificates.crt``
``/etc/pip.conf``   read-only  the host's pip configuration, when it has one
=================== ========== ==============================================================

Buildpacks are tried in ``DEFAULT_ORDER`` (see ``docs/buildpacks.md``): the first whose
``bin/detect /app`` exits 0 compiles the app (``bin/compile /app /cache /env``) and its
``bin/release /app`` gives the default process types. An app picks one itself with the
``BUILDPACK`` config var or else a ``.buildpacks`` file at the top of its repository (one
buildpack, by directory or name); that one's ``bin/detect`` must still accept the app. Each
buildpack describes itself in ``buildpack.toml`` (``[buildpack] name`` and ``detects``, what
``bin/detect`` looks for).
Compile output streams to the caller line by line as it comes; lines starting with ``" !"``
(Heroku's error marker) also make up the message of the ``BuildFailed`` a failed step raises.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from paas.errors import BuildFailed, InvalidInput, PlatformError
from paas.images.layers import LayerStore
from paas.images.stack import PROXY_VARS, ContainerRunner
from paas.model import APP_USER, validate_config_key
from paas.procfile import validate_process_type
from paas.runtime.runtime import RunTimedOut
from paas.runtime.spec import ContainerSpec, Mount
from paas.settings import Limits

DEFAULT_ORDER = ("python", "nodejs", "static", "procfile")
BUILDPACK_VAR = "BUILDPACK"  # config var naming the app's buildpack
BUILDPACK_FILE = ".buildpacks"  # file at the top of the repository naming it
CA_BUNDLE_PATH = "/etc/ssl/certs/ca-certificates.crt"  # provided by the stack's ca-certificates
PIP_CONF_PATH = "/etc/pip.conf"
CA_VARS = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
PIP_VARS = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_DISABLE_PIP_VERSION_CHECK",
)
BUILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RELEASE_KEY_RE = re.compile(r"^default_process_types\s*:\s*(.*?)\s*$")
_RELEASE_ENTRY_RE = re.compile(r"^\s+([^:\s]+)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class Buildpack:
    id: str  # its directory under buildpacks_dir
    name: str
    detects: str  # what bin/detect looks for, told to users whose app nothing detects


@dataclass(frozen=True)
class BuildResult:
    layer: str  # digest of the app layer (``app/...``)
    process_types: dict[str, str]  # bin/release's default_process_types
    buildpack: str  # name of the buildpack that built the app


def load_buildpacks(buildpacks_dir: Path, order: Sequence[str]) -> list[Buildpack]:
    """The buildpacks named in ``order``, read from their ``buildpack.toml``."""
    packs = []
    for pack_id in order:
        meta_file = buildpacks_dir / pack_id / "buildpack.toml"
        try:
            meta = tomllib.loads(meta_file.read_text())["buildpack"]
            packs.append(Buildpack(pack_id, str(meta["name"]), str(meta["detects"])))
        except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
            raise PlatformError(f"Buildpack {pack_id!r} is broken ({meta_file}: {exc}).") from None
    return packs


def chosen_buildpack(source_dir: Path, config: Mapping[str, str]) -> tuple[str, str] | None:
    """The buildpack the app names, and where it does: ``BUILDPACK`` wins over ``.buildpacks``."""
    value = config.get(BUILDPACK_VAR, "").strip()
    if value:
        return value, f"the {BUILDPACK_VAR} config var"
    path = source_dir / BUILDPACK_FILE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BuildFailed(f"{BUILDPACK_FILE} must be a regular file naming one buildpack.")
    if not path.exists():
        return None
    with path.open("rb") as handle:
        text = handle.read(4096).decode(errors="replace")
    names = [n for line in text.splitlines() if (n := line.split("#", 1)[0].strip())]
    if len(names) != 1:
        raise BuildFailed(
            f"{BUILDPACK_FILE} must name exactly one buildpack on a line of its own; "
            f"it names {len(names)}."
        )
    return names[0], BUILDPACK_FILE


def _find_buildpack(packs: Sequence[Buildpack], wanted: str, origin: str) -> Buildpack:
    for pack in packs:
        if wanted.lower() in (pack.id.lower(), pack.name.lower()):
            return pack
    shown = wanted if len(wanted) <= 60 else wanted[:57] + "..."
    raise BuildFailed(
        f"Unknown buildpack {shown!r} in {origin}. "
        f"Choose one of: {', '.join(pack.id for pack in packs)}."
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        decoded = json.loads(value)
        return str(decoded)
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def parse_release(text: str) -> dict[str, str]:
    """``default_process_types`` of a ``bin/release`` YAML document (a block mapping or ``{}``)."""
    lines = text.splitlines()
    found = [(i, m) for i, line in enumerate(lines) if (m := _RELEASE_KEY_RE.match(line))]
    if not found:
        return {}
    index, match = found[0]
    inline = match.group(1)
    if inline in ("{}", "~", "null") or inline.startswith("{}"):
        return {}
    if inline and not inline.startswith("#"):
        raise BuildFailed(
            f"bin/release: cannot read default_process_types {inline!r}: "
            "write one 'name: command' per indented line."
        )
    processes: dict[str, str] = {}
    for line in lines[index + 1 :]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = _RELEASE_ENTRY_RE.match(line)
        if not entry:
            break
        name, command = _unquote(entry.group(1)), _unquote(entry.group(2))
        try:
            processes[validate_process_type(name)] = command
        except InvalidInput as exc:
            raise BuildFailed(f"bin/release: {exc.message}") from None
    return processes


def build_environment(
    host_env: Mapping[str, str], ca_bundle: Path | None, pip_conf: Path | None
) -> tuple[dict[str, str], tuple[Mount, ...]]:
    """Environment and mounts that let a build download through the host's proxy and CA."""
    env = {"PATH": BUILD_PATH, "HOME": "/app", "LANG": "C.UTF-8"}
    env.update({k: v for k, v in host_env.items() if k in PROXY_VARS or k in PIP_VARS})
    mounts: list[Mount] = []
    if ca_bundle is not None:
        mounts.append(Mount(ca_bundle, CA_BUNDLE_PATH))
        env.update(dict.fromkeys(CA_VARS, CA_BUNDLE_PATH))
    if pip_conf is not None:
        mounts.append(Mount(pip_conf, PIP_CONF_PATH))
        env["PIP_CONFIG_FILE"] = PIP_CONF_PATH
    return env, tuple(mounts)


def host_build_environment(
    host_env: Mapping[str, str] | None, pip_conf: Path
) -> tuple[dict[str, str], tuple[Mount, ...]]:
    """The environment and mounts every build container gets from this host (``host_env``:
    default the process's own): its CA bundle, pip settings and proxy variables."""
    host = dict(os.environ if host_env is None else host_env)
    return build_environment(host, host_ca_bundle(host), pip_conf if pip_conf.is_file() else None)


def host_ca_bundle(host_env: Mapping[str, str]) -> Path | None:
    """The host's CA bundle: ``SSL_CERT_FILE`` if it names a file, else Debian's."""
    for candidate in (host_env.get("SSL_CERT_FILE", ""), CA_BUNDLE_PATH):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _error_lines(lines: Sequence[str]) -> list[str]:
    return [line.lstrip(" !").strip() for line in lines if line.startswith(" !")]


class BuildpackBuilder:
    """Builds an app layer with the first buildpack that detects the app."""

    def __init__(
        self,
        runtime: ContainerRunner,
        layers: LayerStore,
        buildpacks_dir: Path,
        order: Sequence[str] = DEFAULT_ORDER,
        *,
        host_env: Mapping[str, str] | None = None,
        pip_conf: Path = Path(PIP_CONF_PATH),
        resolv_conf: Path = Path("/etc/resolv.conf"),
    ) -> None:
        self.runtime = runtime
        self.layers = layers
        self.buildpacks_dir = buildpacks_dir
        self.order = tuple(order)
        self.env, self.mounts = host_build_environment(host_env, pip_conf)
        self.resolv_conf = resolv_conf

    def build(
        self,
        app: str,
        source_dir: Path,
        stack_layers: tuple[str, ...],
        config: Mapping[str, str],
        cache_dir: Path,
        output: Callable[[str], None],
        limits: Limits,
        timeout: float,
    ) -> BuildResult:
        """Build ``source_dir`` into an app layer; ``BuildFailed`` says which step failed."""
        packs = load_buildpacks(self.buildpacks_dir, self.order)
        deadline = time.monotonic() + timeout
        cache_dir.mkdir(parents=True, exist_ok=True)
        work = self.layers.new_dir()
        committed = False
        try:
            app_dir = work / "app"
            shutil.copytree(
                source_dir, app_dir, symlinks=True, ignore=shutil.ignore_patterns(".git")
            )
            app_dir.chmod(0o755)
            with tempfile.TemporaryDirectory(prefix="paas-env-") as env_dir:
                _write_env_dir(Path(env_dir), config)
                step = _Steps(
                    self, app, stack_layers, app_dir, cache_dir, Path(env_dir), limits, timeout
                )
                choice = chosen_buildpack(app_dir, config)
                pack = self._select(step, packs, choice, deadline, output)
                lines: list[str] = []

                def relay(line: str) -> None:
                    lines.append(line)
                    output(line)

                code = step.run(pack, "compile", ("/app", "/cache", "/env"), relay, deadline)
                if code != 0:
                    details = "\n".join(_error_lines(lines)) or "see the build output above."
                    raise BuildFailed(
                        f"The {pack.name} buildpack failed in bin/compile (exit {code}):\n{details}"
                    )
                release_lines: list[str] = []
                code = step.run(pack, "release", ("/app",), release_lines.append, deadline)
                if code != 0:
                    raise BuildFailed(
                        f"The {pack.name} buildpack failed in bin/release (exit {code}):\n"
                        + "\n".join(release_lines[-20:])
                    )
            process_types = parse_release("\n".join(release_lines))
            if process_types:
                output(f"-----> Default process types: {', '.join(process_types)}")
            _give(app_dir, APP_USER)
            layer = self.layers.commit(work)
            committed = True
        finally:
            if not committed:
                self.layers.discard(work)
        return BuildResult(layer=layer, process_types=process_types, buildpack=pack.name)

    def _select(
        self,
        step: _Steps,
        packs: Sequence[Buildpack],
        choice: tuple[str, str] | None,
        deadline: float,
        output: Callable[[str], None],
    ) -> Buildpack:
        """The chosen buildpack if it accepts the app, else the first that detects it."""
        if choice is not None:
            wanted, origin = choice
            pack = _find_buildpack(packs, wanted, origin)
            if not step.detects(pack, deadline):
                raise BuildFailed(
                    f"The {pack.name} buildpack, chosen by {origin}, cannot build this app: "
                    f"it looks for {pack.detects}."
                )
            output(f"-----> {pack.name} app (buildpack chosen by {origin})")
            return pack
        for pack in packs:
            if step.detects(pack, deadline):
                output(f"-----> {pack.name} app detected")
                return pack
        looked_for = "\n".join(f"  {pack.name}: {pack.detects}" for pack in packs)
        raise BuildFailed(
            "No buildpack can build this app. The buildpacks look for:\n"
            f"{looked_for}\nAdd one of these files to the top of the repository, or name a "
            f"buildpack ({', '.join(pack.id for pack in packs)}) in {BUILDPACK_FILE} or the "
            f"{BUILDPACK_VAR} config var."
        )


@dataclass(frozen=True)
class _Steps:
    """Runs the steps of one build, each in a fresh build container."""

    builder: BuildpackBuilder
    app: str
    stack_layers: tuple[str, ...]
    app_dir: Path
    cache_dir: Path
    env_dir: Path
    limits: Limits
    timeout: float  # of the whole build

    def detects(self, pack: Buildpack, deadline: float) -> bool:
        """Whether ``pack``'s ``bin/detect`` accepts the app."""
        return self.run(pack, "detect", ("/app",), lambda _line: None, deadline) == 0

    def run(
        self,
        pack: Buildpack,
        step: str,
        args: tuple[str, ...],
        output: Callable[[str], None],
        deadline: float,
    ) -> int:
        builder = self.builder
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BuildFailed(
                f"The build took longer than its limit of {self.timeout:g} s and was stopped "
                f"before bin/{step} of the {pack.name} buildpack."
            )
        spec = ContainerSpec(
            id=f"build-{self.app}-{secrets.token_hex(4)}",
            lowers=tuple(builder.layers.path(d) for d in reversed(self.stack_layers)),
            command=(f"/buildpacks/{pack.id}/bin/{step}", *args),
            env=builder.env,
            limits=self.limits,
            netns=None,
            hostname=self.app,
            cwd="/app",
            mounts=(
                Mount(self.app_dir, "/app", read_only=False),
                Mount(self.cache_dir, "/cache", read_only=False),
                Mount(self.env_dir, "/env"),
                Mount(builder.buildpacks_dir, "/buildpacks"),
                *builder.mounts,
            ),
            labels={"paas.build": self.app},
            resolv=builder.resolv_conf.read_text(),
        )
        try:
            return builder.runtime.run(spec, output, remaining)
        except RunTimedOut:
            raise BuildFailed(
                f"The build took longer than its limit of {self.timeout:g} s and was stopped "
                f"in bin/{step} of the {pack.name} buildpack."
            ) from None


def _give(root: Path, user: tuple[int, int]) -> None:
    """Make ``user`` (the app's processes') the owner of everything under ``root``: apps
    write to their own dir (HOME is /app). Builds run as root; links are not followed."""
    os.lchown(root, *user)
    for parent, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.lchown(os.path.join(parent, name), *user)


def _write_env_dir(env_dir: Path, config: Mapping[str, str]) -> None:
    env_dir.chmod(0o700)
    for key, value in config.items():
        path = env_dir / validate_config_key(key)
        path.write_text(value)
        path.chmod(0o600)
