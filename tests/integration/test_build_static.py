"""The static buildpack for real: built over the stack, then its server run in a container.

The server runs in a network namespace of the test's own that has only loopback; a client in
the same container fetches from it. Fixtures as in ``test_build_python.py``; the app layers,
containers and namespaces these tests make are removed again.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from paas.build.buildpack import BuildpackBuilder
from paas.images.layers import LayerStore
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerSpec
from tests.integration.test_build_python import LIMITS, source_tree

pytestmark = pytest.mark.root

# Started by the container's shell, the server answers a client in the same container.
CLIENT = """
import sys, time, urllib.error, urllib.request
for path in sys.argv[1:]:
    for _ in range(100):
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080" + path, timeout=5) as resp:
                print(path, resp.status, resp.headers["Content-Type"], resp.read().decode().strip())
            break
        except urllib.error.HTTPError as exc:
            print(path, exc.code)
            break
        except OSError:
            time.sleep(0.05)
"""


@pytest.fixture(name="netns")
def netns_fixture() -> Iterator[Path]:
    """A network namespace with only loopback, up."""
    name = f"paas-test-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True, timeout=10)


def _serve_and_fetch(
    runtime: Runtime,
    layers: LayerStore,
    image: tuple[str, ...],
    netns: Path,
    command: str,
    *paths: str,
) -> list[str]:
    """Start ``command`` (the web process) and GET each path from inside its container."""
    script = (
        'for f in /app/.profile.d/*.sh; do . "$f"; done; '
        f"PORT=8080 {command} & "
        f"python3 -c '{CLIENT}' {' '.join(paths)}"
    )
    spec = ContainerSpec(
        id=f"test-{secrets.token_hex(4)}",
        lowers=tuple(layers.path(d) for d in reversed(image)),
        command=("/bin/sh", "-c", script),
        env={"PATH": "/usr/bin:/bin", "HOME": "/app"},
        limits=LIMITS,
        netns=netns,
        cwd="/app",
    )
    lines: list[str] = []
    assert runtime.run(spec, lines.append, timeout=60) == 0, lines
    return [line for line in lines if line.startswith("/")]


SITE = {"index.html": "<p>home</p>\n", "css/site.css": "p {}\n", "notes/todo.txt": "x\n"}
SITE_ANSWERS = {
    "/": "200 text/html <p>home</p>",
    "/css/site.css": "200 text/css p {}",
    "/notes/": "404",  # no listings
    "/.profile.d/static.sh": "404",  # no dot-names
    "/.static/server.py": "404",
}
PUBLIC = {"public/index.html": "<p>public</p>\n", "README": "x\n"}
PUBLIC_ANSWERS = {"/": "200 text/html <p>public</p>", "/README": "404"}


@pytest.mark.usefixtures("new_layers")
@pytest.mark.parametrize(
    ("files", "root", "answers"),
    [(SITE, "/app", SITE_ANSWERS), (PUBLIC, "/app/public", PUBLIC_ANSWERS)],
    ids=["index.html", "public"],
)
def test_site_is_served_without_hidden_files_or_listings(
    builder: BuildpackBuilder,
    runtime: Runtime,
    layers: LayerStore,
    stack: tuple[str, ...],
    netns: Path,
    tmp_path: Path,
    files: dict[str, str],
    root: str,
    answers: dict[str, str],
) -> None:
    source = source_tree(tmp_path, files)
    lines: list[str] = []
    result = builder.build("site", source, stack, {}, tmp_path / "cache", lines.append, LIMITS, 60)
    assert result.buildpack == "Static"
    assert "-----> Static app detected" in lines
    assert f"-----> Serving {root} with a small static HTTP server on $PORT" in lines
    assert result.process_types == {"web": "python3 /app/.static/server.py"}
    profile = layers.path(result.layer) / "app/.profile.d/static.sh"
    assert profile.read_text() == f"export STATIC_ROOT={root}\n"
    image = (*stack, result.layer)
    got = _serve_and_fetch(runtime, layers, image, netns, result.process_types["web"], *answers)
    assert got == [f"{path} {answer}" for path, answer in answers.items()]
