"""Base stacks: the Debian layers every app image sits on.

``StackBuilder`` owns ``stacks_dir``. A stack named after a Debian suite (``bookworm``) is
two layers, built once and recorded in ``stacks_dir/<name>.json``:

1. base: ``debootstrap --variant=minbase --include=tini SUITE DIR MIRROR``, with the apt
   caches emptied and neutral ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``
   (containers get their own bind-mounted over them). tini is in the base because every
   container, the one that builds the next layer included, runs under ``/usr/bin/tini``.
2. packages: ``apt-get install`` of ``PACKAGES`` (Python with venv and pip, Node.js with npm,
   CA certificates: what the buildpacks in ``buildpacks/`` need) in a build container over
   the base (host network namespace, the new layer as its upper dir), so the whiteouts of
   what it deletes from the base are part of the layer.

The Debian mirror comes from ``PAAS_DEBIAN_MIRROR`` or else from the host's own apt sources.
A file lock per stack keeps two processes from building the same stack at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from paas.errors import InvalidInput, PlatformError
from paas.images.layers import LayerStore
from paas.runtime.bundle import mount_points, unmount
from paas.runtime.spec import ContainerSpec
from paas.settings import Limits

STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
PACKAGES = ("python3", "python3-venv", "python3-pip", "nodejs", "npm", "ca-certificates")
PACKAGES_SCRIPT = (
    "set -e; apt-get update; "
    f"apt-get install -y --no-install-recommends {' '.join(PACKAGES)}; "
    "apt-get clean; rm -rf /var/lib/apt/lists/*"
)
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
DEFAULT_STACK_LIMITS = Limits(memory_bytes=2 * 1024**3, cpu=2.0, pids=1024)
DEFAULT_STACK_TIMEOUT = 1800.0
BASE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_MIRROR_SCHEMES = ("http://", "https://", "file:/")


class ContainerRunner(Protocol):
    """What builders need from ``paas.runtime``: a foreground container run."""

    def run(self, spec: ContainerSpec, output: Callable[[str], None], timeout: float) -> int: ...


# --- the Debian mirror ---------------------------------------------------------------------


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(first URI, suites, components) of each enabled ``Types: deb`` paragraph."""
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in paragraph.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no" or not fields.get("uris"):
            continue
        yield (
            fields["uris"].split()[0],
            fields.get("suites", "").split(),
            fields.get("components", "").split(),
        )


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(URI, [suite], components) of each ``deb`` line of a ``sources.list`` file."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        line = re.sub(r"\[[^\]]*\]", " ", line)  # [signed-by=... arch=...] options
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], [words[2]], words[3:]


def _is_security(uri: str, suites: list[str]) -> bool:
    return uri.rstrip("/").endswith("-security") or any(s.endswith("-security") for s in suites)


def debian_mirror(
    suite: str, env: Mapping[str, str] | None = None, apt_dir: Path = Path("/etc/apt")
) -> str:
    """The Debian archive to debootstrap ``suite`` from.

    ``PAAS_DEBIAN_MIRROR`` wins. Otherwise the host's apt sources are read in apt's order
    (``sources.list``, then ``sources.list.d/*.list`` and ``*.sources`` by name) and the
    first non-security archive with the ``main`` component is used, preferring one that
    lists ``suite`` itself.
    """
    env = os.environ if env is None else env
    override = env.get("PAAS_DEBIAN_MIRROR", "").strip()
    if override:
        return override
    entries: list[tuple[str, list[str], list[str]]] = []
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        parse = _deb822_entries if path.suffix == ".sources" else _one_line_entries
        entries += parse(text)
    candidates = [
        uri
        for uri, suites, components in entries
        if "main" in components
        and not _is_security(uri, suites)
        and uri.startswith(_MIRROR_SCHEMES)
    ]
    preferred = [
        uri for uri, suites, components in entries if uri in candidates and suite in suites
    ]
    if preferred or candidates:
        return (preferred or candidates)[0]
    raise PlatformError(
        f"No Debian mirror found in {apt_dir}/sources.list or {parts}: "
        "set PAAS_DEBIAN_MIRROR to a Debian archive URL."
    )


# --- building ------------------------------------------------------------------------------


