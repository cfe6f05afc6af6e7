"""The null (Procfile) buildpack, the explicit choice of a buildpack, and apps nothing detects,
for real in build containers over the stack. Fixtures as in ``test_build_python.py``; the app
layers these tests make are removed again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paas.build.buildpack import BuildpackBuilder
from paas.errors import BuildFailed
from paas.images.layers import LayerStore
from paas.model import APP_USER
from tests.integration.test_build_python import LIMITS, source_tree

pytestmark = pytest.mark.root

PROCFILE = "web: python3 -m http.server $PORT\n"


@pytest.mark.usefixtures("new_layers")
def test_procfile_app_is_its_code_as_is(
    builder: BuildpackBuilder, layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    source = source_tree(tmp_path, {"Procfile": PROCFILE, "hello.txt": "hi\n"})
    lines: list[str] = []
    result = builder.build("plain", source, stack, {}, tmp_path / "cache", lines.append, LIMITS, 60)
    assert result.buildpack == "Procfile"
    assert result.process_types == {}
    assert lines == [
        "-----> Procfile app detected",
        "-----> Nothing to install: the Procfile's commands run the code as is on the stack",
    ]
    app = layers.path(result.layer) / "app"
    assert sorted(os.listdir(app)) == ["Procfile", "hello.txt"]
    owners = {(os.lstat(p).st_uid, os.lstat(p).st_gid) for p in (app, *app.iterdir())}
    assert owners == {APP_USER}  # the app may write to its own dir


@pytest.mark.usefixtures("new_layers")
@pytest.mark.parametrize(
    ("config", "buildpacks_file", "origin"),
    [
        ({"BUILDPACK": "procfile"}, None, "the BUILDPACK config var"),
        ({}, "# what builds this app\nProcfile\n", ".buildpacks"),
        ({"BUILDPACK": "PROCFILE"}, "python\n", "the BUILDPACK config var"),
    ],
)
def test_a_chosen_buildpack_overrides_detection(
    builder: BuildpackBuilder,
    layers: LayerStore,
    stack: tuple[str, ...],
    tmp_path: Path,
    config: dict[str, str],
    buildpacks_file: str | None,
    origin: str,
) -> None:
    files = {"Procfile": PROCFILE, "requirements.txt": "flask\n"}
    if buildpacks_file is not None:
        files[".buildpacks"] = buildpacks_file
    lines: list[str] = []
    source = source_tree(tmp_path, files)
    result = builder.build("plain", source, stack, config, tmp_path / "c", lines.append, LIMITS, 60)
    assert result.buildpack == "Procfile"
    assert lines[0] == f"-----> Procfile app (buildpack chosen by {origin})"
    assert not (layers.path(result.layer) / "app/.venv").exists()


@pytest.mark.usefixtures("new_layers")
@pytest.mark.parametrize(
    ("files", "config", "message"),
    [
        (
            {"index.html": "<p>hi</p>\n"},
            {"BUILDPACK": "ruby"},
            "Unknown buildpack 'ruby' in the BUILDPACK config var. "
            "Choose one of: python, nodejs, static, procfile.",
        ),
        (
            {"index.html": "<p>hi</p>\n", ".buildpacks": "nodejs\n"},
            {},
            "The Node.js buildpack, chosen by .buildpacks, cannot build this app: "
            "it looks for package.json in the top directory.",
        ),
        (
            {"main.go": "package main\n"},
            {},
            "No buildpack can build this app. The buildpacks look for:\n"
            "  Python: requirements.txt, pyproject.toml or setup.py in the top directory\n"
            "  Node.js: package.json in the top directory\n"
            "  Static: index.html or a public/ directory in the top directory\n"
            "  Procfile: a Procfile",
        ),
    ],
)
def test_an_app_no_buildpack_can_build_is_rejected(
    builder: BuildpackBuilder,
    layers: LayerStore,
    stack: tuple[str, ...],
    tmp_path: Path,
    files: dict[str, str],
    config: dict[str, str],
    message: str,
) -> None:
    before = set(os.listdir(layers.layers_dir))
    source = source_tree(tmp_path, files)
    with pytest.raises(BuildFailed) as failure:
        builder.build("nothing", source, stack, config, tmp_path / "c", print, LIMITS, 60)
    assert message in failure.value.message
    assert set(os.listdir(layers.layers_dir)) == before
