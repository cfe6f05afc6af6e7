"""The merged log view of an app: its replicas' output and its events (control layer).

``logs`` shows, in one stream, the output of every replica of an app (``app[web.1]: ...``)
and the platform's own events about it (``paas[web.1]: up``, ``paas[deploy]: v4 by alice``).

Ordering. A replica's output is a plain file its processes write to directly, with no time on
any line, so where one replica's line falls among another's is only known for what we see
being written:

* Following (``follow``), every file is read each ``poll`` interval, and a line is stamped
  with the time it was read. Events carry the time they were emitted. Lines and events are
  therefore merged in the order they happened, to within one poll interval (0.25 s).
* For the lines that were written before the request (``recent``, and the start of
  ``follow``), a line's time is estimated from where it stands in its file: its container
  started writing at offset 0 at the container's start time, and the file's size was reached
  at its modification time; a line ending at byte ``o`` of ``size`` is placed at
  ``start + (mtime - start) * o / size``. That keeps each replica's lines in their own order
  and never places a line before its container started or after its last write; between
  those bounds it assumes a steady output rate. Events keep their exact times.

Exact order in history would need the writer to stamp each line, which the containers'
output path (the shim passing the file to runc) does not do.

Follow is a generator: it holds the replicas' files open (so the last lines of a replica that
is removed meanwhile are still read), finds replicas that start later, and closes everything
when the consumer closes it (a web response whose client went away).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from paas.errors import InvalidInput
from paas.procfile import validate_process_type
from paas.runtime import logfiles
from paas.runtime.spec import ContainerInfo
from paas.state.events import Event, Events
from paas.state.store import Store

POLL = 0.25  # seconds between reads of the replicas' files while following
RESCAN = 1.0  # seconds between looks for replicas that started or went away
MAX_LINE = 16384  # longer lines are cut into pieces of this many characters
TAIL_BYTES = 8 << 20  # read at most this much from the end of one file for a snapshot
READ_BYTES = 1 << 20  # read at most this much from one file per poll

T = TypeVar("T")


class Containers(Protocol):
    """The containers of the platform and where their output goes (``Runtime``)."""

    def list(self) -> list[ContainerInfo]: ...
    def log_path(self, container_id: str) -> Path: ...


@dataclass(frozen=True)
class LogLine:
    at: float  # Unix time: exact for events and followed lines, estimated for history
    source: str  # "app" (a replica's output) or "paas" (the platform's event)
    dyno: str  # "web.1"; for events their source ("web.1", "deploy", "config", ...)
    text: str

    @property
    def line(self) -> str:
        return f"{self.source}[{self.dyno}]: {self.text}"


@dataclass(frozen=True)
class ProcessFilter:
    """Which lines to show: all (``None``), a process type (``web``: web.1, web.2, ...)
    or one replica (``web.1``). Events match by their source the same way, so ``web`` keeps
    ``paas[web.1]: up`` and drops ``paas[deploy]: ...``."""

    process: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> ProcessFilter:
        if not text:
            return cls()
        ptype, dot, index = text.partition(".")
        validate_process_type(ptype)
        if dot and not index.isdecimal():
            raise InvalidInput(f"Invalid process {text!r}: use a type (web) or a replica (web.1).")
        return cls(text)

    def matches(self, dyno: str) -> bool:
        p = self.process
        return p is None or dyno == p or ("." not in p and dyno.startswith(f"{p}."))


@dataclass(frozen=True)
class AppLogs:
    store: Store
    events: Events
    containers: Containers
    poll: float = POLL
    rescan: float = RESCAN

    # --- app logs -------------------------------------------------------------------------------

    def recent(self, app: str, lines: int, process: ProcessFilter) -> list[LogLine]:
        """The last ``lines`` lines of the app's replicas and events, oldest first."""
        self.store.get_app(app)
        with _Tails(self.containers, app, process, partial=True) as tails:
            tails.scan()
            return _last(self._history(app, lines, process, tails, "+"), lines)

    def follow(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        """The last ``lines`` lines as the first batch, then a batch of new ones every poll
        interval (often empty: a consumer may use those to send heartbeats), until closed."""
        self.store.get_app(app)  # here, not in the generator: a missing app fails the request
        return self._follow(app, lines, process)

    def _follow(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        with _Tails(self.containers, app, process, partial=False) as tails:
            last_event = self.events.last_id(app)
            tails.scan()
            yield _last(self._history(app, lines, process, tails, last_event), lines)
            next_scan = time.monotonic() + self.rescan
            while True:
                events = self.events.after(app, last_event, int(self.poll * 1000))
                if events:
                    last_event = events[-1].id
                if time.monotonic() >= next_scan:
                    tails.scan()
                    next_scan = time.monotonic() + self.rescan
                new = [_event_line(e) for e in events if process.matches(e.source)]
                new.extend(tails.read_new(time.time()))
                yield sorted(new, key=lambda line: line.at)

    def _history(
        self, app: str, lines: int, process: ProcessFilter, tails: _Tails, until: str
    ) -> list[LogLine]:
        events = self.events.recent(app, lines, process.matches, until)
        merged = [_event_line(e) for e in events] + tails.history(lines)
        return sorted(merged, key=lambda line: line.at)


def _event_line(event: Event) -> LogLine:
    return LogLine(at=event.at, source="paas", dyno=event.source, text=event.text)


def _last(items: list[T], count: int) -> list[T]:
    return items[max(0, len(items) - count) :]


@dataclass
class _Tail:
    """One replica's output, open, and how far it has been read."""

    dyno: str
    path: Path  # its current file; the rotated ones are next to it (``paas.runtime.logfiles``)
    file: BinaryIO  # the file being read: the current one, or a rotated one not read to its end
    started: float | None
    offset: int = 0
    pending: bytes = b""  # the start of a line whose end has not been written yet
    listed: bool = True


@dataclass
class _Tails:
    """The output files of an app's replicas (those ``process`` keeps), held open."""

    containers: Containers
    app: str
    process: ProcessFilter
    partial: bool  # whether a history ends with a line still being written
    tails: dict[str, _Tail] = field(default_factory=dict)
    followed: bool = False  # the history was read: replicas found later are read from start

    def __enter__(self) -> _Tails:
        return self

    def __exit__(self, *_: object) -> None:
        for tail in self.tails.values():
            tail.file.close()
        self.tails.clear()

    def scan(self) -> None:
        """Open the files of replicas not seen before (a new one is read from its oldest
        file); mark the ones that are gone, to be closed once read to their end."""
        seen = set()
        for info in self.containers.list():
            labels = info.labels
            if labels.get("app") != self.app or not {"process_type", "index"} <= set(labels):
                continue
            dyno = f"{labels['process_type']}.{labels['index']}"
            if not self.process.matches(dyno):
                continue
            seen.add(info.id)
            if info.id not in self.tails:
                path = self.containers.log_path(info.id)
                file = _open(path)
                if file is None:
                    continue  # next scan
                if self.followed:
                    older = _predecessors(path, file)
                    if older:
                        file.close()
                        file, *rest = older
                        _close(rest)
                self.tails[info.id] = _Tail(dyno, path, file, info.started_at)
        for cid, tail in self.tails.items():
            tail.listed = cid in seen

    def history(self, count: int) -> list[LogLine]:
        """Up to ``count`` last lines of each replica (from its current file, and the rotated
        ones before it when that holds fewer), with estimated times; following goes on from
        there."""
        self.followed = True
        return [line for tail in self.tails.values() for line in self._history(tail, count)]

    def _history(self, tail: _Tail, count: int) -> list[LogLine]:
        older = _predecessors(tail.path, tail.file)
        try:
            files = [*older, tail.file]
            stats = [os.fstat(f.fileno()) for f in files]
            start = tail.started if tail.started is not None else stats[0].st_mtime
            out: list[LogLine] = []
            for k in reversed(range(len(files))):
                size = stats[k].st_size
                newest = k == len(files) - 1
                ends = _tail_lines(files[k], size, count - len(out) + newest)
                if newest:
                    tail.offset = size
                    if ends and not self.partial and not ends[-1][1].endswith(b"\n"):
                        tail.offset -= len(ends.pop()[1])  # read again once it is complete
                    ends = _last(ends, count)
                # a file was written from the end of the one before it to its modification
                high = stats[k].st_mtime
                low = min(high, stats[k - 1].st_mtime if k else start)
                out[:0] = [
                    LogLine(low + (high - low) * end / max(size, 1), "app", tail.dyno, text)
                    for end, raw in ends
                    for text in _texts(raw)
                ]
                if len(out) >= count:
                    break
            return out
        finally:
            _close(older)

    def read_new(self, now: float) -> list[LogLine]:
        """Complete lines written since the last read, stamped ``now``; closes the files of
        replicas that are gone once read to their end."""
        out: list[LogLine] = []
        for cid, tail in list(self.tails.items()):
            data, at_end = _read_on(tail)
            *complete, tail.pending = (tail.pending + data).split(b"\n")
            done = not tail.listed and at_end
            if done and tail.pending:
                complete.append(tail.pending)
            elif len(tail.pending) > MAX_LINE:  # a line without end yet: show what there is
                complete.append(tail.pending)
                tail.pending = b""
            out.extend(
                LogLine(now, "app", tail.dyno, text) for raw in complete for text in _texts(raw)
            )
            if done:
                tail.file.close()
                del self.tails[cid]
        return out


def _read_on(tail: _Tail) -> tuple[bytes, bool]:
    """Up to ``READ_BYTES`` written since the last read, across rotations: a file that was
    rotated is read to its (then final) end before the next one is opened. Also whether
    everything there is was read."""
    chunks: list[bytes] = []
    left = READ_BYTES
    following: BinaryIO | None = None
    while left > 0:
        tail.file.seek(tail.offset)
        chunk = tail.file.read(left)
        tail.offset += len(chunk)
        left -= len(chunk)
        chunks.append(chunk)
        if left <= 0:
            break
        if following is None:
            following = _successor(tail.path, tail.file)
            if following is None:
                break
            continue  # no more writes to it now: read what came since the read above
        tail.file.close()
        tail.file, tail.offset, following = following, 0, None
    if following is not None:
        following.close()
    return b"".join(chunks), left > 0


def _predecessors(path: Path, file: BinaryIO) -> list[BinaryIO]:
    """The files of a container's output written before ``file``, open, oldest first."""
    listed = _listed(path)
    ino = os.fstat(file.fileno()).st_ino
    mine = next((seq for seq, _, i in listed if i == ino), None)
    return _open_all(name for seq, name, _ in listed if mine is None or seq < mine)


def _successor(path: Path, file: BinaryIO) -> BinaryIO | None:
    """The file of a container's output written after ``file``, open; None while ``file``
    is the current one (or the container's files are gone). Once this returns a file,
    ``file`` gets no more writes. If the reader fell behind by more than the kept files, it
    is the oldest one left."""
    ino = os.fstat(file.fileno()).st_ino
    current = _open(path)
    if current is not None and os.fstat(current.fileno()).st_ino == ino:
        current.close()
        return None
    # Listed after ``current`` was opened: if no rotated file follows ``file``, no rotation
    # happened after it by then, and ``current`` is the next file.
    listed = _listed(path)
    mine = next((seq for seq, _, i in listed if i == ino), None)
    later = _open_all(name for seq, name, _ in listed if mine is None or seq > mine)
    if not later:
        return current
    _close([*later[1:], *([current] if current else [])])
    return later[0]


def _listed(path: Path) -> list[tuple[int, str, int]]:
    """The rotated files of ``path``: number, name and inode, oldest first."""
    out = []
    for seq, name in logfiles.rotated(str(path)):
        try:
            out.append((seq, name, os.stat(name).st_ino))
        except OSError:
            continue  # deleted meanwhile
    return out


def _open(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except OSError:
        return None  # removed meanwhile, or not written yet


def _open_all(names: Iterable[str]) -> list[BinaryIO]:
    return [f for f in (_open(Path(name)) for name in names) if f is not None]


def _close(files: Iterable[BinaryIO]) -> None:
    for f in files:
        f.close()


def _tail_lines(file: BinaryIO, end: int, count: int) -> list[tuple[int, bytes]]:
    """The last ``count`` lines of ``file`` before offset ``end`` (the last one possibly
    without its newline), each with the offset where it ends."""
    if count <= 0 or end <= 0:
        return []
    block = 65536
    pos = end
    data = b""
    while pos > 0 and data.count(b"\n") <= count and end - pos < TAIL_BYTES:
        size = min(block, pos)
        pos -= size
        file.seek(pos)
        data = file.read(size) + data
    pieces = data.split(b"\n")
    if pos > 0:
        pieces = pieces[1:]  # the first piece is the end of a line that starts earlier
    lines = [p + b"\n" for p in pieces[:-1]]
    if pieces and pieces[-1]:
        lines.append(pieces[-1])
    lines = lines[-count:]
    ends: list[tuple[int, bytes]] = []
    offset = end
    for raw in reversed(lines):
        ends.append((offset, raw))
        offset -= len(raw)
    return ends[::-1]


def _texts(raw: bytes) -> Iterable[str]:
    """A raw line as text, without its line end, cut into pieces of ``MAX_LINE``."""
    text = raw.rstrip(b"\n").decode(errors="replace").rstrip("\r")
    return [text[i : i + MAX_LINE] for i in range(0, len(text), MAX_LINE)] or [""]
