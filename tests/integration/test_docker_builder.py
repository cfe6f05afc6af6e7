"""Dockerfile builds for real: RUN steps in runc build containers over the bookworm stack,
COPY into layer dirs, the step cache, and the errors a bad Dockerfile gets.

The stack and its fixtures come from ``test_images_stack.py`` (kept under
``PAAS_TEST_STACK_ROOT``). Each test builds into a layer store of its own that links to the
stack's layers (``private_store``), so what it checks and removes is its own.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paas.build.docker_builder import DockerBuild, DockerfileBuilder
from paas.errors import BuildFailed
from paas.images.layers import LayerStore
from paas.images.stack import StackBuilder
from paas.images.store import ImageStore
from paas.model import Image
from paas.runtime.bundle import mount_points
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerSpec
from paas.settings import Limits
from tests.integration.test_build_python import source_tree
from tests.integration.test_images_stack import (  # noqa: F401  (fixtures)
    layers_fixture,
    runtime_fixture,
    stack_fixture,
)
from tests.stack_cache import STACK_ROOT

pytestmark = pytest.mark.root

LIMITS = Limits(memory_bytes=512 * 1024**2, cpu=2.0, pids=256)

DOCKERFILE = """\
# global ARG, visible to FROM and, redeclared, to the steps
ARG GREETING=hello
FROM bookworm
ARG GREETING
ENV APP_HOME=/srv/app \\
    GREETING="${GREETING} there"
WORKDIR $APP_HOME
RUN useradd --create-home --uid 1000 app && mkdir /data && chown app /data
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --quiet six
COPY requirements.txt ./
RUN echo "deps: $(cat requirements.txt)" > deps.txt
COPY --chown=app:app . .
RUN rm /etc/motd
USER app
RUN { whoami; echo "$HOME $GREETING"; } > /data/whoami
LABEL org.example.title="hello app"
EXPOSE 8080
CMD ["python3", "app.py"]
"""
RUN_STEPS = 5
LAYER_STEPS = 7  # RUN, COPY and ADD


class CountingRuntime:
    """The real runtime, counting the containers a build runs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.runs = 0

    def run(self, spec: ContainerSpec, output: Callable[[str], None], timeout: float) -> int:
        self.runs += 1
        return self.runtime.run(spec, output, timeout)


def private_store(root: Path, layers: LayerStore, stack: tuple[str, ...]) -> LayerStore:
    """A layer store under ``root`` holding links to the stack's layers."""
    store = LayerStore(root / "layers")
    store.layers_dir.mkdir(parents=True)
    for digest in stack:
        (store.layers_dir / digest).symlink_to(layers.path(digest))
    return store


