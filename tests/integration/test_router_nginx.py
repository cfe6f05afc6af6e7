"""A real private nginx on a free high port routing by Host to Python backends on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from paas.errors import PlatformError
from paas.router.nginx import NO_APP_MESSAGE, NOT_RUNNING_MESSAGE, Router

pytestmark = pytest.mark.root


class Backend(BaseHTTPRequestHandler):
    """Answers with its own name and the request headers it got, as JSON."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = json.dumps(
            {"backend": self.server.name, "path": self.path, "headers": dict(self.headers)}  # type: ignore[attr-defined]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def backends() -> Iterator[list[str]]:
    servers = []
    for name in ("b1", "b2", "b3"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
        server.name = name  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield [f"127.0.0.1:{s.server_address[1]}" for s in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    router = Router(tmp_path / "nginx", free_port(), "127.0.0.1")
    router.write_main()
    proc = subprocess.Popen(router.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not router.is_running() or get(router, "probe.test")[0] == 0:
            assert proc.poll() is None, (router.nginx_dir / "logs" / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.02)
        yield router
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(router: Router, host: str, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", router.http_port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return 0, ""
    finally:
        conn.close()


def test_routes_by_host_with_forwarding_headers(router: Router, backends: list[str]) -> None:
    assert router.set_app("hello", ["hello.paas.test", "www.hello.test"], backends[:1]) is True
    status, body = get(router, "hello.paas.test", "/x?y=1")
    assert status == 200
    seen = json.loads(body)
    assert seen["backend"] == "b1"
    assert seen["path"] == "/x?y=1"
    headers = seen["headers"]
    assert headers["Host"] == "hello.paas.test"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == "hello.paas.test"
    assert len(headers["X-Request-Id"]) == 32
    assert "Connection" not in headers or headers["Connection"] == ""
    assert json.loads(get(router, "www.hello.test")[1])["backend"] == "b1"


def test_unknown_host_gets_404(router: Router) -> None:
    assert get(router, "nobody.paas.test") == (404, NO_APP_MESSAGE + "\n")


def test_no_upstreams_gets_503(router: Router) -> None:
    router.set_app("idle", ["idle.paas.test"], [])
    assert get(router, "idle.paas.test") == (503, NOT_RUNNING_MESSAGE + "\n")


def test_three_upstreams_share_the_load_and_changes_apply_on_return(
    router: Router, backends: list[str]
) -> None:
    router.set_app("web", ["web.paas.test"], backends)
    seen = {json.loads(get(router, "web.paas.test")[1])["backend"] for _ in range(30)}
    assert seen == {"b1", "b2", "b3"}
    # The call returns only once the new config serves: no request may reach b1 after it.
    assert router.set_app("web", ["web.paas.test"], backends[1:]) is True
    seen = {json.loads(get(router, "web.paas.test")[1])["backend"] for _ in range(30)}
    assert seen == {"b2", "b3"}
    assert router.set_app("web", ["web.paas.test"], backends[1:]) is False
    assert router.apps() == {"web"}
    assert router.remove_app("web") is True
    assert get(router, "web.paas.test")[0] == 404


def test_an_invalid_config_is_undone_and_the_old_one_keeps_serving(
    router: Router, backends: list[str]
) -> None:
    router.set_app("hello", ["hello.paas.test"], backends[:1])
    before = (router.apps_dir / "hello.conf").read_text()
    broken = router.apps_dir / "zz-broken.conf"
    broken.write_text("this is not nginx config;\n")
    try:
        with pytest.raises(PlatformError, match="unknown directive"):
            router.set_app("hello", ["hello.paas.test"], backends[1:2])
        with pytest.raises(PlatformError, match="unknown directive"):
            router.set_app("newapp", ["new.paas.test"], backends[1:2])
    finally:
        broken.unlink()
    assert (router.apps_dir / "hello.conf").read_text() == before
    assert not (router.apps_dir / "newapp.conf").exists()
    status, body = get(router, "hello.paas.test")
    assert status == 200 and json.loads(body)["backend"] == "b1"


def test_reload_time(router: Router, backends: list[str]) -> None:
    times = []
    for i in range(6):
        start = time.monotonic()
        assert router.set_app("timed", ["timed.paas.test"], backends[: 1 + i % 3])
        times.append(time.monotonic() - start)
    times.sort()
    median, worst = times[3] * 1000, times[-1] * 1000
    print(f"set_app with confirmed reload: median {median:.0f} ms, max {worst:.0f} ms")
    assert times[-1] < 2.5
