"""StackBuilder's bookkeeping: the record of a built stack, and the lock that keeps two
processes from building one stack at once. The real build is in
tests/integration/test_images_stack.py."""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from paas.errors import InvalidInput
from paas.images.layers import LayerStore
from paas.images.stack import PACKAGES, StackBuilder
from paas.runtime.spec import ContainerSpec


class NoRuntime:
    def run(self, spec: ContainerSpec, output: Callable[[str], None], timeout: float) -> int:
        raise AssertionError("a cached stack must not run containers")


def _layer(store: LayerStore, content: str) -> str:
    new = store.new_dir()
    (new / "marker").write_text(content)
    return store.commit(new)


def _record(stacks: Path, layers: tuple[str, ...], packages: tuple[str, ...] = PACKAGES) -> None:
    stacks.mkdir(parents=True, exist_ok=True)
    data = {"name": "bookworm", "layers": list(layers), "packages": list(packages)}
    (stacks / "bookworm.json").write_text(json.dumps(data))


def test_a_recorded_stack_is_reused(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    layers = (_layer(store, "base"), _layer(store, "packages"))
    _record(tmp_path / "stacks", layers)
    builder = StackBuilder(tmp_path / "stacks", store, NoRuntime(), mirror="http://m.example/")
    lines: list[str] = []
    assert builder.ensure("bookworm", lines.append) == layers
    assert lines == []


def test_a_builder_waits_for_another_build_and_uses_its_result(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    layers = (_layer(store, "base"), _layer(store, "packages"))
    builder = StackBuilder(stacks, store, NoRuntime(), mirror="http://m.example/")
    lines: list[str] = []
    result: list[tuple[str, ...]] = []
    with open(stacks / "bookworm.lock", "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # another process is building
        waiter = threading.Thread(
            target=lambda: result.append(builder.ensure("bookworm", lines.append))
        )
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and result == []
        _record(stacks, layers)  # the other build finishes
        fcntl.flock(other, fcntl.LOCK_UN)
    waiter.join(5)
    assert result == [layers]
    assert lines == ["-----> Waiting for another build of stack bookworm"]


@pytest.mark.parametrize("missing", ["layer", "packages"])
def test_a_stale_record_is_not_used(tmp_path: Path, missing: str) -> None:
    store = LayerStore(tmp_path / "layers")
    layers = (_layer(store, "base"), "f" * 64 if missing == "layer" else _layer(store, "p"))
    packages = PACKAGES if missing == "layer" else ("python3",)
    _record(tmp_path / "stacks", layers, packages)
    builder = StackBuilder(tmp_path / "stacks", store, NoRuntime(), mirror="http://m.example/")
    assert builder.cached("bookworm") is None


@pytest.mark.parametrize("name", ["", "Bookworm", "../x", "a b"])
def test_stack_names_are_checked(tmp_path: Path, name: str) -> None:
    builder = StackBuilder(tmp_path, LayerStore(tmp_path / "layers"), NoRuntime(), mirror="m")
    with pytest.raises(InvalidInput):
        builder.ensure(name)
