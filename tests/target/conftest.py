"""Fixtures of the installer tests: one golden image and proxy per run, targets per module.

Set ``PAAS_TARGET_IMAGE`` to a directory to keep the golden image there between runs (it is
rebuilt when build-image.sh changes); by default it is built in the run's temporary dir.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.target.target import HERE, Target, TargetRun, missing_requirements

_names = itertools.count(1)


@pytest.fixture(scope="session")
def target_run() -> Iterator[TargetRun]:
    why = missing_requirements()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    work = Path(tempfile.mkdtemp(prefix="paas-target-"))
    run = TargetRun(work)
    try:
        _golden_image(run)
        run.proxy_up()
        yield run
    finally:
        run.proxy_down()
        shutil.rmtree(work, ignore_errors=True)


def _golden_image(run: TargetRun) -> None:
    keep = os.environ.get("PAAS_TARGET_IMAGE")
    if not keep:
        run.build_image()
        return
    cache = Path(keep)
    stamp = hashlib.sha256((HERE / "build-image.sh").read_bytes()).hexdigest()
    if (cache / "stamp").is_file() and (cache / "stamp").read_text() == stamp:
        for name in ("image", "id_ed25519", "id_ed25519.pub"):
            os.symlink(cache / name, run.work / name)
        return
    run.build_image()
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    for name in ("image", "id_ed25519", "id_ed25519.pub"):
        shutil.move(run.work / name, cache / name)
        os.symlink(cache / name, run.work / name)
    (cache / "stamp").write_text(stamp)


@pytest.fixture(scope="module")
def target(target_run: TargetRun) -> Iterator[Target]:
    """A freshly booted target, shared by the tests of one module (in their order)."""
    name = f"t{os.getpid() % 10000}x{next(_names)}"
    try:
        yield target_run.start(name)
    finally:
        target_run.stop(name)
