"""End to end: the dependency layer of a Python app across pushes (a code-only push reuses it
and runs no pip install; a requirements change rebuilds it), the app's own stack choice, and
a build over its memory limit. Each failed push is rejected and the release before it keeps
serving. (A requirements.txt naming a package that does not exist: test_push_deploy.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import APP_PY, commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

DIGEST = re.compile(r"sha256:([0-9a-f]{64})")

# A local package whose in-tree build backend needs 512 MB: pip runs it in the build.
HOG_PYPROJECT = """\
[build-system]
requires = []
build-backend = "hog_backend"
backend-path = ["."]
"""
HOG_BACKEND = """\
def get_requires_for_build_wheel(config_settings=None):
    ballast = b"x" * (512 * 1024 * 1024)
    return [str(len(ballast))]
"""


@pytest.fixture
def app(platform: Platform) -> Iterator[str]:
    yield "layers"
    platform.cli("apps:destroy", "layers", "--force")


def _push(platform: Platform, repo: Path, app: str) -> tuple[int, str]:
    pushed = git(repo, "push", http_remote(platform, app), "master", check=False)
    return pushed.returncode, pushed.stderr


def _images_with(platform: Platform, digest: str) -> list[Path]:
    return [p for p in (platform.root / "images").glob("*.json")
            if digest in json.loads(p.read_text())["layers"]]


def _digest_after(text: str, marker: str) -> str:
    line = next(line for line in text.splitlines() if marker in line)
    found = DIGEST.search(line)
    assert found, line
    return found.group(1)


def test_code_only_push_reuses_the_dependency_layer(
    platform: Platform, app: str, tmp_path: Path
) -> None:
    assert platform.cli("apps:create", app).returncode == 0
    repo = make_app(tmp_path / app, "one")
    code, out = _push(platform, repo, app)
    assert code == 0 and "Released v1" in out, out
    deps = _digest_after(out, "-----> Dependency layer sha256:")
    assert "remote:        Collecting flask" in out, out
    assert platform.get(f"{app}.paas.test") == (200, f"one from {app}\n")
    assert _images_with(platform, deps)

    (repo / "app.py").write_text(APP_PY.replace("{greeting}", "two"))
    commit(repo, "code only")
    code, out = _push(platform, repo, app)
    assert code == 0 and "Released v2" in out, out
    assert f"remote: -----> Dependencies unchanged, reusing layer sha256:{deps}" in out, out
    assert "pip" not in out and "Collecting" not in out, out
    assert platform.get(f"{app}.paas.test") == (200, f"two from {app}\n")
    newest = max((platform.root / "images").glob("*.json"), key=lambda p: p.stat().st_mtime)
    assert deps in json.loads(newest.read_text())["layers"], "the release image has that layer"

    (repo / "requirements.txt").write_text("flask\ngunicorn\nsix\n")
    commit(repo, "a new requirement")
    code, out = _push(platform, repo, app)
    assert code == 0 and "Released v3" in out, out
    assert "remote: -----> Installing dependencies into a layer of their own" in out, out
    assert "Collecting six" in out, out
    assert _digest_after(out, "-----> Dependency layer sha256:") != deps
    assert platform.get(f"{app}.paas.test") == (200, f"two from {app}\n")


def test_unknown_stack_and_out_of_memory_fail_the_push_and_the_old_release_serves(
    platform: Platform, app: str, tmp_path: Path
) -> None:
    assert platform.cli("apps:create", app).returncode == 0
    repo = make_app(tmp_path / app, "first")
    code, out = _push(platform, repo, app)
    assert code == 0 and "Released v1" in out, out

    refused = platform.cli("builder:set", app, "stack", "potato")
    assert refused.returncode == 2, refused
    assert "No stack 'potato' on this platform; the stacks: bookworm." in refused.stderr
    # The config var is only read by the build: a push names the stacks there.
    assert platform.cli("config:set", app, "PAAS_STACK=potato").returncode == 0
    (repo / "app.py").write_text(APP_PY.replace("{greeting}", "second"))
    commit(repo, "on another stack")
    code, out = _push(platform, repo, app)
    assert code != 0 and "pre-receive hook declined" in out, out
    assert "Unknown stack 'potato' (named by the PAAS_STACK config var)" in out, out
    assert "The stacks on this platform: bookworm." in out, out
    assert platform.get(f"{app}.paas.test") == (200, f"first from {app}\n")
    assert platform.cli("config:unset", app, "PAAS_STACK").returncode == 0

    assert platform.cli("builder:set", app, "memory", "256m").returncode == 0
    (repo / "hog").mkdir()
    (repo / "hog/pyproject.toml").write_text(HOG_PYPROJECT)
    (repo / "hog/hog_backend.py").write_text(HOG_BACKEND)
    (repo / "requirements.txt").write_text("flask\ngunicorn\n./hog\n")
    commit(repo, "a package that needs 512 MB to build")
    code, out = _push(platform, repo, app)
    assert code != 0 and "pre-receive hook declined" in out, out
    assert "the build ran out of memory (limit 256M); raise it with " \
           f"paas builder:set {app} memory SIZE" in out, out
    assert platform.get(f"{app}.paas.test") == (200, f"first from {app}\n")
    releases = platform.cli("releases", app, "--json")
    assert [r["version"] for r in json.loads(releases.stdout)["releases"]] == [3, 2, 1]
