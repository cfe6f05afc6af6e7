"""An image built from a Dockerfile over the bookworm stack, exported as an OCI archive and
read back by Debian's ``skopeo`` (inspect, and a copy that checks every digest) and
``umoci`` (unpack, which applies the layers and their whiteouts in order).

The stack and its fixtures come from ``test_images_stack.py``. The image is built and
exported once for the module; its layers, the archive and the unpacked bundles are removed
again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from paas.build.docker_builder import DockerBuild, DockerfileBuilder
from paas.images.layers import LayerStore
from paas.images.oci import OciExport, OciImage, export_oci
from paas.images.stack import StackBuilder
from paas.images.store import ImageStore
from paas.runtime.runtime import Runtime
from paas.settings import Limits
from tests.integration.test_docker_builder import private_store
from tests.integration.test_images_stack import (  # noqa: F401  (fixtures)
    layers_fixture,
    runtime_fixture,
    stack_fixture,
)
from tests.stack_cache import STACK_ROOT

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("tools")]

LIMITS = Limits(memory_bytes=512 * 1024**2, cpu=2.0, pids=256)
TOOL_TIMEOUT = 300
DOCKERFILE = """\
FROM bookworm
RUN useradd --uid 1000 app
RUN rm /etc/motd && rm -r /usr/share/doc && mkdir /usr/share/doc && echo new > /usr/share/doc/only
WORKDIR /srv/app
COPY --chown=app app.py ./
ENV GREETING=hi
USER app
LABEL org.example.title=demo
EXPOSE 8080
ENTRYPOINT ["python3"]
CMD ["app.py"]
"""


@pytest.fixture(name="tools")
def tools_fixture() -> None:
    missing = [tool for tool in ("skopeo", "umoci") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (Debian packages; scripts/setup.sh)")


@dataclass(frozen=True)
class Exported:
    build: DockerBuild
    archive: Path
    result: OciExport


@pytest.fixture(name="exported", scope="module")
def exported_fixture(
    runtime: Runtime,
    layers: LayerStore,
    stack: tuple[str, ...],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Exported]:
    work = tmp_path_factory.mktemp("oci")
    try:
        store = private_store(work, layers, stack)
        source = work / "src"
        source.mkdir()
        (source / "Dockerfile").write_text(DOCKERFILE)
        (source / "app.py").write_text("print('hello')\n")
        stacks = StackBuilder(STACK_ROOT / "stacks", store, runtime)
        cache = work / "cache"
        builder = DockerfileBuilder(runtime, store, stacks, ImageStore(work / "images"), cache)
        build = builder.build("demo", source, {}, print, LIMITS, 300)
        archive = work / "demo.tar"
        result = export_oci(_image(build), store, archive, ref="v1")
        yield Exported(build, archive, result)
    finally:
        shutil.rmtree(work)


@pytest.fixture(name="work")
def work_fixture(tmp_path: Path) -> Iterator[Path]:
    """A dir for what is unpacked from the archive, removed after the test."""
    work = tmp_path / "oci"
    work.mkdir()
    yield work
    shutil.rmtree(work)


def _tool(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _image(build: DockerBuild) -> OciImage:
    return OciImage(
        layers=build.layers,
        env=build.env,
        workdir=build.workdir,
        user=build.user,
        command=build.command,
        entrypoint=build.entrypoint,
        exposed_port=build.exposed_port,
        labels=build.labels,
    )


def test_skopeo_reads_an_exported_image(exported: Exported, work: Path) -> None:
    archive, result = exported.archive, exported.result
    inspect: dict[str, Any] = json.loads(_tool("skopeo", "inspect", f"oci-archive:{archive}"))
    assert inspect["Digest"] == result.manifest_digest
    assert len(inspect["Layers"]) == len(exported.build.layers) == 5
    assert inspect["Labels"] == {"org.example.title": "demo"}
    assert "GREETING=hi" in inspect["Env"]
    config = json.loads(_tool("skopeo", "inspect", "--config", f"oci-archive:{archive}"))
    assert config["rootfs"]["diff_ids"] == list(result.diff_ids)
    assert {k: config["config"][k] for k in ("Cmd", "Entrypoint", "User", "WorkingDir")} == {
        "Cmd": ["app.py"], "Entrypoint": ["python3"], "User": "app", "WorkingDir": "/srv/app"
    }  # fmt: skip
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    # a copy checks every blob against its digest
    _tool("skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"oci:{work / 'copy'}:v1")
    assert (work / "copy/index.json").is_file()


def test_umoci_unpacks_an_exported_image_with_its_whiteouts(exported: Exported, work: Path) -> None:
    layout = work / "layout"
    with tarfile.open(exported.archive) as tar:
        tar.extractall(layout)
    bundle = work / "bundle"
    _tool("umoci", "unpack", "--image", f"{layout}:v1", str(bundle))
    rootfs = bundle / "rootfs"
    assert not os.path.lexists(rootfs / "etc/motd"), "a whiteout removes the stack's file"
    assert os.listdir(rootfs / "usr/share/doc") == ["only"], "an opaque dir hides the stack's"
    assert not [p for p in rootfs.rglob(".wh.*")]
    assert (rootfs / "usr/bin/python3").exists()
    assert (rootfs / "srv/app/app.py").read_text() == "print('hello')\n"
    assert (rootfs / "srv/app/app.py").stat().st_uid == 1000
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["args"] == ["python3", "app.py"]
    assert process["cwd"] == "/srv/app"
    assert "GREETING=hi" in process["env"]
