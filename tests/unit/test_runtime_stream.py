"""Live line streaming of foreground runs (no root needed)."""

from __future__ import annotations

import os
import threading
import time

from paas.runtime.runtime import _stream_lines


def _writer(fd: int, parts: list[bytes], pause: float) -> threading.Thread:
    def write() -> None:
        for part in parts:
            os.write(fd, part)
            time.sleep(pause)
        os.close(fd)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_lines_arrive_as_they_are_written() -> None:
    read_end, write_end = os.pipe()
    seen: list[tuple[float, str]] = []
    thread = _writer(write_end, [b"one\ntw", b"o\r\n", b"three"], 0.2)
    began = time.monotonic()
    assert _stream_lines(read_end, lambda line: seen.append((time.monotonic(), line)), began + 10)
    thread.join()
    os.close(read_end)
    assert [line for _, line in seen] == ["one", "two", "three"]
    assert seen[0][0] - began < 0.15  # not held back until the end
    assert seen[1][0] - seen[0][0] > 0.1


def test_deadline_stops_the_stream() -> None:
    read_end, write_end = os.pipe()
    began = time.monotonic()
    assert not _stream_lines(read_end, lambda _: None, began + 0.3)
    assert 0.3 <= time.monotonic() - began < 1
    os.close(read_end)
    os.close(write_end)
