"""The merged log view without Redis: process filters, reading the tails of replicas' output
files (estimated times, lines still being written, replicas that come and go), the
server-sent events of a follow, and the ``logs``/``builds`` commands against a fake API."""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from paas.applogs import MAX_LINE, LogLine, ProcessFilter, _tail_lines, _Tails
from paas.cli.base import Session
from paas.cli.client import ApiClient, Endpoint
from paas.cli.logs import sse_data
from paas.cli.main import run
from paas.errors import InvalidInput, NotFound
from paas.runtime.spec import ContainerInfo
from paas.web.api_logs import event_stream


@dataclass
class FakeContainers:
    """Containers whose output files are in ``root``: ``add`` one, ``drop`` it."""

    root: Path
    infos: dict[str, ContainerInfo] = field(default_factory=dict)

    def add(self, cid: str, app: str, dyno: str, started: float | None = None) -> Path:
        ptype, index = dyno.split(".")
        labels = {"app": app, "process_type": ptype, "index": index, "release": "1"}
        self.infos[cid] = ContainerInfo(cid, labels, "running", 1, started)
        path = self.log_path(cid)
        path.touch()
        return path

    def drop(self, cid: str) -> None:
        del self.infos[cid]
        self.log_path(cid).unlink()

    def list(self) -> list[ContainerInfo]:
        return list(self.infos.values())

    def log_path(self, container_id: str) -> Path:
        return self.root / f"{container_id}.log"


