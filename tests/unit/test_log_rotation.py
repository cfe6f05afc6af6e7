"""Rotation of a container's output by size (``paas.runtime.logfiles.Writer``, as the shim
uses it) and the log view reading across the rotated files: history spanning files, and a
follow that goes on through rotations without losing or repeating a line."""

from __future__ import annotations

import os
from pathlib import Path

from paas.applogs import ProcessFilter, _Tails
from paas.runtime.logfiles import MIN_BYTES, Writer, rotated
from tests.unit.test_applogs import FakeContainers, texts

SIZE = MIN_BYTES


def numbered(start: int, stop: int, width: int = 40) -> bytes:
    return b"".join(f"{i:08d} ".encode().ljust(width - 1, b".") + b"\n" for i in range(start, stop))


def replica(tmp_path: Path, keep: int, started: float = 1.0) -> tuple[FakeContainers, Writer]:
    """A replica web.1 of app hello, and the writer of its output (as its shim has it)."""
    containers = FakeContainers(tmp_path)
    path = containers.add("a", "hello", "web.1", started=started)
    return containers, Writer(str(path), SIZE, keep=keep)


def files_of(path: Path) -> list[Path]:
    return [Path(name) for _, name in rotated(str(path))] + [path]


def test_files_are_capped_cut_at_line_ends_and_only_keep_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = Writer(str(path), SIZE, keep=2)
    data = numbered(0, 1000)  # 40 000 bytes: about ten files of 4 KiB
    for i in range(0, len(data), 1500):  # pieces that end mid-line
        writer.write(data[i : i + 1500])
    writer.close()
    files = files_of(path)
    assert [p.name for p in files] == ["container.log.8", "container.log.9", "container.log"]
    contents = [p.read_bytes() for p in files]
    assert all(0 < len(c) <= SIZE and c.endswith(b"\n") for c in contents)
    assert all(len(c) > SIZE - 40 for c in contents[:-1])  # full but for less than a line
    assert data.endswith(b"".join(contents))  # the newest output, in order, nothing repeated


def test_a_line_longer_than_a_file_is_cut_and_writing_goes_on_where_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "container.log"
    writer = Writer(str(path), SIZE, keep=5)
    writer.write(b"short\n" + b"x" * (SIZE * 2 + 10) + b"\nend\n")
    writer.close()
    contents = [p.read_bytes() for p in files_of(path)]
    assert contents == [b"short\n", b"x" * SIZE, b"x" * SIZE, b"x" * 10 + b"\nend\n"]
    again = Writer(str(path), SIZE, keep=5)  # a new writer numbers on from the last file
    again.rotate()
    again.close()
    assert [p.name for p in files_of(path)][-2:] == ["container.log.4", "container.log"]


def test_follow_reads_through_rotations_without_losing_or_repeating(tmp_path: Path) -> None:
    containers, writer = replica(tmp_path, keep=3)
    path = Path(writer.path)
    writer.write(numbered(0, 50))
    seen: list[str] = []
    with _Tails(containers, "hello", ProcessFilter(), partial=False) as tails:
        tails.scan()
        seen += [line.text for line in tails.history(5)]
        written = 50
        # Between two reads: no rotation, one, two, three (all but the reader's file kept).
        for count in (10, 100, 150, 300, 7, 250):
            writer.write(numbered(written, written + count))
            written += count
            seen += [line.text for line in tails.read_new(1.0)]
        assert len(rotated(str(path))) == 3
    writer.close()
    assert [int(text.split()[0]) for text in seen] == list(range(45, written))


def test_a_reader_behind_by_more_than_the_kept_files_goes_on_from_the_oldest_left(
    tmp_path: Path,
) -> None:
    containers, writer = replica(tmp_path, keep=1)
    path = Path(writer.path)
    with _Tails(containers, "hello", ProcessFilter(), partial=False) as tails:
        tails.scan()
        tails.history(0)
        writer.write(numbered(0, 500))  # five files, the first three deleted
        got = [int(line.text.split()[0]) for line in tails.read_new(1.0)]
    writer.close()
    kept = b"".join(p.read_bytes() for p in files_of(path))
    first_kept = int(kept.split()[0])
    # What the reader had open it reads to its end; then the oldest file left, in order.
    assert got == sorted(set(got)) and got[-1] == 499
    assert got[: got.index(first_kept)] == list(range(got.index(first_kept)))
    assert got[got.index(first_kept) :] == list(range(first_kept, 500))


def test_history_reaches_into_rotated_files_and_keeps_their_order_in_time(
    tmp_path: Path,
) -> None:
    containers, writer = replica(tmp_path, keep=3, started=1000.0)
    path = Path(writer.path)
    writer.write(numbered(0, 120))  # 4800 bytes: one full file rotated, 19 lines current
    writer.close()
    os.utime(f"{path}.1", (1010.0, 1010.0))
    os.utime(path, (1020.0, 1020.0))
    with _Tails(containers, "hello", ProcessFilter(), partial=True) as tails:
        tails.scan()
        lines = tails.history(30)
    assert [int(line.text.split()[0]) for line in lines] == list(range(90, 120))
    times = [line.at for line in lines]
    assert times == sorted(times) and 1000.0 < times[0] < 1010.0 < times[-1] == 1020.0


def test_a_replica_found_while_following_is_read_from_its_oldest_file(tmp_path: Path) -> None:
    containers = FakeContainers(tmp_path)
    with _Tails(containers, "hello", ProcessFilter(), partial=False) as tails:
        tails.scan()
        tails.history(10)
        path = containers.add("n", "hello", "web.2", started=1.0)
        writer = Writer(str(path), SIZE, keep=5)
        writer.write(numbered(0, 250))
        tails.scan()
        got = texts(tails.read_new(1.0))
        writer.close()
    assert len(rotated(str(path))) == 2
    assert [int(text.split()[1]) for text in got] == list(range(250))
