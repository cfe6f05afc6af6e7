"""Builds: cold, unchanged and code-only rebuilds of a Python app (Python buildpack) and of
a Dockerfile app, and the disk that apps with the same requirements take.

The builders run as the worker runs them (``BuildpackBuilder`` with a dependency index,
``DockerfileBuilder`` with its step cache) in runc build containers over the default stack,
which is built once under ``PAAS_BENCH_STACK_ROOT`` (default ``/tmp/paas-bench-stack``) and
kept there, as the test stack is. Each cold build starts from an empty app cache, dependency
index and step cache, so it installs from the package index (through the host's proxy
settings). Every layer the benchmark commits, and every cache, is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import Table, spread, spread_row, tag
from paas.build.buildpack import BuildpackBuilder
from paas.build.docker_builder import DockerfileBuilder
from paas.images.layer_index import LayerIndex
from paas.images.layers import LayerStore
from paas.images.stack import StackBuilder
from paas.images.store import ImageStore
from paas.runtime.runtime import Runtime
from paas.settings import Limits

ROOT = Path(__file__).resolve().parents[1]
STACK_ROOT = Path(os.environ.get("PAAS_BENCH_STACK_ROOT", "/tmp/paas-bench-stack"))
LIMITS = Limits(memory_bytes=1024**3, cpu=2.0, pids=512)
TIMEOUT = 900.0
APPS = 5
REQUIREMENTS = "flask\ngunicorn\n"
APP_PY = "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get('/')\ndef index():\n" \
         "    return 'version {n}\\n'\n"
DOCKERFILE = """\
FROM bookworm
RUN python3 -m venv /venv
COPY requirements.txt /app/
RUN /venv/bin/pip install --no-input --progress-bar off -r /app/requirements.txt
COPY . /app/
WORKDIR /app
CMD ["/venv/bin/gunicorn", "app:app", "--bind", "0.0.0.0:5000"]
"""


@dataclass
class Env:
    runtime: Runtime
    layers: LayerStore
    stack: tuple[str, ...]
    stacks: StackBuilder
    scratch: Path  # app sources, caches, indexes and images of this run

    def buildpack(self, index: Path) -> BuildpackBuilder:
        return BuildpackBuilder(self.runtime, self.layers, ROOT / "buildpacks",
                                dependencies=LayerIndex(index, self.layers))

    def docker(self, cache: Path) -> DockerfileBuilder:
        return DockerfileBuilder(self.runtime, self.layers, self.stacks,
                                 ImageStore(self.scratch / "images"), cache)


@contextmanager
def environment() -> Iterator[Env]:
    """The kept stack, a runtime of its own, and a scratch dir; on exit, the layers the
    benchmark made are removed (the stack's stay)."""
    label = tag()
    runc_root = Path(f"/run/paas-bench-{label}/runc")
    runtime = Runtime(runc_root, STACK_ROOT / "containers" / label, f"paas-bench-{label}")
    layers = LayerStore(STACK_ROOT / "layers")
    stacks = StackBuilder(STACK_ROOT / "stacks", layers, runtime)
    scratch = Path(tempfile.mkdtemp(prefix="paas-bench-builds-"))
    try:
        stack = stacks.ensure("bookworm", print)
        before = set(layers.digests())
        try:
            yield Env(runtime, layers, stack, stacks, scratch)
        finally:
            for digest in set(layers.digests()) - before - stacks.all_layers():
                layers.remove(digest)
    finally:
        for info in runtime.list():
            runtime.remove(info.id)
        runtime.prune_cgroups()
        shutil.rmtree(runc_root.parent, ignore_errors=True)
        shutil.rmtree(STACK_ROOT / "containers" / label, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _source(path: Path, n: int, dockerfile: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "requirements.txt").write_text(REQUIREMENTS)
    (path / "app.py").write_text(APP_PY.format(n=n))
    if dockerfile:
        (path / "Dockerfile").write_text(DOCKERFILE)
    return path


def _timed(build: Callable[[], object]) -> float:
    started = time.monotonic()
    build()
    return time.monotonic() - started


def _build_of(env: Env, kind: str, work: Path, source: Path) -> Callable[[], object]:
    """A build of ``source`` with caches under ``work``, as the worker runs it."""
    if kind == "docker":
        docker = env.docker(work / "steps")
        return lambda: docker.build("bench", source, {}, lambda _line: None, limits=LIMITS,
                                    timeout=TIMEOUT)
    builder = env.buildpack(work / "index")
    return lambda: builder.build("bench", source, env.stack, {}, work / "cache",
                                 lambda _line: None, LIMITS, TIMEOUT)


def _series(env: Env, runs: int, kind: str) -> dict[str, list[float]]:
    """``runs`` times: a cold build, a rebuild with no change, a code-only change."""
    times: dict[str, list[float]] = {"cold": [], "same": [], "code": []}
    for run in range(runs):
        work = env.scratch / f"{kind}{run}"
        source = _source(work / "src", 0, dockerfile=kind == "docker")
        build = _build_of(env, kind, work, source)
        times["cold"].append(_timed(build))
        times["same"].append(_timed(build))
        _source(source, 1)
        times["code"].append(_timed(build))
        shutil.rmtree(work)
    return times


def _disk(env: Env) -> dict[str, float]:
    """Bytes of the layers ``APPS`` apps with the same requirements add to the stack,
    against ``APPS`` times what one of them adds alone."""
    builder = env.buildpack(env.scratch / "shared-index")
    added: set[str] = set()
    one = 0
    for n in range(APPS):
        result = builder.build(f"app{n}", _source(env.scratch / f"app{n}", n), env.stack, {},
                               env.scratch / f"cache{n}", lambda _line: None, LIMITS, TIMEOUT)
        if n == 0:
            one = sum(env.layers.size(d) for d in result.layers)
        added |= set(result.layers)
    return {"shared_bytes": float(sum(env.layers.size(d) for d in added)),
            "separate_bytes": float(APPS * one), "layers": float(len(added))}


def measure(runs: int = 5) -> dict[str, float]:
    with environment() as env:
        results: dict[str, float] = {"runs": float(runs)}
        for kind in ("python", "docker"):
            for step, values in _series(env, runs, kind).items():
                results.update(spread(f"{kind}_{step}", values))
        results.update(_disk(env))
    return results


def _size(n: float) -> str:
    return f"{n / 1024**2:.1f} MiB"


def table(r: dict[str, float]) -> Table:
    about = f"""
Builds of a small Flask app (flask and gunicorn in requirements.txt), {r["runs"]:.0f} runs
each, as the worker runs them: in runc build containers over the default stack, with a 1 GiB
memory limit. *Cold*: an empty app cache, dependency index and Dockerfile step cache, so pip
downloads and installs everything. *No change*: the same source again. *Code-only*:
`app.py` changed. The Python buildpack reuses the dependency layer whose key (requirements.txt,
stack, buildpack) is unchanged and runs no pip; the Dockerfile (`RUN pip install` after `COPY
requirements.txt`, then `COPY . /app`) reuses its cached steps up to the first changed one.
Disk: the layers {APPS} apps with the same requirements and different code add to the stack
({r["layers"]:.0f} layers: one shared dependency layer and an app layer each), against {APPS}
times what one app adds alone (apparent size of the files).
"""
    rows = [
        spread_row("Python buildpack: cold build", r, "python_cold"),
        spread_row("Python buildpack: rebuild, no change", r, "python_same"),
        spread_row("Python buildpack: code-only change", r, "python_code"),
        spread_row("Dockerfile: cold build", r, "docker_cold"),
        spread_row("Dockerfile: rebuild, no change", r, "docker_same"),
        spread_row("Dockerfile: code-only change", r, "docker_code"),
        (f"disk: {APPS} apps sharing their requirements", _size(r["shared_bytes"]), "", ""),
        (f"disk: {APPS} times one app", _size(r["separate_bytes"]), "", ""),
    ]
    return Table("Builds", about, ("", "median", "min", "max"), rows)
