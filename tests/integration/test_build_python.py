"""Buildpack builds for real: the Python buildpack in runc build containers over the stack.

They download from the package index, through the host's proxy settings and CA bundle.
The stack and its fixtures come from ``test_images_stack.py`` (kept under
``PAAS_TEST_STACK_ROOT``); the app layers these tests make are removed again. The
``builder`` and ``new_layers`` fixtures and ``source_tree`` serve the other
``test_build_*.py`` modules too.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paas.build.buildpack import BuildpackBuilder
from paas.errors import BuildFailed
from paas.images.layer_index import LayerIndex
from paas.images.layers import LayerStore
from paas.runtime.runtime import Runtime
from paas.settings import Limits
from tests.integration.test_images_stack import (  # noqa: F401  (fixtures)
    layers_fixture,
    runtime_fixture,
    stack_fixture,
)

pytestmark = pytest.mark.root

BUILDPACKS = Path(__file__).resolve().parents[2] / "buildpacks"
LIMITS = Limits(memory_bytes=512 * 1024**2, cpu=2.0, pids=256)


@pytest.fixture(name="new_layers")
def new_layers_fixture(layers: LayerStore, stack: tuple[str, ...]) -> Iterator[None]:
    """Remove the layers a test commits (the stack's stay for the next run)."""
    before = set(os.listdir(layers.layers_dir))
    yield
    for name in set(os.listdir(layers.layers_dir)) - before - set(stack):
        shutil.rmtree(layers.layers_dir / name)


@pytest.fixture(name="builder")
def builder_fixture(runtime: Runtime, layers: LayerStore, tmp_path: Path) -> BuildpackBuilder:
    index = LayerIndex(tmp_path / "dependencies", layers)
    return BuildpackBuilder(runtime, layers, BUILDPACKS, dependencies=index)


def source_tree(root: Path, files: dict[str, str]) -> Path:
    """``root/src`` holding ``files`` (relative path: content)."""
    source = root / "src"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    source.mkdir(exist_ok=True)
    return source


def _app(root: Path, requirements: str, **files: str) -> Path:
    return source_tree(root, {"requirements.txt": requirements, **files})


@pytest.mark.usefixtures("new_layers")
def test_python_dependencies_are_a_layer_reused_while_the_requirements_stay(
    builder: BuildpackBuilder, layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    source = _app(tmp_path, "six\n", **{"app.py": "import six\n"})
    cache = tmp_path / "cache"
    lines: list[str] = []
    started = time.monotonic()
    first = builder.build(
        "hello", source, stack, {"GREETING": "hi"}, cache, lines.append, LIMITS, 300
    )
    cold = time.monotonic() - started
    assert first.buildpack == "Python"
    assert first.process_types == {}
    assert "-----> Python app detected" in lines
    assert "-----> Installing dependencies into a layer of their own (/app/.venv)" in lines
    assert "-----> Creating a virtualenv in /app/.venv" in lines
    assert first.dependencies is not None
    assert f"-----> Dependency layer sha256:{first.dependencies}" in lines
    assert first.layers == (first.dependencies, first.layer)
    deps = layers.path(first.dependencies)
    assert sorted(os.listdir(deps)) == ["app"]
    assert sorted(os.listdir(deps / "app")) == [".venv"], "only the venv, no manifest copies"
    assert list((deps / "app/.venv/lib").glob("python3*/site-packages/six.py"))
    layer = layers.path(first.layer)
    assert sorted(os.listdir(layer / "app")) == [".profile.d", "app.py", "requirements.txt"]
    profile = (layer / "app/.profile.d/python.sh").read_text()
    assert "/app/.venv/bin" in profile and "PYTHONUNBUFFERED=1" in profile
    assert (cache / "pip").is_dir(), "pip's cache is kept for the next build"

    (source / "app.py").write_text("import six\nprint('v2')\n")
    lines.clear()
    started = time.monotonic()
    second = builder.build("hello", source, stack, {}, cache, lines.append, LIMITS, 300)
    warm = time.monotonic() - started
    assert f"-----> Dependencies unchanged, reusing layer sha256:{first.dependencies}" in lines
    assert second.dependencies == first.dependencies
    assert not any("pip" in line or "Installing" in line for line in lines), lines
    assert (layers.path(second.layer) / "app/app.py").read_text().endswith("print('v2')\n")
    assert not (layers.path(second.layer) / "app/.venv").exists(), "nothing written there"

    other = _app(tmp_path / "other", "six\n", **{"main.py": "pass\n"})
    shared = builder.build("other", other, stack, {}, tmp_path / "c2", lines.append, LIMITS, 300)
    assert shared.dependencies == first.dependencies, "another app, the same requirements"

    (source / "requirements.txt").write_text("six\nidna\n")
    lines.clear()
    third = builder.build("hello", source, stack, {}, cache, lines.append, LIMITS, 300)
    assert third.dependencies not in (None, first.dependencies)
    assert "-----> Installing the requirements in requirements.txt with pip" in lines
    print(f"cold build {cold:.1f} s, code-only rebuild {warm:.1f} s")


@pytest.mark.usefixtures("new_layers")
def test_missing_requirement_fails_naming_it(
    builder: BuildpackBuilder, layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    missing = "paas-no-such-package-" + secrets.token_hex(4)
    source = _app(tmp_path, f"{missing}==1.0\n")
    lines: list[str] = []
    before = set(os.listdir(layers.layers_dir))
    work_before = set(os.listdir(layers.layers_dir / ".tmp"))  # the store is shared
    with pytest.raises(BuildFailed) as failure:
        builder.build("broken", source, stack, {}, tmp_path / "cache", lines.append, LIMITS, 300)
    assert missing in failure.value.message
    assert "bin/compile" in failure.value.message
    assert any(missing in line for line in lines), "pip's output streams to the caller"
    assert set(os.listdir(layers.layers_dir)) == before
    assert set(os.listdir(layers.layers_dir / ".tmp")) == work_before


PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "hello"
version = "0.1"
dependencies = ["six"]

[tool.setuptools]
packages = ["hello"]
"""


@pytest.mark.usefixtures("new_layers")
def test_pyproject_project_is_installed_with_its_dependencies(
    builder: BuildpackBuilder, layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    source = source_tree(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT,
            "hello/__init__.py": "import six\n\nGREETING = 'hi'\n",
            ".python-version": "3.11\n",
        },
    )
    lines: list[str] = []
    result = builder.build("proj", source, stack, {}, tmp_path / "cache", lines.append, LIMITS, 300)
    assert result.buildpack == "Python"
    assert "-----> .python-version asks for Python 3.11: the stack's 3.11.2 matches" in lines
    assert "-----> Installing the dependencies in pyproject.toml with pip" in lines
    assert "-----> Installing the app (pyproject.toml / setup.py) with pip" in lines
    assert result.dependencies is not None
    deps = layers.path(result.dependencies) / "app/.venv/lib/python3.11/site-packages"
    assert (deps / "six.py").is_file(), "the project's dependency is in the dependency layer"
    assert not list(deps.glob("hello-*")), "the project itself is not"
    site = layers.path(result.layer) / "app/.venv/lib/python3.11/site-packages"
    assert list(site.glob("hello-0.1*.dist-info")), "it is in the app layer, over the venv"
    assert not (site / "six.py").exists()


@pytest.mark.usefixtures("new_layers")
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("runtime.txt", "python-3.12.1\n", "Python 3.12.1, but this stack has Python 3.11."),
        (".python-version", "3.9\n", "Change .python-version to 3.11 or remove it."),
        (".python-version", "pypy3.10\n", "'pypy3.10', which is not a Python version"),
    ],
)
def test_a_python_version_the_stack_lacks_fails_clearly(
    builder: BuildpackBuilder,
    layers: LayerStore,
    stack: tuple[str, ...],
    tmp_path: Path,
    name: str,
    content: str,
    message: str,
) -> None:
    source = _app(tmp_path, "six\n", **{name: content})
    lines: list[str] = []
    before = set(os.listdir(layers.layers_dir))
    with pytest.raises(BuildFailed) as failure:
        builder.build("old", source, stack, {}, tmp_path / "cache", lines.append, LIMITS, 120)
    assert message in failure.value.message
    assert not any("pip" in line for line in lines), "it fails before installing"
    assert set(os.listdir(layers.layers_dir)) == before
