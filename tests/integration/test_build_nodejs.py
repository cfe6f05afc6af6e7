"""The Node.js buildpack for real: npm in runc build containers over the stack.

npm downloads from its registry through the host's CA bundle. Fixtures as in
``test_build_python.py``; the app layers these tests make are removed again.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import pytest

from paas.build.buildpack import BuildpackBuilder
from paas.errors import BuildFailed
from paas.images.layers import LayerStore
from tests.integration.test_build_python import LIMITS, source_tree

pytestmark = pytest.mark.root


def package_json(dependencies: dict[str, str], **fields: object) -> str:
    return json.dumps({"name": "hello", "version": "1.0.0", "dependencies": dependencies, **fields})


@pytest.mark.usefixtures("new_layers")
def test_node_modules_are_a_layer_keyed_by_package_json_and_the_lockfile(
    builder: BuildpackBuilder, layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    source = source_tree(
        tmp_path,
        {
            "package.json": package_json({"ms": "^2.1.3"}, scripts={"start": "node server.js"}),
            "server.js": "console.log(require('ms')(1000));\n",
        },
    )
    cache = tmp_path / "cache"
    lines: list[str] = []
    started = time.monotonic()
    first = builder.build("node", source, stack, {}, cache, lines.append, LIMITS, 300)
    cold = time.monotonic() - started
    assert first.buildpack == "Node.js"
    assert first.process_types == {"web": "npm start"}
    assert "-----> Node.js app detected" in lines
    assert any(line.startswith("-----> Using Node.js 18.") for line in lines), lines
    assert any("with npm install (no package-lock.json" in line for line in lines), lines
    assert first.dependencies is not None
    modules = layers.path(first.dependencies) / "app/node_modules"
    assert (modules / "ms/package.json").is_file(), "in the dependency layer"
    app = layers.path(first.layer) / "app"
    assert not (app / "node_modules").exists() and not (app / "package-lock.json").exists()
    profile = (app / ".profile.d/nodejs.sh").read_text()
    assert "/app/node_modules/.bin" in profile and "NODE_ENV" in profile
    assert not (app / ".npm").exists(), "npm's cache and logs stay out of the app"
    assert (cache / "npm/_cacache").is_dir(), "npm's cache is kept for the next build"

    (source / "server.js").write_text("console.log(require('ms')(2000));\n")
    lines.clear()
    again = builder.build("node", source, stack, {}, cache, lines.append, LIMITS, 300)
    assert again.dependencies == first.dependencies, "a code change reuses node_modules"
    assert not any("npm" in line for line in lines), lines

    # A lockfile (npm's own record of what it installed, plus the root package) changes the
    # key, and the next builds use `npm ci`, from the cache.
    lock = json.loads((modules / ".package-lock.json").read_text())
    lock["packages"][""] = {"name": "hello", "version": "1.0.0",
                            "dependencies": {"ms": "^2.1.3"}}
    (source / "package-lock.json").write_text(json.dumps(lock))
    lines.clear()
    started = time.monotonic()
    locked = builder.build("node", source, stack, {}, cache, lines.append, LIMITS, 300)
    warm = time.monotonic() - started
    assert "-----> Installing dependencies with npm ci (from the lockfile)" in lines, lines
    assert locked.dependencies is not None  # the same files as before: maybe the same layer
    assert (layers.path(locked.dependencies) / "app/node_modules/ms/index.js").is_file()
    lines.clear()
    again = builder.build("node", source, stack, {}, cache, lines.append, LIMITS, 300)
    assert again.dependencies == locked.dependencies
    assert f"-----> Dependencies unchanged, reusing layer sha256:{locked.dependencies}" in lines
    print(f"cold build {cold:.1f} s, warm build {warm:.1f} s")


@pytest.mark.usefixtures("new_layers")
def test_build_script_runs_and_an_app_without_start_has_no_web(
    builder: BuildpackBuilder, layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    scripts = {"build": "node -e \"require('fs').writeFileSync('built.txt', 'yes')\""}
    source = source_tree(tmp_path, {"package.json": package_json({}, scripts=scripts)})
    lines: list[str] = []
    result = builder.build("node", source, stack, {}, tmp_path / "cache", lines.append, LIMITS, 300)
    assert "-----> Running the build script (npm run build)" in lines
    assert (layers.path(result.layer) / "app/built.txt").read_text() == "yes"
    assert result.process_types == {}


@pytest.mark.usefixtures("new_layers")
@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"package.json": package_json({}, engines={"node": ">=99"})},
            "package.json asks for Node.js >=99 (engines.node), but this stack has Node.js 18.",
        ),
        ({"package.json": "{not json"}, "package.json is not valid JSON"),
    ],
)
def test_bad_package_json_fails_before_npm_runs(
    builder: BuildpackBuilder,
    stack: tuple[str, ...],
    tmp_path: Path,
    files: dict[str, str],
    message: str,
) -> None:
    source = source_tree(tmp_path, files)
    lines: list[str] = []
    with pytest.raises(BuildFailed) as failure:
        builder.build("node", source, stack, {}, tmp_path / "c", lines.append, LIMITS, 60)
    assert message in failure.value.message
    assert not any("with npm" in line for line in lines), "it fails before npm runs"


@pytest.mark.usefixtures("new_layers")
def test_missing_package_fails_naming_it(
    builder: BuildpackBuilder, layers: LayerStore, stack: tuple[str, ...], tmp_path: Path
) -> None:
    missing = "paas-no-such-package-" + secrets.token_hex(4)
    source = source_tree(tmp_path, {"package.json": package_json({missing: "1.0.0"})})
    before = set(os.listdir(layers.layers_dir))
    with pytest.raises(BuildFailed) as failure:
        builder.build("node", source, stack, {}, tmp_path / "cache", print, LIMITS, 300)
    assert "npm install failed" in failure.value.message
    assert missing in failure.value.message
    assert set(os.listdir(layers.layers_dir)) == before