@pytest.fixture(name="store")
def store_fixture(
    layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> Iterator[LayerStore]:
    store = private_store(tmp_path, layers, stack)
    yield store
    shutil.rmtree(store.layers_dir)


@pytest.fixture
def counting(runtime: Runtime) -> CountingRuntime:
    return CountingRuntime(runtime)


@pytest.fixture
def builder(counting: CountingRuntime, store: LayerStore, tmp_path: Path) -> DockerfileBuilder:
    stacks = StackBuilder(STACK_ROOT / "stacks", store, counting.runtime)
    return DockerfileBuilder(
        counting, store, stacks, ImageStore(tmp_path / "images"), tmp_path / "cache"
    )


def _source(root: Path, dockerfile: str, **files: str) -> Path:
    return source_tree(root, {"Dockerfile": dockerfile, **files})


def _app(root: Path) -> Path:
    return _source(
        root,
        DOCKERFILE,
        **{
            "app.py": "print('v1')\n",
            "requirements.txt": "six\n",
            "debug.log": "not copied\n",
            "secret/key": "not copied\n",
            ".dockerignore": "*.log\nsecret\n",
        },
    )


def _in_image(runtime: Runtime, store: LayerStore, build: DockerBuild, script: str) -> list[str]:
    lines: list[str] = []
    spec = ContainerSpec(
        id=f"test-{secrets.token_hex(4)}",
        lowers=tuple(store.path(d) for d in reversed(build.layers)),
        command=("/bin/sh", "-c", script),
        env={},
        limits=LIMITS,
        netns=None,
        cwd=build.workdir,
    )
    assert runtime.run(spec, lines.append, timeout=60) == 0, lines
    return lines


def _leftovers(store: LayerStore, runtime: Runtime, app: str) -> list[str]:
    """What the failed build of ``app`` left: temp layer dirs, containers, mounts."""
    found = os.listdir(store.layers_dir / ".tmp") if (store.layers_dir / ".tmp").exists() else []
    found += [c.id for c in runtime.list() if c.labels.get("paas.build") == app]
    return found + [str(m) for m in mount_points() if f"build-{app}-" in str(m)]


def _timed(
    builder: DockerfileBuilder, source: Path, config: dict[str, str]
) -> tuple[DockerBuild, list[str], float]:
    lines: list[str] = []
    started = time.monotonic()
    build = builder.build("hello", source, config, lines.append, LIMITS, 300)
    return build, lines, time.monotonic() - started


def test_dockerfile_builds_caches_and_rebuilds_from_the_changed_step(
    builder: DockerfileBuilder,
    counting: CountingRuntime,
    store: LayerStore,
    stack: tuple[str, ...],
    tmp_path: Path,
) -> None:
    source = _app(tmp_path)
    config = {"GREETING": "hi", "UNDECLARED": "not an ARG"}
    first, lines, cold = _timed(builder, source, config)
    assert counting.runs == RUN_STEPS
    assert lines[0] == "Step 1/16 : ARG GREETING=hello"
    assert "Step 10/16 : COPY --chown=app:app . ." in lines
    assert first.layers[:2] == stack and len(first.layers) == 2 + LAYER_STEPS
    assert first.env == {"APP_HOME": "/srv/app", "GREETING": "hi there"}
    assert first.workdir == "/srv/app"
    assert (first.user, first.user_ids) == ("app", (1000, 1000))
    assert first.command == ("python3", "app.py") and first.entrypoint is None
    assert first.process_argv == ("python3", "app.py")
    assert first.exposed_port == 8080
    assert first.labels == {"org.example.title": "hello app"}

    runtime = counting.runtime
    seen = _in_image(
        runtime,
        store,
        first,
        "ls -A; cat deps.txt /data/whoami; stat -c '%U %a' app.py /srv/app; "
        "test -e /etc/motd || echo motd gone; /opt/venv/bin/python -c 'import six; print(1)'; "
        "test -e /etc/pip.conf || echo no pip.conf",
    )
    assert seen == [
        ".dockerignore", "Dockerfile", "app.py", "deps.txt", "requirements.txt",
        "deps: six", "app", "/home/app hi there", "app 644", "root 755", "motd gone", "1",
        "no pip.conf",
    ]  # fmt: skip

    counting.runs = 0
    second, lines, warm = _timed(builder, source, config)
    assert counting.runs == 0, "an unchanged rebuild runs no RUN step"
    assert lines.count(" ---> Using cache") == LAYER_STEPS
    assert second == first

    (source / "app.py").write_text("print('v2')\n")
    counting.runs = 0
    third, lines, changed = _timed(builder, source, config)
    assert counting.runs == 2, "the two RUN steps after the changed COPY run again"
    assert lines.count(" ---> Using cache") == 4
    assert third.layers[:6] == first.layers[:6]
    assert third.layers[6] != first.layers[6]
    assert _in_image(runtime, store, third, "cat app.py") == ["print('v2')"]

    config["GREETING"] = "hey"  # an ARG value is part of the key of every step after it
    counting.runs = 0
    fourth, _, _ = _timed(builder, source, config)
    assert counting.runs == RUN_STEPS
    assert fourth.env["GREETING"] == "hey there"
    print(
        f"cold build {cold:.2f} s, no-change rebuild {warm:.3f} s, one-file change {changed:.2f} s"
    )


def test_from_a_local_image(
    builder: DockerfileBuilder, store: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    base = builder.images.save(Image(id="", layers=stack, env={"FROM_BASE": "1"}, workdir="/srv"))
    builder.image_refs = {"base:v1": base.id}.get
    for ref in (f"sha256:{base.id}", "base:v1"):
        source = _source(tmp_path, f"FROM {ref}\nCOPY hello.txt ./\nENTRYPOINT echo $FROM_BASE\n",
                         **{"hello.txt": "hi\n"})  # fmt: skip
        build = builder.build("hello", source, {}, print, LIMITS, 60)
        assert build.layers[:2] == stack and len(build.layers) == 3
        assert (store.path(build.layers[2]) / "srv/hello.txt").read_text() == "hi\n"
        assert build.env == {"FROM_BASE": "1"} and build.workdir == "/srv"
        assert build.process_argv == ("/bin/sh", "-c", "echo $FROM_BASE")


def test_copy_follows_the_images_symlinks_and_keeps_its_dirs(
    builder: DockerfileBuilder, store: LayerStore, tmp_path: Path
) -> None:
    source = _source(
        tmp_path,
        "FROM bookworm\nCOPY tool /bin/\nCOPY note /tmp/\nCOPY tree/ /opt/tree/\n",
        **{"tool": "#!/bin/sh\necho tool\n", "note": "n\n", "tree/a/b.txt": "b\n"},
    )
    (source / "tool").chmod(0o755)
    build = builder.build("hello", source, {}, print, LIMITS, 60)
    tool, note, tree = (store.path(d) for d in build.layers[2:])
    assert sorted(os.listdir(tool)) == ["usr"], "/bin is a symlink to usr/bin in bookworm"
    assert (tool / "usr/bin/tool").stat().st_mode & 0o777 == 0o755
    assert (note / "tmp").stat().st_mode & 0o7777 == 0o1777, "/tmp keeps its mode"
    assert (tree / "opt/tree/a/b.txt").read_text() == "b\n"


def test_add_copies_local_files_and_refuses_archives(
    builder: DockerfileBuilder, store: LayerStore, tmp_path: Path
) -> None:
    source = _source(tmp_path, "FROM bookworm\nADD --chmod=600 conf.ini /etc/app/\n",
                     **{"conf.ini": "[app]\n"})  # fmt: skip
    build = builder.build("hello", source, {}, print, LIMITS, 60)
    added = store.path(build.layers[-1]) / "etc/app/conf.ini"
    assert added.read_text() == "[app]\n" and added.stat().st_mode & 0o777 == 0o600
    (source / "Dockerfile").write_text("FROM bookworm\nENV A=1\nADD site.tar.gz /srv/\n")
    (source / "site.tar.gz").write_bytes(gzip.compress(b"not really a tar"))
    with pytest.raises(BuildFailed, match=r"^Dockerfile line 3: ADD 'site.tar.gz': Docker would"):
        builder.build("hello", source, {}, print, LIMITS, 60)


@pytest.mark.parametrize(
    ("dockerfile", "line", "fragment"),
    [
        ("FROM bookworm\nRUN true\nRUNN echo hi\n", 3, "unknown instruction 'RUNN'"),
        ("FROM bookworm\nCOPY app.py /app/\nCOPY missing.txt /app/\n", 3,
         "COPY source 'missing.txt' not found in the build context"),
        ("FROM bookworm\nCOPY secret.txt /app/\n", 2, "or excluded by .dockerignore"),
        ("FROM bookworm\n\nHEALTHCHECK CMD curl -f localhost\n", 3,
         "HEALTHCHECK is not supported. Supported instructions: FROM, RUN, COPY"),
        ("FROM ubuntu:22.04\nRUN true\n", 1, "unknown base image 'ubuntu:22.04'"),
        ("FROM bookworm\nCMD [\"python3\" \"app.py\"]\n", 2, "not a JSON array of strings"),
        ("FROM bookworm\nUSER nobody-here\n", 2, "unknown user 'nobody-here'"),
        ("FROM bookworm\nEXPOSE http\n", 2, "EXPOSE 'http' is not a port"),
        ("FROM bookworm\nADD https://example.invalid/x.tgz /\n", 2, "only local files"),
        ("RUN true\n", 1, "must start with FROM"),
        ("FROM bookworm\nFROM bookworm\n", 2, "multi-stage builds are not supported"),
        ("FROM bookworm\nRUN echo failing; exit 3\n", 2,
         "RUN echo failing; exit 3 failed with exit code 3"),
    ],
)  # fmt: skip
def test_bad_dockerfiles_fail_naming_the_line(
    builder: DockerfileBuilder,
    store: LayerStore,
    runtime: Runtime,
    tmp_path: Path,
    dockerfile: str,
    line: int,
    fragment: str,
) -> None:
    source = _source(
        tmp_path, dockerfile, **{"app.py": "", "secret.txt": "", ".dockerignore": "secret.txt\n"}
    )
    lines: list[str] = []
    with pytest.raises(BuildFailed) as failure:
        builder.build("dockerfile-bad", source, {}, lines.append, LIMITS, 60)
    assert failure.value.message.startswith(f"Dockerfile line {line}: ")
    assert fragment in failure.value.message
    assert _leftovers(store, runtime, "dockerfile-bad") == []


def test_a_missing_dockerfile_is_reported(builder: DockerfileBuilder, tmp_path: Path) -> None:
    with pytest.raises(BuildFailed, match="no Dockerfile"):
        builder.build("hello", tmp_path, {}, print, LIMITS, 60)


def test_a_run_over_the_time_limit_is_stopped(
    builder: DockerfileBuilder, store: LayerStore, runtime: Runtime, tmp_path: Path
) -> None:
    source = _source(tmp_path, "FROM bookworm\nRUN sleep 30\n")
    started = time.monotonic()
    with pytest.raises(BuildFailed, match=r"^Dockerfile line 2: the build took longer than"):
        builder.build("dockerfile-slow", source, {}, print, LIMITS, 2)
    assert time.monotonic() - started < 15
    assert _leftovers(store, runtime, "dockerfile-slow") == []
