"""The test stack: built once per machine under ``PAAS_TEST_STACK_ROOT`` (default
``/tmp/paas-test-stack``) and shared by the integration tests and, hard-linked into their
roots, by the end-to-end platforms, so a test run builds the stack at most once."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from paas.images.layers import LayerStore
from paas.images.stack import StackBuilder
from paas.runtime.runtime import Runtime

STACK_ROOT = Path(os.environ.get("PAAS_TEST_STACK_ROOT", "/tmp/paas-test-stack"))


@contextmanager
def stack_runtime() -> Iterator[Runtime]:
    """A runtime of its own (runc root, containers dir, cgroup parent) over the test stack's
    layers, removed with everything it ran when done. Its containers dir is its own so that
    its clean-up never touches the containers of another test run on the same machine."""
    tag = secrets.token_hex(3)
    runc_root = Path(f"/run/paas-test-{tag}/runc")
    containers = STACK_ROOT / "containers" / tag
    rt = Runtime(runc_root, containers, f"paas-test-{tag}")
    try:
        yield rt
    finally:
        for info in rt.list():
            rt.remove(info.id)
        rt.prune_cgroups()
        shutil.rmtree(runc_root.parent, ignore_errors=True)
        shutil.rmtree(containers, ignore_errors=True)


def ensure_stack(
    runtime: Runtime, name: str = "bookworm", output: Callable[[str], None] | None = None
) -> tuple[str, ...]:
    return StackBuilder(STACK_ROOT / "stacks", LayerStore(STACK_ROOT / "layers"), runtime).ensure(
        name, output
    )


def seed_platform_root(root: Path, name: str = "bookworm") -> None:
    """Give a new platform root the test stack (hard links: layers are never changed)."""
    with stack_runtime() as rt:
        layers = ensure_stack(rt, name)
    (root / "layers").mkdir(parents=True, exist_ok=True)
    (root / "stacks").mkdir(parents=True, exist_ok=True)
    for digest in layers:
        target = root / "layers" / digest
        if not target.exists():
            subprocess.run(["cp", "-a", "--link", str(STACK_ROOT / "layers" / digest),
                            str(target)], check=True, timeout=300)
    shutil.copy2(STACK_ROOT / "stacks" / f"{name}.json", root / "stacks" / f"{name}.json")
