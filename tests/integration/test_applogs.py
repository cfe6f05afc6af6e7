"""The merged log view and build logs on a real Redis (a private redis-server on a Unix socket,
configured as the platform configures its embedded one), through the API blueprint, and a
followed log served by gunicorn's gthread worker that lets go once its client is gone."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from flask import Flask

from paas.applogs import AppLogs, LogLine, ProcessFilter
from paas.buildlogs import BuildLogs
from paas.errors import NotFound
from paas.model import Release
from paas.platform import render_redis_conf
from paas.settings import Settings
from paas.state.events import Events
from paas.state.logstream import STREAM_TTL, LogStreams
from paas.state.store import Store
from paas.web.api import register_errors
from paas.web.api_logs import api_logs
from tests.unit.test_applogs import FakeContainers, texts, write

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redis_settings() -> Iterator[Settings]:
    """A redis-server of its own, stopped by its PID at the end."""
    root = Path(tempfile.mkdtemp(prefix="paas-logs-"))  # short: a socket path has a limit
    settings = Settings.from_env({"PAAS_ROOT": str(root)})
    settings.run_dir.mkdir()
    settings.redis_dir.mkdir()
    conf = settings.redis_dir / "redis.conf"
    conf.write_text(render_redis_conf(settings))
    proc = subprocess.Popen(
        ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        client = redis.Redis.from_url(settings.effective_redis_url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield settings
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Parts:
    ns: str
    client: redis.Redis
    store: Store
    events: Events
    streams: LogStreams
    containers: FakeContainers
    applogs: AppLogs
    builds: BuildLogs


@pytest.fixture
def parts(redis_settings: Settings, tmp_path: Path) -> Iterator[Parts]:
    client = redis.Redis.from_url(redis_settings.effective_redis_url)
    ns = secrets.token_hex(4)  # a namespace per test
    store, events, streams = Store(client, ns), Events(client, ns), LogStreams(client, ns)
    containers = FakeContainers(tmp_path)
    applogs = AppLogs(store, events, containers, poll=0.05, rescan=0.05)
    store.create_app("hello")
    yield Parts(ns, client, store, events, streams, containers, applogs, BuildLogs(store, streams))
    client.close()


def open_fds_to(path: Path, pid: int | str = "self") -> int:
    fd_dir = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(fd) in (str(path), f"{path} (deleted)")
    return count


# --- the merged view ----------------------------------------------------------------------------


def test_recent_merges_output_and_events_in_time_order(parts: Parts) -> None:
    now = time.time()
    web = parts.containers.add("c1", "hello", "web.1", started=now - 1)
    parts.events.emit("hello", "web.1", "starting")
    write(web, "booted\nserved /\n", mtime=now + 1)
    parts.events.emit("hello", "deploy", "v1 by alice")
    worker = parts.containers.add("c2", "hello", "worker.1", started=now - 1)
    write(worker, "working\n", mtime=now - 0.5)

    lines = parts.applogs.recent("hello", 100, ProcessFilter())
    assert texts(lines) == [
        "app[worker.1]: working", "app[web.1]: booted", "paas[web.1]: starting",
        "paas[deploy]: v1 by alice", "app[web.1]: served /",
    ]  # fmt: skip
    # (events' times are exact; "booted" is estimated at 7/16 of web.1's 2 s: now - 0.125)
    assert texts(parts.applogs.recent("hello", 2, ProcessFilter("web"))) == [
        "paas[web.1]: starting", "app[web.1]: served /"
    ]  # fmt: skip
    assert texts(parts.applogs.recent("hello", 1, ProcessFilter("worker.1"))) == [
        "app[worker.1]: working"
    ]
    with pytest.raises(NotFound):
        parts.applogs.recent("nosuch", 10, ProcessFilter())


def test_events_recent_filters_across_pages_and_stops_at_an_id(parts: Parts) -> None:
    for i in range(1200):
        parts.events.emit("hello", "web.1" if i % 3 == 0 else "deploy", str(i))
    last = parts.events.last_id("hello")
    parts.events.emit("hello", "web.1", "after")
    got = parts.events.recent("hello", 300, lambda s: s == "web.1", until=last)
    assert [e.text for e in got] == [str(i) for i in range(1200) if i % 3 == 0][-300:]
    assert parts.events.recent("hello", 0) == []
    assert parts.events.last_id("nosuch") == "0-0"


def test_follow_streams_new_lines_events_and_replicas_then_lets_go(parts: Parts) -> None:
    web = parts.containers.add("c1", "hello", "web.1", started=time.time())
    write(web, "old 1\nold 2\nhalf")
    parts.events.emit("hello", "web.1", "up")
    follow = parts.applogs.follow("hello", 2, ProcessFilter())
    assert texts(next(follow)) == ["app[web.1]: old 2", "paas[web.1]: up"]

    parts.events.emit("hello", "scale", "web=2 by alice")
    write(web, " done\n")
    second = parts.containers.add("c2", "hello", "web.2", started=time.time())
    write(second, "hello from 2\n")
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < deadline:
        seen += texts(next(follow))
    assert seen == ["paas[scale]: web=2 by alice", "app[web.1]: half done",
                    "app[web.2]: hello from 2"]  # fmt: skip
    assert open_fds_to(web) == 1
    follow.close()
    assert open_fds_to(web) == 0 and open_fds_to(second) == 0

    with pytest.raises(NotFound):  # at once, not at the first batch
        parts.applogs.follow("nosuch", 10, ProcessFilter())


# --- build logs ---------------------------------------------------------------------------------


def test_builds_newest_first_and_their_output_by_release_or_id(parts: Parts) -> None:
    store, streams = parts.store, parts.streams
    first = store.new_build("hello", "a" * 40)
    streams.append(first.id, "-----> Building hello")
    streams.finish(first.id, True, "Released v1: http://hello.paas.test/", keep=True)
    store.save_build(replace(first, status="succeeded", release=1))
    v1 = Release("hello", 1, "img1", {}, {"web": "x"}, "a" * 40, "Deploy", 1.0, "alice")
    store.add_release(v1)
    store.add_release(replace(v1, version=2, description="Set X", config={"X": "1"}))
    failed = store.new_build("hello", "b" * 40)
    streams.append(failed.id, "-----> Building hello")
    streams.finish(failed.id, False, "pip failed")

    assert [b.id for b in parts.builds.builds("hello")] == [failed.id, first.id]
    out = parts.builds.build_output("hello", "v1")
    assert out.build.id == first.id and not out.expired
    assert parts.builds.build_output("hello", "v2").build.id == first.id  # the same image
    assert out.lines == ("-----> Building hello", "Released v1: http://hello.paas.test/")
    assert parts.builds.build_output("hello", failed.id).lines[-1] == "pip failed"

    key = f"paas:{parts.ns}:log"
    assert parts.client.ttl(f"{key}:{first.id}") == -1  # a release's build log is kept
    assert 0 < parts.client.ttl(f"{key}:{failed.id}") <= STREAM_TTL
    streams.delete(failed.id)
    assert parts.builds.build_output("hello", failed.id).expired

    store.create_app("other")
    other = store.new_build("other", "c" * 40)
    for app, ref in (("hello", "v3"), ("hello", other.id), ("hello", "nosuch"), ("nope", "v1")):
        with pytest.raises(NotFound):
            parts.builds.build_output(app, ref)


# --- through the API blueprint ------------------------------------------------------------------


@dataclass
class LogsHost:
    """The part of ``paas.host.Host`` the log routes use, in this process."""

    applogs: AppLogs

    def recent_logs(self, app: str, lines: int, process: ProcessFilter) -> list[LogLine]:
        return self.applogs.recent(app, lines, process)

    def follow_logs(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        return self.applogs.follow(app, lines, process)


def flask_app(applogs: AppLogs, streams: LogStreams) -> Flask:
    app = Flask(__name__)
    app.extensions["paas.host"] = LogsHost(applogs)
    app.extensions["paas.services"] = SimpleNamespace(store=applogs.store, logs=streams)
    app.register_blueprint(api_logs, url_prefix="/api/v1")
    register_errors(app)
    return app


def test_api_logs_json_and_event_stream(parts: Parts) -> None:
    web = parts.containers.add("c1", "hello", "web.1", started=time.time())
    write(web, "one\ntwo\n")
    client = flask_app(parts.applogs, parts.streams).test_client()

    got = client.get("/api/v1/apps/hello/logs?lines=1")
    assert got.status_code == 200 and got.json == {"lines": ["app[web.1]: two"]}
    assert client.get("/api/v1/apps/hello/logs?process=worker").json == {"lines": []}
    for bad in ("lines=0", "lines=x", "lines=10001", "process=web.x"):
        answer = client.get(f"/api/v1/apps/hello/logs?{bad}")
        assert answer.status_code == 400 and answer.json["error"] == "invalid", bad
    assert client.get("/api/v1/apps/nosuch/logs").status_code == 404
    assert client.get("/api/v1/apps/nosuch/logs?follow=1").status_code == 404

    stream = client.get("/api/v1/apps/hello/logs?follow=1&lines=1", buffered=False)
    assert stream.mimetype == "text/event-stream"
    chunks = stream.response
    assert next(chunks) == b"data: app[web.1]: two\n\n"
    write(web, "three\n")
    received = b""
    while b"three" not in received:
        received += next(chunks)
    assert received.endswith(b"data: app[web.1]: three\n\n")
    stream.close()
    assert open_fds_to(web) == 0


def test_api_builds(parts: Parts) -> None:
    build = parts.store.new_build("hello", "d" * 40)
    parts.streams.append(build.id, "-----> Building hello")
    client = flask_app(parts.applogs, parts.streams).test_client()
    listed = client.get("/api/v1/apps/hello/builds").json
    assert listed == {"builds": [{
        "id": build.id, "rev": "d" * 40, "status": "queued", "release": None,
        "created_at": build.created_at, "message": "", "actor": "git",
    }]}  # fmt: skip
    output = client.get(f"/api/v1/apps/hello/builds/{build.id}/output").json
    assert output["lines"] == ["-----> Building hello"] and output["status"] == "queued"
    assert client.get("/api/v1/apps/hello/builds/v9/output").status_code == 404


# --- a client that goes away --------------------------------------------------------------------

WSGI = """
import redis
from paas.applogs import AppLogs
from paas.state.events import Events
from paas.state.logstream import LogStreams
from paas.state.store import Store
from paas.web import api_logs
from tests.integration.test_applogs import flask_app
from tests.unit.test_applogs import FakeContainers

