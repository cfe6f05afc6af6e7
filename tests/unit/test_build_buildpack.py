"""The buildpack runner's own logic: release parsing, the build environment, detect order, the
choice of a buildpack and the build containers it asks for. Containers are recorded, not run,
here; the real runs are in tests/integration/test_build_*.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from paas.build.buildpack import (
    CA_BUNDLE_PATH,
    DEFAULT_ORDER,
    BuildpackBuilder,
    build_environment,
    chosen_buildpack,
    host_ca_bundle,
    load_buildpacks,
    parse_release,
)
from paas.errors import BuildFailed, PlatformError
from paas.images.layers import LayerStore
from paas.runtime.runtime import RunTimedOut
from paas.runtime.spec import ContainerSpec, Mount
from paas.settings import Limits

PROJECT = Path(__file__).resolve().parents[2]
LIMITS = Limits(memory_bytes=256 * 1024**2, cpu=1.0, pids=64)
STACK = ("1" * 64, "2" * 64)


# --- bin/release -----------------------------------------------------------------------------


def test_release_block_mapping() -> None:
    text = (
        "---\naddons: []\ndefault_process_types:\n"
        "  web: gunicorn app:app --workers 2\n"
        "  # a comment\n"
        '  worker: "celery -A tasks worker"\n'
        "  clock: 'python clock.py'\n"
        "config_vars:\n  X: y\n"
    )
    assert parse_release(text) == {
        "web": "gunicorn app:app --workers 2",
        "worker": "celery -A tasks worker",
        "clock": "python clock.py",
    }


@pytest.mark.parametrize(
    "text",
    ["---\ndefault_process_types: {}\n", "---\naddons: []\n", "", "default_process_types:\n"],
)
def test_release_without_process_types(text: str) -> None:
    assert parse_release(text) == {}


def test_release_with_invalid_content() -> None:
    with pytest.raises(BuildFailed, match="bin/release"):
        parse_release("default_process_types: {web: x}\n")
    with pytest.raises(BuildFailed, match="process type"):
        parse_release("default_process_types:\n  we/b: x\n")


# --- environment --------------------------------------------------------------------------------


def test_build_environment_passes_proxy_pip_and_ca_settings(tmp_path: Path) -> None:
    ca, conf = tmp_path / "ca.pem", tmp_path / "pip.conf"
    host = {
        "https_proxy": "http://proxy.example:3128",
        "PIP_INDEX_URL": "https://index.example/simple",
        "PIP_FIND_LINKS": "/opt/wheels",
        "SECRET": "x",
    }
    env, mounts = build_environment(host, ca, conf)
    assert env["https_proxy"] == "http://proxy.example:3128"
    assert env["PIP_INDEX_URL"] == "https://index.example/simple"
    assert "PIP_FIND_LINKS" not in env and "SECRET" not in env
    for key in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert env[key] == CA_BUNDLE_PATH
    assert env["PIP_CONFIG_FILE"] == "/etc/pip.conf"
    assert mounts == (Mount(ca, CA_BUNDLE_PATH), Mount(conf, "/etc/pip.conf"))


def test_build_environment_without_ca_or_pip_conf() -> None:
    env, mounts = build_environment({}, None, None)
    assert mounts == ()
    assert "PIP_CERT" not in env and "PIP_CONFIG_FILE" not in env
    assert env["PATH"].startswith("/usr/local/sbin")


def test_host_ca_bundle_prefers_ssl_cert_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert host_ca_bundle({"SSL_CERT_FILE": str(ca)}) == ca
    fallback = host_ca_bundle({"SSL_CERT_FILE": str(tmp_path / "missing")})
    assert fallback == (Path(CA_BUNDLE_PATH) if Path(CA_BUNDLE_PATH).is_file() else None)


# --- buildpacks and detection ------------------------------------------------------------------


def test_the_platforms_buildpacks_are_complete() -> None:
    packs = load_buildpacks(PROJECT / "buildpacks", DEFAULT_ORDER)
    assert [p.name for p in packs] == ["Python", "Node.js", "Static", "Procfile"]
    assert "requirements.txt" in packs[0].detects and "package.json" in packs[1].detects
    for pack in packs:
        for step in ("detect", "compile", "release"):
            script = PROJECT / "buildpacks" / pack.id / "bin" / step
            assert os.access(script, os.X_OK)
            assert "set -euo pipefail" in script.read_text()


def test_a_broken_buildpack_is_a_platform_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlatformError, match="empty"):
        load_buildpacks(tmp_path, ["empty"])


class RecordingRuntime:
    """Answers each step with a canned exit code and output, and keeps the specs."""

    def __init__(self, answers: dict[str, tuple[int, list[str]]]) -> None:
        self.answers = answers
        self.specs: list[ContainerSpec] = []

    def run(self, spec: ContainerSpec, output: Callable[[str], None], timeout: float) -> int:
        self.specs.append(spec)
        pack, step = spec.command[0].split("/")[2], spec.command[0].rsplit("/", 1)[1]
        code, lines = self.answers.get(f"{pack}/{step}", (1, []))
        for line in lines:
            output(line)
        return code

    def steps(self) -> list[str]:
        return ["/".join(s.command[0].split("/")[2:5:2]) for s in self.specs]


def _buildpacks(root: Path, *ids: str) -> Path:
    for pack_id in ids:
        (root / pack_id / "bin").mkdir(parents=True)
        (root / pack_id / "buildpack.toml").write_text(
            f'[buildpack]\nname = "{pack_id.title()}"\ndetects = "{pack_id}.txt"\n'
        )
    return root


def _builder(tmp_path: Path, runtime: RecordingRuntime, order: tuple[str, ...]) -> BuildpackBuilder:
    packs = _buildpacks(tmp_path / "buildpacks", *order)
    return BuildpackBuilder(
        runtime,
        LayerStore(tmp_path / "layers"),
        packs,
        order,
        host_env={"SSL_CERT_FILE": "/nonexistent", "PIP_INDEX_URL": "https://i.example/"},
        pip_conf=tmp_path / "no-pip.conf",
        resolv_conf=Path(__file__),
    )


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / ".git").mkdir(parents=True)
    (source / "app.py").write_text("print('hi')\n")
    return source


def test_first_buildpack_that_detects_builds(tmp_path: Path) -> None:
    runtime = RecordingRuntime(
        {
            "second/detect": (0, ["Second"]),
            "third/detect": (0, ["Third"]),
            "second/compile": (0, ["-----> compiling"]),
            "second/release": (0, ["---", "default_process_types:", "  web: serve"]),
        }
    )
    builder = _builder(tmp_path, runtime, ("first", "second", "third"))
    lines: list[str] = []
    result = builder.build(
        "hello", _source(tmp_path), STACK, {"KEY": "value"}, tmp_path / "cache",
        lines.append, LIMITS, 60,
    )  # fmt: skip
    assert runtime.steps() == ["first/detect", "second/detect", "second/compile", "second/release"]
    assert result.buildpack == "Second"
    assert result.process_types == {"web": "serve"}
    assert lines == ["-----> Second app detected", "-----> compiling",
                     "-----> Default process types: web"]  # fmt: skip
    layer = LayerStore(tmp_path / "layers").path(result.layer)
    assert sorted(os.listdir(layer)) == ["app", "etc"]
    assert os.listdir(layer / "app") == ["app.py"]  # .git is not part of the app
    assert (layer / "etc/passwd").read_text().endswith("app:x:32767:32767:app:/app:/bin/sh\n")
    assert (tmp_path / "cache").is_dir()

    compile_spec = runtime.specs[2]
    assert compile_spec.command == ("/buildpacks/second/bin/compile", "/app", "/cache", "/env")
    assert compile_spec.lowers == tuple(tmp_path / "layers" / d for d in reversed(STACK))
    assert compile_spec.netns is None and compile_spec.upper is None
    assert compile_spec.limits == LIMITS
    assert compile_spec.env["PIP_INDEX_URL"] == "https://i.example/"
    assert "KEY" not in compile_spec.env  # config vars are in ENV_DIR only
    mounts = {m.destination: m for m in compile_spec.mounts}
    assert not mounts["/app"].read_only and not mounts["/cache"].read_only
    assert mounts["/env"].read_only and mounts["/buildpacks"].read_only
    assert mounts["/buildpacks"].source == tmp_path / "buildpacks"
    assert not mounts["/env"].source.exists()  # removed after the build
    assert os.listdir(tmp_path / "layers/.tmp") == []


def test_no_buildpack_detects_the_app(tmp_path: Path) -> None:
    runtime = RecordingRuntime({})
    builder = _builder(tmp_path, runtime, ("first", "second"))
    with pytest.raises(BuildFailed) as failure:
        builder.build("hello", _source(tmp_path), STACK, {}, tmp_path / "c", print, LIMITS, 60)
    assert "First: first.txt" in failure.value.message
    assert "Second: second.txt" in failure.value.message
    assert runtime.steps() == ["first/detect", "second/detect"]
    assert os.listdir(tmp_path / "layers/.tmp") == []


def test_failed_compile_names_the_step_and_the_error_lines(tmp_path: Path) -> None:
    runtime = RecordingRuntime(
        {
            "first/detect": (0, []),
            "first/compile": (1, ["-----> Installing", " !     pip could not install:",
                                  " !     No matching distribution found for nope"]),
        }
    )  # fmt: skip
    builder = _builder(tmp_path, runtime, ("first",))
    lines: list[str] = []
    with pytest.raises(BuildFailed) as failure:
        builder.build(
            "hello", _source(tmp_path), STACK, {}, tmp_path / "c", lines.append, LIMITS, 60
        )
    assert "bin/compile (exit 1)" in failure.value.message
    assert "No matching distribution found for nope" in failure.value.message
    assert lines[-1] == " !     No matching distribution found for nope"
    assert os.listdir(tmp_path / "layers/.tmp") == []


def test_config_vars_are_files_in_env_dir(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    class EnvReader(RecordingRuntime):
        def run(self, spec: ContainerSpec, output: Callable[[str], None], timeout: float) -> int:
            env_dir = next(m.source for m in spec.mounts if m.destination == "/env")
            seen.update({p.name: p.read_text() for p in env_dir.iterdir()})
            return super().run(spec, output, timeout)

    runtime = EnvReader({"first/detect": (0, []), "first/compile": (0, []),
                         "first/release": (0, [])})  # fmt: skip
    builder = _builder(tmp_path, runtime, ("first",))
    config = {"DATABASE_URL": "postgres://x", "EMPTY": ""}
    builder.build("hello", _source(tmp_path), STACK, config, tmp_path / "c", print, LIMITS, 60)
    assert seen == config


def test_a_step_over_the_time_limit_names_the_step(tmp_path: Path) -> None:
    class SlowCompile(RecordingRuntime):
        def run(self, spec: ContainerSpec, output: Callable[[str], None], timeout: float) -> int:
            if spec.command[0].endswith("/compile"):
                assert 0 < timeout <= 60
                raise RunTimedOut("killed")
            return super().run(spec, output, timeout)

    builder = _builder(tmp_path, SlowCompile({"first/detect": (0, [])}), ("first",))
    with pytest.raises(BuildFailed, match=r"limit of 60 s .* bin/compile of the First"):
        builder.build("hello", _source(tmp_path), STACK, {}, tmp_path / "c", print, LIMITS, 60)
    assert os.listdir(tmp_path / "layers/.tmp") == []


def test_no_time_left_stops_before_the_next_step(tmp_path: Path) -> None:
    builder = _builder(tmp_path, RecordingRuntime({}), ("first",))
    with pytest.raises(BuildFailed, match="before bin/detect"):
        builder.build("hello", _source(tmp_path), STACK, {}, tmp_path / "c", print, LIMITS, 0)


# --- choosing a buildpack ------------------------------------------------------------------------


def test_nothing_chosen(tmp_path: Path) -> None:
    assert chosen_buildpack(tmp_path, {"OTHER": "x", "BUILDPACK": "  "}) is None


def test_the_config_var_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / ".buildpacks").write_text("static\n")
    assert chosen_buildpack(tmp_path, {"BUILDPACK": " nodejs "}) == (
        "nodejs",
        "the BUILDPACK config var",
    )
    assert chosen_buildpack(tmp_path, {}) == ("static", ".buildpacks")


def test_the_file_allows_comments_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / ".buildpacks").write_text("# serve the docs\n\n  Static  # as is\n")
    assert chosen_buildpack(tmp_path, {}) == ("Static", ".buildpacks")


@pytest.mark.parametrize("text", ["", "# nothing\n", "python\nnodejs\n"])
def test_the_file_names_exactly_one_buildpack(tmp_path: Path, text: str) -> None:
    (tmp_path / ".buildpacks").write_text(text)
    with pytest.raises(BuildFailed, match="must name exactly one buildpack"):
        chosen_buildpack(tmp_path, {})


def test_the_file_is_not_followed_out_of_the_repository(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/.buildpacks").symlink_to(secret)
    with pytest.raises(BuildFailed, match="regular file") as failure:
        chosen_buildpack(tmp_path / "src", {})
    assert "root" not in failure.value.message


def test_a_chosen_buildpack_is_the_only_one_tried(tmp_path: Path) -> None:
    runtime = RecordingRuntime(
        {"first/detect": (0, []), "second/detect": (0, []), "second/compile": (0, []),
         "second/release": (0, [])}
    )  # fmt: skip
    builder = _builder(tmp_path, runtime, ("first", "second"))
    lines: list[str] = []
    config = {"BUILDPACK": "SECOND"}
    result = builder.build(
        "hello", _source(tmp_path), STACK, config, tmp_path / "c", lines.append, LIMITS, 60
    )
    assert result.buildpack == "Second"
    assert runtime.steps() == ["second/detect", "second/compile", "second/release"]
    assert lines[0] == "-----> Second app (buildpack chosen by the BUILDPACK config var)"


def test_a_chosen_buildpack_must_exist_and_accept_the_app(tmp_path: Path) -> None:
    runtime = RecordingRuntime({})
    builder = _builder(tmp_path, runtime, ("first", "second"))
    source = _source(tmp_path)
    (source / ".buildpacks").write_text("x" * 100 + "\n")
    with pytest.raises(BuildFailed) as failure:
        builder.build("hello", source, STACK, {}, tmp_path / "c", print, LIMITS, 60)
    assert failure.value.message == (
        f"Unknown buildpack '{'x' * 57}...' in .buildpacks. Choose one of: first, second."
    )
    assert runtime.steps() == []
    (source / ".buildpacks").write_text("first\n")
    with pytest.raises(BuildFailed) as failure:
        builder.build("hello", source, STACK, {}, tmp_path / "c", print, LIMITS, 60)
    assert failure.value.message == (
        "The First buildpack, chosen by .buildpacks, cannot build this app: it looks for first.txt."
    )
    assert runtime.steps() == ["first/detect"]
    assert os.listdir(tmp_path / "layers/.tmp") == []
