"""The dependency layer of a buildpack build: what a buildpack declares about its dependencies
and the key of a set of dependencies (the layers are found by key in a ``LayerIndex``).

A buildpack opts in with a ``[dependencies]`` table in its ``buildpack.toml``::

    [dependencies]
    dir = ".venv"                          # below BUILD_DIR: where bin/compile installs them
    files = ["requirements.txt"]           # glob patterns of the manifest, below BUILD_DIR
    env = ["PIP_"]                         # config vars (by prefix) that change what installs
    [dependencies.fields]
    "pyproject.toml" = ["project.dependencies"]  # of this file, only these parts count

The key of an app's dependencies is the sha256 of the stack's layers, the buildpack's own
content (any change to the buildpack makes new keys), each manifest file that exists (its
path and content; for a file named in ``fields``, only the named parts, as canonical JSON)
and the values of the config vars whose names start with one of the ``env`` prefixes. Apps
with equal keys share one dependency layer; the app's code is not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from paas.errors import BuildFailed, PlatformError

KEY_VERSION = "paas-dependencies-v1"


@dataclass(frozen=True)
class DependencySpec:
    """A buildpack's ``[dependencies]`` table."""

    dir: str  # relative to BUILD_DIR, such as ".venv" or "node_modules"
    files: tuple[str, ...]  # glob patterns relative to BUILD_DIR
    fields: Mapping[str, tuple[str, ...]]  # file name -> dotted paths of the parts that count
    env: tuple[str, ...] = ()  # config var name prefixes

    def patterns(self) -> tuple[str, ...]:
        """Every pattern whose matches make up the manifest."""
        return (*self.files, *(f for f in self.fields if f not in self.files))


def parse_spec(table: Mapping[str, Any], where: str) -> DependencySpec:
    """The ``[dependencies]`` table of ``where`` (a buildpack.toml), checked."""
    directory = table.get("dir")
    files = table.get("files", [])
    fields = table.get("fields", {})
    env = table.get("env", [])
    if not isinstance(directory, str) or not _relative(directory):
        raise PlatformError(f"{where}: [dependencies] dir must be a path below BUILD_DIR.")
    if not _strings(files) or not all(_relative(f) for f in files):
        raise PlatformError(f"{where}: [dependencies] files must be a list of relative paths.")
    if not isinstance(fields, dict) or not all(
        _relative(name) and _strings(paths) for name, paths in fields.items()
    ):
        raise PlatformError(f"{where}: [dependencies.fields] maps file names to lists of keys.")
    if not _strings(env):
        raise PlatformError(f"{where}: [dependencies] env must be a list of name prefixes.")
    return DependencySpec(
        dir=directory,
        files=tuple(files),
        fields={name: tuple(paths) for name, paths in fields.items()},
        env=tuple(env),
    )


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


def _relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and path != "."


def manifest_files(spec: DependencySpec, source: Path) -> list[str]:
    """The manifest files present in ``source`` (relative paths, sorted). A manifest must be
    a regular file: the platform reads it on the host, where a symlink could point anywhere."""
    found: set[str] = set()
    for pattern in spec.patterns():
        for path in source.glob(pattern):
            if path.is_symlink() or not path.is_file():
                if path.is_symlink() or path.exists():
                    raise BuildFailed(
                        f"{path.relative_to(source)} must be a regular file (not a symlink or "
                        "a directory): the platform reads it to key the app's dependencies."
                    )
                continue
            found.add(path.relative_to(source).as_posix())
    return sorted(found)


def _parts(name: str, text: bytes, paths: Sequence[str]) -> dict[str, Any]:
    """The parts of a TOML or JSON document named by ``paths`` (dotted keys; absent: None)."""
    try:
        if name.endswith(".toml"):
            document: Any = tomllib.loads(text.decode())
        else:
            document = json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        kind = "TOML" if name.endswith(".toml") else "JSON"
        raise BuildFailed(f"{name} is not valid {kind}: {exc}") from None
    parts: dict[str, Any] = {}
    for dotted in paths:
        value = document
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        parts[dotted] = value
    return parts


def dependency_key(
    spec: DependencySpec,
    source: Path,
    config: Mapping[str, str],
    stack_layers: Sequence[str],
    buildpack_digest: str,
) -> str:
    """The key of the dependencies that ``source`` asks for (see the module's docstring)."""
    files: dict[str, Any] = {}
    for rel in manifest_files(spec, source):
        content = (source / rel).read_bytes()
        if rel in spec.fields:
            files[rel] = {"parts": _parts(rel, content, spec.fields[rel])}
        else:
            files[rel] = {"sha256": hashlib.sha256(content).hexdigest()}
    env = {k: v for k, v in config.items() if k.startswith(spec.env)} if spec.env else {}
    document = {
        "version": KEY_VERSION,
        "stack": list(stack_layers),
        "buildpack": buildpack_digest,
        "dir": spec.dir,
        "files": files,
        "env": env,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
