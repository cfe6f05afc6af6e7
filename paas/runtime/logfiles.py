"""The output files of one container: the current file and its rotated predecessors.

A container's output goes to ``container.log``. When that file would grow past ``max_bytes``
it is renamed ``container.log.N`` (N = 1, 2, 3 ... in the order of rotation, never reused)
and a new ``container.log`` is started; only the ``keep`` newest rotated files stay. A file
is cut after the last complete line that fits, so lines are only split across files when
one line alone is longer than ``max_bytes``. A rotated file is never written again and
keeps its name until it is deleted, which is what lets a reader follow the chain without
losing or repeating a line.

``Writer`` is used by the shim, so this module imports nothing but ``os`` (the shim runs
with ``python -S`` and stays small); the readers (following the chain) are in ``paas.applogs``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # the shim does not import typing at run time
    from collections.abc import Callable

MIN_BYTES = 4096


class Writer:
    """Appends output to ``path``, rotating by size. Never raises on a failed write (a full
    disk): the output is dropped instead, so that the app writing it is never held up."""

    def __init__(self, path: str, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max(MIN_BYTES, max_bytes)
        self.keep = max(1, keep)
        self.seq = max((seq for seq, _ in rotated(path)), default=0)
        self.fd = -1
        self.size = 0
        self._open()

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self.size
            if len(data) <= room:
                self._append(data)
                return
            cut = data.rfind(b"\n", 0, room) + 1
            if cut == 0 and self.size == 0:
                cut = room  # one line longer than a whole file: cut it
            if cut:
                self._append(data[:cut])
                data = data[cut:]
            self.rotate()

    def rotate(self) -> None:
        """Rename the current file ``path.N`` and start a new one; drop the oldest files."""
        older = rotated(self.path)
        for _, name in older[: max(0, len(older) - self.keep + 1)]:
            _quietly(os.unlink, name)  # first: never more than keep + 1 files
        self.seq += 1
        _quietly(os.rename, self.path, f"{self.path}.{self.seq}")
        os.close(self.fd)
        self._open()

    def close(self) -> None:
        os.close(self.fd)

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _append(self, data: bytes) -> None:
        self.size += len(data)  # counted even if dropped: the file still rotates on time
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            pass


def rotated(path: str) -> list[tuple[int, str]]:
    """The rotated files of ``path`` as ``(N, name)``, oldest first."""
    directory, base = os.path.split(path)
    prefix = f"{base}."
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    found = [
        (int(name[len(prefix) :]), os.path.join(directory, name))
        for name in names
        if name.startswith(prefix) and name[len(prefix) :].isdecimal()
    ]
    return sorted(found)


def _quietly(call: Callable[[str, str], None] | Callable[[str], None], *args: str) -> bool:
    """``call(*args)``; False if it failed (a file gone already: the output must go on)."""
    try:
        call(*args)
    except OSError:
        return False
    return True