api_logs.HEARTBEAT = 0.2
client = redis.Redis.from_url({url!r})
containers = FakeContainers(__import__("pathlib").Path({root!r}))
containers.add("c1", "hello", "web.1", started=1.0)
app = flask_app(AppLogs(Store(client, {ns!r}), Events(client, {ns!r}), containers, poll=0.05,
                        rescan=0.05), LogStreams(client, {ns!r}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gthread_worker_lets_go_of_a_follow_whose_client_left(
    parts: Parts, redis_settings: Settings, tmp_path: Path
) -> None:
    wsgi_dir = tmp_path / "wsgi"
    wsgi_dir.mkdir()
    (wsgi_dir / "logs_wsgi.py").write_text(textwrap.dedent(WSGI).format(
        url=redis_settings.effective_redis_url, root=str(tmp_path), ns=parts.ns))  # fmt: skip
    port = _free_port()
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-k", "gthread", "--threads", "2", "-w", "1",
         "--timeout", "0", "--no-control-socket", "-b", f"127.0.0.1:{port}",
         "--pythonpath", f"{wsgi_dir},{REPO}", "logs_wsgi:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = parts.containers.log_path("c1")
    try:
        conn = _connect(port, time.monotonic() + 30)
        conn.sendall(b"GET /api/v1/apps/hello/logs?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in conn.recv(4096)
        workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert sum(open_fds_to(log, pid) for pid in workers) == 1  # the follow holds the file
        conn.close()
        deadline = time.monotonic() + 10
        while sum(open_fds_to(log, pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sum(open_fds_to(log, pid) for pid in workers) == 0
    finally:
        server.terminate()
        server.wait(timeout=30)


def _connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
