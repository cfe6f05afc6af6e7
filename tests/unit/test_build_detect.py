"""The platform's buildpack scripts that need no stack, run with the host's bash: which
buildpack the detection order picks for an app, and the Python buildpack's check of the
version that runtime.txt or .python-version asks for (with a stand-in python3 that reports
the stack's version). The builds themselves are in tests/integration/test_build_*.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from paas.build.buildpack import DEFAULT_ORDER

BUILDPACKS = Path(__file__).resolve().parents[2] / "buildpacks"


def _tree(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n")
    return root


def _detected(app: Path) -> str | None:
    """What the first buildpack in the detection order whose bin/detect accepts ``app`` says."""
    for pack in DEFAULT_ORDER:
        detect = subprocess.run(
            [BUILDPACKS / pack / "bin/detect", app],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if detect.returncode == 0:
            return detect.stdout.strip()
    return None


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (("requirements.txt",), "Python"),
        (("pyproject.toml", "README.md"), "Python"),
        (("setup.py",), "Python"),
        (("requirements.txt", "package.json", "index.html", "Procfile"), "Python"),
        (("package.json",), "Node.js"),
        (("package.json", "index.html", "Procfile"), "Node.js"),
        (("index.html",), "Static"),
        (("public/",), "Static"),
        (("index.html", "Procfile"), "Static"),
        (("Procfile", "app.sh"), "Procfile"),
        (("main.go",), None),
        (("src/requirements.txt", "web/package.json", "docs/index.html"), None),
        (("requirements.txt/",), None),
    ],
)
def test_detection_order(tmp_path: Path, files: tuple[str, ...], expected: str | None) -> None:
    assert _detected(_tree(tmp_path / "app", files)) == expected


def _python_compile(tmp_path: Path, name: str, content: str) -> subprocess.CompletedProcess[str]:
    """bin/compile of the Python buildpack over a stack whose python3 is 3.11.2 and makes no
    venv: the version check passes or fails before anything is installed."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    python = fake_bin / "python3"
    python.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.11.2" || exit 97\n')
    python.chmod(0o755)
    app = _tree(tmp_path / "app", ("requirements.txt",))
    (app / name).write_text(content)
    return subprocess.run(
        [BUILDPACKS / "python/bin/compile", app, tmp_path / "cache", tmp_path / "env"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("name", "content", "wanted"),
    [
        ("runtime.txt", "python-3.11.2\n", "3.11.2"),
        ("runtime.txt", "python-3.11", "3.11"),
        (".python-version", "3.11\n", "3.11"),
        (".python-version", "# pyenv\n3\n", "3"),
        (".python-version", "python3.11\n", "3.11"),
    ],
)
def test_a_version_the_stack_has_is_accepted(
    tmp_path: Path, name: str, content: str, wanted: str
) -> None:
    result = _python_compile(tmp_path, name, content)
    assert f"-----> {name} asks for Python {wanted}: the stack's 3.11.2 matches" in result.stdout
    assert "-----> Creating a virtualenv in /app/.venv" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("name", "content", "errors"),
    [
        (
            "runtime.txt",
            "python-3.12.1\n",
            [
                "runtime.txt asks for Python 3.12.1, but this stack has Python 3.11.2 only.",
                "Change runtime.txt to 3.11 or remove it.",
            ],
        ),
        (
            ".python-version",
            "3.1\n",
            [
                ".python-version asks for Python 3.1, but this stack has Python 3.11.2 only.",
                "Change .python-version to 3.11 or remove it.",
            ],
        ),
        (
            ".python-version",
            "",
            [
                ".python-version asks for '', which is not a Python version.",
                "Write a version such as 3.11 (this stack has Python 3.11.2).",
            ],
        ),
        (
            "runtime.txt",
            "pypy3.10-7.3\n",
            [
                "runtime.txt asks for 'pypy3.10-7.3', which is not a Python version.",
                "Write a version such as 3.11 (this stack has Python 3.11.2).",
            ],
        ),
    ],
)
def test_a_version_the_stack_lacks_fails_clearly(
    tmp_path: Path, name: str, content: str, errors: list[str]
) -> None:
    result = _python_compile(tmp_path, name, content)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-len(errors) :] == [f" !     {e}" for e in errors]
    assert "virtualenv" not in result.stdout
