"""The key of an app's dependencies (paas.build.dependencies), the buildpacks' [dependencies]
tables, the index from keys to layers (paas.images.layer_index) and the build options of an
app (paas.build.options): stack, memory, and what an unknown stack tells the user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paas.build.buildpack import DEFAULT_ORDER, load_buildpacks
from paas.build.dependencies import (
    DependencySpec,
    dependency_key,
    manifest_files,
    parse_spec,
)
from paas.build.options import build_options, checked_builder_setting, checked_stack
from paas.errors import BuildFailed, InvalidInput, PlatformError
from paas.images.layer_index import LayerIndex
from paas.images.layers import LayerStore
from paas.settings import Limits, Settings

PROJECT = Path(__file__).resolve().parents[2]
STACK = ("1" * 64, "2" * 64)
PACK = "3" * 64
PYTHON = DependencySpec(
    dir=".venv",
    files=("requirements.txt", "requirements/*.txt", "runtime.txt"),
    fields={"pyproject.toml": ("project.dependencies",)},
    env=("PIP_",),
)
NODE = DependencySpec(
    dir="node_modules",
    files=("package-lock.json",),
    fields={"package.json": ("dependencies", "devDependencies", "scripts.postinstall")},
)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _key(spec: DependencySpec, root: Path, config: dict[str, str] | None = None,
         stack: tuple[str, ...] = STACK, pack: str = PACK) -> str:
    return dependency_key(spec, root, config or {}, stack, pack)


def test_code_does_not_change_the_key_and_the_manifest_does(tmp_path: Path) -> None:
    app = _tree(tmp_path / "a", {"requirements.txt": "flask==3.1.3\n", "app.py": "v1\n"})
    first = _key(PYTHON, app)
    assert len(first) == 64
    (app / "app.py").write_text("v2\n")
    (app / "static.css").write_text("h1 {}\n")
    assert _key(PYTHON, app) == first, "application code is not part of the key"
    (app / "requirements.txt").write_text("flask==3.1.2\n")
    assert _key(PYTHON, app) != first
    (app / "requirements.txt").write_text("flask==3.1.3\n")
    assert _key(PYTHON, app) == first, "the same manifest gives the same key again"


def test_apps_with_equal_manifests_share_a_key(tmp_path: Path) -> None:
    keys = {
        _key(PYTHON, _tree(tmp_path / f"app{i}", {"requirements.txt": "six\n",
                                                 "app.py": f"print({i})\n"}))
        for i in range(5)
    }
    assert len(keys) == 1


def test_stack_buildpack_included_files_and_config_vars_count(tmp_path: Path) -> None:
    app = _tree(tmp_path, {"requirements.txt": "-r requirements/base.txt\n",
                           "requirements/base.txt": "six\n"})
    base = _key(PYTHON, app, {"PORT_X": "1"})
    assert _key(PYTHON, app, stack=("9" * 64,)) != base, "another stack"
    assert _key(PYTHON, app, pack="4" * 64) != base, "another version of the buildpack"
    assert _key(PYTHON, app, {"PIP_INDEX_URL": "https://i.example/"}) != base
    assert _key(PYTHON, app, {"DATABASE_URL": "x"}) == base, "other config vars do not count"
    (app / "requirements/base.txt").write_text("six==1.17.0\n")
    assert _key(PYTHON, app) != base, "an included requirements file is part of the manifest"
    (app / "runtime.txt").write_text("python-3.11\n")
    assert manifest_files(PYTHON, app) == [
        "requirements.txt", "requirements/base.txt", "runtime.txt"]


def test_only_the_named_parts_of_a_structured_manifest_count(tmp_path: Path) -> None:
    package = {"name": "web", "version": "1.0.0", "dependencies": {"ms": "^2.1.3"},
               "scripts": {"start": "node server.js"}}
    app = _tree(tmp_path, {"package.json": json.dumps(package)})
    base = _key(NODE, app)
    for change in ({"version": "1.0.1"}, {"scripts": {"start": "node other.js"}},
                   {"description": "now with a description"}):
        (app / "package.json").write_text(json.dumps({**package, **change}))
        assert _key(NODE, app) == base, change
    for change in ({"dependencies": {"ms": "^2.1.2"}}, {"devDependencies": {"x": "1"}},
                   {"scripts": {"postinstall": "node setup.js"}}):
        (app / "package.json").write_text(json.dumps({**package, **change}))
        assert _key(NODE, app) != base, change
    (app / "package.json").write_text(json.dumps(package))
    (app / "package-lock.json").write_text("{}")
    assert _key(NODE, app) != base, "the lockfile counts whole"


def test_pyproject_dependencies_count_not_the_rest(tmp_path: Path) -> None:
    text = '[project]\nname = "hello"\nversion = "{v}"\ndependencies = ["{d}"]\n'
    app = _tree(tmp_path, {"pyproject.toml": text.format(v="0.1", d="six")})
    base = _key(PYTHON, app)
    (app / "pyproject.toml").write_text(text.format(v="0.2", d="six"))
    assert _key(PYTHON, app) == base
    (app / "pyproject.toml").write_text(text.format(v="0.2", d="six>=1.16"))
    assert _key(PYTHON, app) != base


def test_bad_manifests_fail_the_build_clearly(tmp_path: Path) -> None:
    app = _tree(tmp_path, {"pyproject.toml": "[project\n"})
    with pytest.raises(BuildFailed, match=r"pyproject\.toml is not valid TOML"):
        _key(PYTHON, app)
    (app / "pyproject.toml").unlink()
    (app / "requirements.txt").symlink_to("/etc/passwd")
    with pytest.raises(BuildFailed, match=r"requirements\.txt must be a regular file"):
        _key(PYTHON, app)


def test_the_buildpacks_declare_their_dependencies() -> None:
    packs = {p.id: p for p in load_buildpacks(PROJECT / "buildpacks", DEFAULT_ORDER)}
    python, nodejs = packs["python"].dependencies, packs["nodejs"].dependencies
    assert python is not None and python.dir == ".venv"
    assert "requirements.txt" in python.files and "pyproject.toml" in python.fields
    assert nodejs is not None and nodejs.dir == "node_modules"
    assert "package-lock.json" in nodejs.files and "package.json" in nodejs.fields
    assert packs["static"].dependencies is None and packs["procfile"].dependencies is None


@pytest.mark.parametrize(
    "table",
    [{}, {"dir": "/abs"}, {"dir": "../up"}, {"dir": ".venv", "files": "requirements.txt"},
     {"dir": ".venv", "fields": {"a.toml": "x"}}, {"dir": ".venv", "env": [1]}],
)
def test_bad_dependencies_tables_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(PlatformError, match=r"buildpack\.toml"):
        parse_spec(table, "buildpack.toml")


def test_layer_index_forgets_collected_layers(tmp_path: Path) -> None:
    layers = LayerStore(tmp_path / "layers")
    work = layers.new_dir()
    (work / "f").write_text("x")
    digest = layers.commit(work)
    index = LayerIndex(tmp_path / "index", layers)
    key, other = "a" * 64, "b" * 64
    assert index.find(key) is None
    index.record(key, digest)
    index.record(other, "c" * 64)  # a layer that is not there
    assert index.find(key) == digest
    assert index.find(other) is None
    assert index.prune() == [other]
    layers.remove(digest)
    assert index.prune() == [key]
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == []
    with pytest.raises(PlatformError, match="Invalid layer index key"):
        index.find("../x")


# --- build options ----------------------------------------------------------------------------

SETTINGS = Settings(stack="bookworm",
                    default_limits=Limits(memory_bytes=512 * 1024**2, cpu=1.0, pids=256))


def test_stack_builder_setting_wins_over_config_var_over_default() -> None:
    assert build_options(SETTINGS, {}, {}).stack == "bookworm"
    by_var = build_options(SETTINGS, {}, {"PAAS_STACK": " trixie "})
    assert (by_var.stack, by_var.stack_origin) == ("trixie", "the PAAS_STACK config var")
    own = build_options(SETTINGS, {"stack": "bullseye"}, {"PAAS_STACK": "trixie"})
    assert (own.stack, own.stack_origin) == ("bullseye", "paas builder:set")


def test_build_memory_is_the_apps_or_the_platforms() -> None:
    assert build_options(SETTINGS, {}, {}).limits == SETTINGS.default_limits
    limits = build_options(SETTINGS, {"memory": str(1024**3)}, {}).limits
    assert limits == Limits(memory_bytes=1024**3, cpu=1.0, pids=256)
    assert build_options(SETTINGS, {}, {}).timeout == SETTINGS.build_timeout


def test_unknown_stack_lists_the_stacks() -> None:
    options = build_options(SETTINGS, {}, {"PAAS_STACK": "potato"})
    assert checked_stack(build_options(SETTINGS, {}, {}), {"bookworm"}) == "bookworm"
    with pytest.raises(BuildFailed) as failure:
        checked_stack(options, {"bookworm", "bullseye"})
    message = failure.value.message
    assert "Unknown stack 'potato' (named by the PAAS_STACK config var)" in message
    assert "The stacks on this platform: bookworm, bullseye." in message
    assert "paas stacks:build NAME" in message


def test_builder_settings_are_checked() -> None:
    assert checked_builder_setting("stack", "bullseye") == "bullseye"
    assert checked_builder_setting("memory", "1g") == str(1024**3)
    assert checked_builder_setting("memory", "default") is None
    assert checked_builder_setting("stack", "") is None
    for key, value, message in (
        ("colour", "red", "Unknown builder setting 'colour': use one of stack, memory."),
        ("stack", "Not A Stack", "Invalid stack name"),
        ("memory", "1k", "between 16m and 64g"),
        ("memory", "lots", "Invalid size"),
    ):
        with pytest.raises(InvalidInput, match=message):
            checked_builder_setting(key, value)