def write(path: Path, text: str, mtime: float | None = None) -> None:
    with path.open("a") as f:
        f.write(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def texts(lines: list[LogLine]) -> list[str]:
    return [line.line for line in lines]


# --- process filter -----------------------------------------------------------------------------


def test_process_filter_by_type_or_replica() -> None:
    assert ProcessFilter.parse(None).matches("deploy")
    web = ProcessFilter.parse("web")
    assert web.matches("web.1") and web.matches("web.12") and web.matches("web")
    assert not web.matches("worker.1") and not web.matches("webby.1")
    assert not web.matches("deploy")
    one = ProcessFilter.parse("web.2")
    assert one.matches("web.2") and not one.matches("web.1") and not one.matches("web.22")
    for bad in ("web.x", "a b", "web.", "x" * 40):
        with pytest.raises(InvalidInput):
            ProcessFilter.parse(bad)


# --- tails of files -----------------------------------------------------------------------------


def test_tail_lines_with_offsets(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo\nthree\npartial")
    with path.open("rb") as f:
        size = path.stat().st_size
        assert _tail_lines(f, size, 2) == [(14, b"three\n"), (21, b"partial")]
        assert _tail_lines(f, 14, 5) == [(4, b"one\n"), (8, b"two\n"), (14, b"three\n")]
        assert _tail_lines(f, size, 0) == []
        assert _tail_lines(f, 0, 3) == []


def test_tail_lines_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "log"
    lines = [f"line {i} " + "x" * 300 for i in range(1000)]
    path.write_text("".join(f"{line}\n" for line in lines))
    with path.open("rb") as f:
        got = _tail_lines(f, path.stat().st_size, 400)
    assert [raw.decode().rstrip("\n") for _, raw in got] == lines[-400:]
    assert got[-1][0] == path.stat().st_size


def test_history_interleaves_replicas_by_estimated_time(tmp_path: Path) -> None:
    containers = FakeContainers(tmp_path)
    one = containers.add("a", "hello", "web.1", started=1000.0)
    two = containers.add("b", "hello", "web.2", started=1000.0)
    write(one, "a1\na2\na3\na4\n", mtime=1040.0)  # steady from 1000 to 1040
    write(two, "b1\n", mtime=1015.0)
    containers.add("c", "other", "web.1", started=1000.0)
    with _Tails(containers, "hello", ProcessFilter(), partial=True) as tails:
        tails.scan()
        lines = sorted(tails.history(10), key=lambda line: line.at)
    assert texts(lines) == [
        "app[web.1]: a1", "app[web.2]: b1", "app[web.1]: a2", "app[web.1]: a3", "app[web.1]: a4"
    ]  # fmt: skip
    assert [line.at for line in lines] == [1010.0, 1015.0, 1020.0, 1030.0, 1040.0]


def test_history_and_follow_of_a_line_still_being_written(tmp_path: Path) -> None:
    containers = FakeContainers(tmp_path)
    path = containers.add("a", "hello", "web.1", started=1.0)
    write(path, "done\nhalf")
    with _Tails(containers, "hello", ProcessFilter(), partial=True) as tails:
        tails.scan()
        assert texts(tails.history(5)) == ["app[web.1]: done", "app[web.1]: half"]
    with _Tails(containers, "hello", ProcessFilter(), partial=False) as tails:
        tails.scan()
        assert texts(tails.history(1)) == ["app[web.1]: done"]
        assert tails.read_new(5.0) == []
        write(path, " and whole\nnext")
        assert tails.read_new(6.0) == [LogLine(6.0, "app", "web.1", "half and whole")]
        containers.drop("a")  # gone: what was written to the end still comes, then it closes
        tails.scan()
        assert texts(tails.read_new(7.0)) == ["app[web.1]: next"]
        assert tails.tails == {}


def test_follow_finds_new_replicas_and_applies_the_filter(tmp_path: Path) -> None:
    containers = FakeContainers(tmp_path)
    with _Tails(containers, "hello", ProcessFilter("web"), partial=False) as tails:
        tails.scan()
        assert tails.history(10) == []
        write(containers.add("w", "hello", "worker.1"), "busy\n")
        web = containers.add("n", "hello", "web.3")
        write(web, "early\r\n")  # written before the scan saw the replica: still shown
        tails.scan()
        write(web, "later\n")
        assert texts(tails.read_new(1.0)) == ["app[web.3]: early", "app[web.3]: later"]
        file = tails.tails["n"].file
    assert file.closed


def test_long_lines_are_cut_and_bad_bytes_replaced(tmp_path: Path) -> None:
    containers = FakeContainers(tmp_path)
    path = containers.add("a", "hello", "web.1")
    with _Tails(containers, "hello", ProcessFilter(), partial=False) as tails:
        tails.scan()
        tails.history(1)
        path.write_bytes(b"x" * (MAX_LINE + 5) + b"\n\xff\n")
        got = [line.text for line in tails.read_new(1.0)]
    assert got == ["x" * MAX_LINE, "xxxxx", "\ufffd"]


# --- server-sent events -------------------------------------------------------------------------


def test_event_stream_sends_lines_and_heartbeats_and_closes_the_follow() -> None:
    closed: list[bool] = []

    def batches() -> Generator[list[LogLine], None, None]:
        try:
            yield []
            yield [LogLine(1.0, "app", "web.1", "hi"), LogLine(1.0, "paas", "web.1", "up")]
            while True:
                yield []
        finally:
            closed.append(True)

    stream = event_stream(batches(), heartbeat=0.0)
    assert next(stream) == ": keepalive\n\n"  # nothing to show first: headers go out anyway
    assert next(stream) == "data: app[web.1]: hi\n\ndata: paas[web.1]: up\n\n"
    assert next(stream) == ": keepalive\n\n"
    stream.close()
    assert closed == [True]

    quiet = event_stream(batches(), heartbeat=3600.0)
    assert next(quiet) == ": keepalive\n\n"
    assert next(quiet).startswith("data:")
    quiet.close()


def test_sse_data() -> None:
    lines = [": keepalive", "", "data: app[web.1]: hi", "data:x", "data:  two spaces", "id: 3"]
    assert list(sse_data(lines)) == ["app[web.1]: hi", "x", " two spaces"]


# --- commands -----------------------------------------------------------------------------------


class FakeApi(ApiClient):
    def __init__(self, answers: dict[str, Any], stream_lines: list[str]) -> None:
        super().__init__(Endpoint("http://fake", "token"))
        self.answers = answers
        self.stream_lines = stream_lines
        self.paths: list[str] = []
        self.closed = False

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.paths.append(path)
        if path not in self.answers:
            raise NotFound(f"App {path} not found.")
        return self.answers[path]

    def stream(self, path: str) -> Generator[str, None, None]:
        self.paths.append(path)
        try:
            yield from self.stream_lines
            raise KeyboardInterrupt  # the user presses Ctrl-C
        finally:
            self.closed = True


def paas(*args: str, answers: dict[str, Any] | None = None, stream: list[str] | None = None
         ) -> tuple[int, str, str, FakeApi]:  # fmt: skip
    fake = FakeApi(answers or {}, stream or [])
    session = Session(client=lambda: fake, remote_url=lambda: None, interactive=False)
    with CliRunner().isolation() as (out, err, _):
        code = run(list(args), session)
    return code, out.getvalue().decode(), err.getvalue().decode(), fake


def test_logs_shows_lines_with_filter_and_count() -> None:
    answers = {
        "/apps/hello/logs?lines=5&process=web": {"lines": ["app[web.1]: a", "paas[web.1]: up"]}
    }
    code, out, _, _ = paas("logs", "hello", "-n", "5", "-p", "web", answers=answers)
    assert (code, out) == (0, "app[web.1]: a\npaas[web.1]: up\n")
    code, out, _, _ = paas("logs", "-a", "hello", "-n", "5", "-p", "web", "--json", answers=answers)
    assert code == 0 and '"app[web.1]: a"' in out
    code, _, err, _ = paas("logs", "nosuch")
    assert code == 3 and "not found" in err


def test_logs_follow_prints_events_until_ctrl_c() -> None:
    stream = [": keepalive", "", "data: app[web.1]: a", "", "data: paas[web.1]: crashed", ""]
    code, out, err, fake = paas("logs", "hello", "-t", "-n", "0", stream=stream)
    assert (code, out, err) == (0, "app[web.1]: a\npaas[web.1]: crashed\n", "")
    assert fake.paths == ["/apps/hello/logs?lines=0&follow=1"]
    assert fake.closed


def test_builds_and_build_output() -> None:
    build = {"id": "hello-0a1b2c3d4e5f", "rev": "abcdef0123", "status": "succeeded",
             "release": "v1", "created_at": 1.0, "message": "", "actor": "alice"}  # fmt: skip
    answers = {
        "/apps/hello/builds": {"builds": [build]},
        "/apps/hello/builds/v1/output": {
            "build": build, "status": "succeeded", "lines": ["-----> Building", "Released v1"],
            "expired": False,
        },
        "/apps/hello/builds/hello-000000000000/output": {
            "build": {**build, "status": "failed"}, "status": "failed", "lines": [],
            "expired": True,
        },
    }  # fmt: skip
    code, out, _, _ = paas("builds", "hello", answers=answers)
    assert code == 0 and out.startswith("v1     succeeded  abcdef0  hello-0a1b2c3d4e5f")
    assert out.rstrip().endswith("by alice")
    code, out, _, _ = paas("builds:output", "hello", "v1", answers=answers)
    assert (code, out) == (0, "-----> Building\nReleased v1\n")
    code, out, _, _ = paas("builds:output", "hello", "hello-000000000000", answers=answers)
    assert code == 0 and "no longer kept" in out
    code, _, err, _ = paas("builds:output", "hello")
    assert code == 2 and "No app given" in err  # one word: the build; no checkout to name the app