def _stream_process(
    argv: list[str], output: Callable[[str], None], timeout: float, what: str
) -> None:
    """Run ``argv``, relaying its combined output line by line; fail on error or timeout."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            output(line.rstrip("\n"))
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out.is_set():
        raise PlatformError(f"{what} took longer than {timeout:.0f} s and was stopped.")
    if code != 0:
        raise PlatformError(f"{what} exited with {code}: see the lines above.")


class StackBuilder:
    """Builds (once) and returns the layers of a named stack."""

    def __init__(
        self,
        stacks_dir: Path,
        layers: LayerStore,
        runtime: ContainerRunner,
        mirror: str | None = None,
        *,
        limits: Limits = DEFAULT_STACK_LIMITS,
        timeout: float = DEFAULT_STACK_TIMEOUT,
        host_env: Mapping[str, str] | None = None,
        resolv_conf: Path = Path("/etc/resolv.conf"),
    ) -> None:
        self.stacks_dir = stacks_dir
        self.layers = layers
        self.runtime = runtime
        self.mirror = mirror
        self.limits = limits
        self.timeout = timeout
        self.host_env = dict(os.environ if host_env is None else host_env)
        self.resolv_conf = resolv_conf

    def ensure(
        self,
        name: str = "bookworm",
        output: Callable[[str], None] | None = None,
        *,
        rebuild: bool = False,
    ) -> tuple[str, ...]:
        """The stack's layer digests, bottom first; built on first use (or ``rebuild``)."""
        if not STACK_NAME_RE.match(name):
            raise InvalidInput(f"Invalid stack name {name!r}: use a Debian suite such as bookworm.")
        out: Callable[[str], None] = output or (lambda _line: None)
        if not rebuild and (cached := self.cached(name)) is not None:
            return cached
        self.stacks_dir.mkdir(parents=True, exist_ok=True)
        with self._lock(name, out):
            if not rebuild and (cached := self.cached(name)) is not None:
                return cached  # built by another process while we waited
            return self._build(name, out)

    def _record(self, name: str) -> Path:
        return self.stacks_dir / f"{name}.json"

    def stacks(self) -> dict[str, dict[str, Any]]:
        """Name -> record (layers, packages, built_at) of every stack built here."""
        found: dict[str, dict[str, Any]] = {}
        for record in sorted(self.stacks_dir.glob("*.json")):
            try:
                found[record.stem] = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
        return found

    def all_layers(self) -> set[str]:
        """The layers of every stack recorded here (whether current or not)."""
        return {d for record in self.stacks().values() for d in record.get("layers", ())}

    def cached(self, name: str) -> tuple[str, ...] | None:
        """The stack's layers if it was built with the current package list and its layers exist."""
        try:
            data = json.loads(self._record(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        layers = tuple(data.get("layers", ()))
        if data.get("packages") != list(PACKAGES) or not layers:
            return None
        if not all(self.layers.exists(digest) for digest in layers):
            return None
        return layers

    @contextmanager
    def _lock(self, name: str, out: Callable[[str], None]) -> Iterator[None]:
        with open(self.stacks_dir / f"{name}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                out(f"-----> Waiting for another build of stack {name}")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _build(self, name: str, out: Callable[[str], None]) -> tuple[str, ...]:
        mirror = self.mirror or debian_mirror(name, self.host_env)
        started = time.monotonic()
        out(f"-----> Building stack {name} (once): base system from {mirror}")
        base = self._base_layer(name, mirror, out)
        out(f"-----> Stack {name}: installing {', '.join(PACKAGES)}")
        packages = self._packages_layer(name, base, out)
        layers = (base, packages)
        record = {
            "name": name,
            "layers": list(layers),
            "mirror": mirror,
            "packages": list(PACKAGES),
            "built_at": time.time(),
        }
        tmp = self._record(name).with_suffix(".json.new")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, self._record(name))
        out(f"-----> Stack {name} ready in {time.monotonic() - started:.0f} s")
        return layers

    def _base_layer(self, name: str, mirror: str, out: Callable[[str], None]) -> str:
        root = self.layers.new_dir()
        try:
            argv = ["debootstrap", "--variant=minbase", "--include=tini", name, str(root), mirror]
            _stream_process(argv, lambda line: out(f"       {line}"), self.timeout, "debootstrap")
            _neutralise_base(root)
            return self.layers.commit(root)
        except BaseException:
            # debootstrap mounts /proc and /sys in the target; a killed one leaves them there
            inside = [m for m in mount_points() if m.is_relative_to(root)]
            for mount in sorted(inside, key=lambda m: len(m.parts), reverse=True):
                unmount(mount)
            self.layers.discard(root)
            raise

    def _packages_layer(self, name: str, base: str, out: Callable[[str], None]) -> str:
        upper = self.layers.new_dir()
        env = {"DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        env.update({k: v for k, v in self.host_env.items() if k in PROXY_VARS})
        spec = ContainerSpec(
            id=f"stack-{name}-{secrets.token_hex(4)}",
            lowers=(self.layers.path(base),),
            command=("/bin/sh", "-c", PACKAGES_SCRIPT),
            env=env,
            limits=self.limits,
            netns=None,
            hostname="stack",
            resolv=self.resolv_conf.read_text(),
            upper=upper,
        )
        try:
            code = self.runtime.run(spec, lambda line: out(f"       {line}"), self.timeout)
            if code != 0:
                raise PlatformError(
                    f"Installing the packages of stack {name} failed (exit {code}): "
                    "see the lines above."
                )
            return self.layers.commit(upper)
        except BaseException:
            self.layers.discard(upper)
            raise


def _neutralise_base(root: Path) -> None:
    """Drop apt's caches and the host's identity files that debootstrap left in the base."""
    for directory in (root / "var/cache/apt/archives", root / "var/lib/apt/lists"):
        for entry in directory.iterdir():
            if entry.is_file() and entry.name != "lock":
                entry.unlink()
    for name, content in (("hosts", BASE_HOSTS), ("resolv.conf", ""), ("hostname", "localhost\n")):
        path = root / "etc" / name
        path.unlink(missing_ok=True)
        path.write_text(content)
        path.chmod(0o644)
