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

A buildpack whose ``buildpack.toml`` has a ``[dependencies]`` table (``paas.build.dependencies``)
gets its dependencies in a layer of their own, keyed by the app's dependency manifest.
``bin/compile`` then runs with ``PAAS_DEPENDENCIES`` set:

- ``install``, only when no layer has the key yet: ``/app`` holds just the manifest files
  and an empty dependency dir; the buildpack installs the dependencies there and nothing
  else. Only that dir is kept, as the dependency layer (``app/DIR``), recorded under the key.
- ``ready``, for every build: ``/app`` is the app, its dependency dir an overlay whose lower
  is the dependency layer's dir; the buildpack installs nothing and builds the app. What it
  writes into the dependency dir (the app's own package, tool caches) becomes part of the app
  layer, which sits above the dependency layer in the image.

Without the table (or without an index) ``PAAS_DEPENDENCIES`` is unset and the buildpack does
everything in one ``bin/compile``, as under Heroku.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from paas.build.dependencies import (
    DependencySpec,
    dependency_key,
    manifest_files,
    parse_spec,
)
from paas.errors import BuildFailed, InvalidInput, PlatformError
from paas.images.layer_index import LayerIndex
from paas.images.layers import LayerStore, tree_digest
from paas.images.stack import PROXY_VARS, ContainerRunner
from paas.model import APP_USER, validate_config_key
from paas.procfile import validate_process_type
from paas.runtime.bundle import mount_overlay, unmount
from paas.runtime.runtime import RunOutOfMemory, RunTimedOut
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
DEPENDENCIES_VAR = "PAAS_DEPENDENCIES"  # "install" or "ready" in bin/compile's environment
_RELEASE_KEY_RE = re.compile(r"^default_process_types\s*:\s*(.*?)\s*$")
_RELEASE_ENTRY_RE = re.compile(r"^\s+([^:\s]+)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class Buildpack:
    id: str  # its directory under buildpacks_dir
    name: str
    detects: str  # what bin/detect looks for, told to users whose app nothing detects
    dependencies: DependencySpec | None = None  # its [dependencies] table


@dataclass(frozen=True)
class BuildResult:
    layer: str  # digest of the app layer (``app/...``)
    process_types: dict[str, str]  # bin/release's default_process_types
    buildpack: str  # name of the buildpack that built the app
    dependencies: str | None = None  # digest of the dependency layer, below the app layer

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the build adds to the stack's, bottom first."""
        return (self.layer,) if self.dependencies is None else (self.dependencies, self.layer)


def load_buildpacks(buildpacks_dir: Path, order: Sequence[str]) -> list[Buildpack]:
    """The buildpacks named in ``order``, read from their ``buildpack.toml``."""
    packs = []
    for pack_id in order:
        meta_file = buildpacks_dir / pack_id / "buildpack.toml"
        try:
            document = tomllib.loads(meta_file.read_text())
            meta = document["buildpack"]
            deps = document.get("dependencies")
            spec = None if deps is None else parse_spec(deps, str(meta_file))
            packs.append(Buildpack(pack_id, str(meta["name"]), str(meta["detects"]), spec))
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


def out_of_memory(app: str, exc: RunOutOfMemory) -> str:
    """What a build that went over its memory limit tells the user."""
    return (
        f"the build ran out of memory (limit {exc.limit}); raise it with "
        f"paas builder:set {app} memory SIZE (such as 1g)."
    )


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
        dependencies: LayerIndex | None = None,
    ) -> None:
        self.runtime = runtime
        self.layers = layers
        self.buildpacks_dir = buildpacks_dir
        self.order = tuple(order)
        self.env, self.mounts = host_build_environment(host_env, pip_conf)
        self.resolv_conf = resolv_conf
        self.dependencies = dependencies  # None: dependencies stay in the app layer

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
                deps: str | None = None
                if pack.dependencies is not None and self.dependencies is not None:
                    deps = self._dependency_layer(
                        step, pack, pack.dependencies, self.dependencies, config, output, deadline
                    )
                    step = replace(step, dependencies="ready")
                release_lines: list[str] = []
                with self._dependencies_in(app_dir, pack.dependencies, deps):
                    step.compile(pack, output, deadline)
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
            self._name_app_user(work, stack_layers)
            layer = self.layers.commit(work)
            committed = True
        finally:
            if not committed:
                self.layers.discard(work)
        return BuildResult(
            layer=layer, process_types=process_types, buildpack=pack.name, dependencies=deps
        )

    def _name_app_user(self, work: Path, stack_layers: tuple[str, ...]) -> None:
        """The stack's passwd and group with the app's user (``APP_USER``, named ``app``,
        home ``/app``) added, in the app layer: ``whoami``, ``id`` and ``~`` work in apps."""
        uid, gid = APP_USER
        entries = {"passwd": f"app:x:{uid}:{gid}:app:/app:/bin/sh\n", "group": f"app:x:{gid}:\n"}
        (work / "etc").mkdir(mode=0o755, exist_ok=True)
        for name, entry in entries.items():
            found = (self.layers.path(d) / "etc" / name for d in reversed(stack_layers))
            lower = next((f for f in found if f.is_file()), None)
            text = lower.read_text(encoding="utf-8") if lower is not None else ""
            if text and not text.endswith("\n"):
                text += "\n"
            target = work / "etc" / name
            target.write_text(text + entry, encoding="utf-8")
            target.chmod(0o644)

    def _dependency_layer(
        self,
        step: _Steps,
        pack: Buildpack,
        spec: DependencySpec,
        index: LayerIndex,
        config: Mapping[str, str],
        output: Callable[[str], None],
        deadline: float,
    ) -> str:
        """The layer with the dependencies the app's manifest asks for: the one recorded
        under its key, else a new one that ``bin/compile`` fills with ``install``."""
        _remove(step.app_dir / spec.dir)  # the platform's, even if the repository has one
        buildpack = tree_digest(self.buildpacks_dir / pack.id)
        key = dependency_key(spec, step.app_dir, config, step.stack_layers, buildpack)
        found = index.find(key)
        if found is not None:
            output(f"-----> Dependencies unchanged, reusing layer sha256:{found}")
            return found
        output(f"-----> Installing dependencies into a layer of their own (/app/{spec.dir})")
        work = self.layers.new_dir()
        try:
            deps_app = work / "app"
            deps_app.mkdir()
            deps_app.chmod(0o755)
            for rel in manifest_files(spec, step.app_dir):
                (deps_app / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(step.app_dir / rel, deps_app / rel)
            (deps_app / spec.dir).mkdir(parents=True)
            replace(step, app_dir=deps_app, dependencies="install").compile(pack, output, deadline)
            _keep_only(deps_app, spec.dir)
            digest = self.layers.commit(work)
        except BaseException:
            self.layers.discard(work)
            raise
        index.record(key, digest)
        output(f"-----> Dependency layer sha256:{digest}")
        return digest

    @contextmanager
    def _dependencies_in(
        self, app_dir: Path, spec: DependencySpec | None, digest: str | None
    ) -> Iterator[None]:
        """The dependency layer's dir at ``app_dir/DIR`` as a writable overlay; afterwards
        what was written there (the overlay's upper dir) is left in its place."""
        if spec is None or digest is None:
            yield
            return
        target = app_dir / spec.dir
        target.mkdir(parents=True)
        scratch = self.layers.new_dir()
        try:
            upper, work = scratch / "upper", scratch / "work"
            upper.mkdir(mode=0o755)
            work.mkdir()
            lower = self.layers.path(digest) / "app" / spec.dir
            mount_overlay((lower,), upper, work, target)
            try:
                yield
            finally:
                unmount(target)
            target.rmdir()
            if any(upper.iterdir()):
                os.rename(upper, target)
        finally:
            self.layers.discard(scratch)

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
    dependencies: str = ""  # PAAS_DEPENDENCIES for bin/compile ("": unset)

    def compile(self, pack: Buildpack, output: Callable[[str], None], deadline: float) -> None:
        """``bin/compile``; ``BuildFailed`` with its error lines when it fails."""
        lines: list[str] = []

        def relay(line: str) -> None:
            lines.append(line)
            output(line)

        code = self.run(pack, "compile", ("/app", "/cache", "/env"), relay, deadline)
        if code != 0:
            details = "\n".join(_error_lines(lines)) or "see the build output above."
            raise BuildFailed(
                f"The {pack.name} buildpack failed in bin/compile (exit {code}):\n{details}"
            )

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
            env={**builder.env, DEPENDENCIES_VAR: self.dependencies}
            if self.dependencies and step == "compile"
            else builder.env,
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
        except RunOutOfMemory as exc:
            raise BuildFailed(
                f"In bin/{step} of the {pack.name} buildpack, {out_of_memory(self.app, exc)}"
            ) from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _keep_only(root: Path, rel: str) -> None:
    """Delete everything under ``root`` but ``rel`` (and the dirs leading to it)."""
    for part in Path(rel).parts:
        for entry in root.iterdir():
            if entry.name != part:
                _remove(entry)
        root = root / part


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
