"""The bookworm stack built for real: debootstrap, then apt-get in a runc build container.

The stack is kept under ``PAAS_TEST_STACK_ROOT`` (default ``/tmp/paas-test-stack``) so that
only the first run on a machine pays for it; every other run finds it built. Its fixtures
(``runtime``, ``layers``, ``stack``) serve ``test_build_python.py`` too.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paas.errors import PlatformError
from paas.images.layers import LayerStore, tree_digest
from paas.images.stack import StackBuilder
from paas.runtime.bundle import mount_points
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerSpec
from paas.settings import Limits
from tests.stack_cache import STACK_ROOT, ensure_stack, stack_runtime

pytestmark = pytest.mark.root



@pytest.fixture(scope="module", name="runtime")
def runtime_fixture() -> Iterator[Runtime]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with stack_runtime() as rt:
        yield rt


@pytest.fixture(scope="module", name="layers")
def layers_fixture() -> LayerStore:
    return LayerStore(STACK_ROOT / "layers")


@pytest.fixture(scope="module", name="stack")
def stack_fixture(runtime: Runtime, layers: LayerStore) -> tuple[str, ...]:
    return ensure_stack(runtime)


def _run(rt: Runtime, layers: LayerStore, stack: tuple[str, ...], *command: str) -> list[str]:
    lines: list[str] = []
    spec = ContainerSpec(
        id=f"test-{secrets.token_hex(4)}",
        lowers=tuple(layers.path(d) for d in reversed(stack)),
        command=command,
        env={},
        limits=Limits(memory_bytes=256 * 1024**2, cpu=1.0, pids=64),
        netns=None,
    )
    assert rt.run(spec, lines.append, timeout=60) == 0, lines
    return lines


def test_stack_is_built_once_and_cached(
    stack: tuple[str, ...], runtime: Runtime, layers: LayerStore
) -> None:
    assert len(stack) == 2
    assert all(layers.exists(d) for d in stack)
    lines: list[str] = []
    started = time.monotonic()
    again = StackBuilder(STACK_ROOT / "stacks", layers, runtime).ensure("bookworm", lines.append)
    assert again == stack
    assert time.monotonic() - started < 1.0
    assert lines == []


def test_python_runs_in_the_stack(
    stack: tuple[str, ...], runtime: Runtime, layers: LayerStore
) -> None:
    assert _run(runtime, layers, stack, "python3", "--version")[0].startswith("Python 3.11")
    assert _run(runtime, layers, stack, "python3", "-m", "pip", "--version")[0].startswith("pip ")
    cert = "/etc/ssl/certs/ca-certificates.crt"
    assert _run(runtime, layers, stack, "test", "-s", cert) == []


def test_packages_layer_keeps_its_whiteouts(stack: tuple[str, ...], layers: LayerStore) -> None:
    base, packages = (layers.path(d) for d in stack)
    whiteouts = [
        path
        for path in packages.rglob("*")
        if path.is_char_device() and os.lstat(path).st_rdev == 0
    ]
    assert whiteouts, "apt deletes files of the base: the packages layer must record that"
    for path in whiteouts:
        assert os.path.lexists(base / path.relative_to(packages))
    assert stat.S_ISDIR(os.lstat(packages / "usr").st_mode)
    # committed layers are named by their content
    assert tree_digest(packages) == stack[1]


def test_base_layer_is_neutral(stack: tuple[str, ...], layers: LayerStore) -> None:
    base = layers.path(stack[0])
    assert (base / "usr/bin/tini").is_file()
    assert (base / "etc/resolv.conf").read_text() == ""
    assert "localhost" in (base / "etc/hosts").read_text()
    assert not list((base / "var/cache/apt/archives").glob("*.deb"))


def test_unreachable_mirror_fails_and_leaves_nothing(runtime: Runtime, tmp_path: Path) -> None:
    layers = LayerStore(tmp_path / "layers")
    builder = StackBuilder(tmp_path / "stacks", layers, runtime, mirror="http://127.0.0.1:9/debian")
    lines: list[str] = []
    with pytest.raises(PlatformError, match="debootstrap"):
        builder.ensure("bookworm", lines.append)
    assert lines[0].startswith("-----> Building stack bookworm")
    assert os.listdir(tmp_path / "layers/.tmp") == []
    assert not (tmp_path / "stacks/bookworm.json").exists()
    assert not [m for m in mount_points() if m.is_relative_to(tmp_path)]
