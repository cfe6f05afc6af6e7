"""Real containers writing to their rotated output files: the shim keeps each file under the
cap and the number of files bounded while the app writes as fast as it can, the app never
waits on it, and the log view follows the output through the rotations without losing or
repeating a line."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from paas.applogs import ProcessFilter, _Tails
from paas.runtime import logfiles
from paas.settings import LogRotation
from tests.integration.fixtures_runtime import Sandbox

pytestmark = pytest.mark.root
MiB = 1024**2
LINE = "0123456789abcdefghijklmnopqrstuvwxyz" * 2  # 72 characters and a newline

# About 1 MiB of `yes` per round (whole lines), as fast as it goes; between rounds the app
# notes, from /proc/uptime (centiseconds, shell builtins only), the round count and the
# longest round.
FAST_WRITER = f"""
read up rest < /proc/uptime; last=${{up%.*}}${{up#*.}}; n=0; longest=0
while :; do
  yes {LINE} | head -n {MiB // (len(LINE) + 1)}
  read up rest < /proc/uptime; now=${{up%.*}}${{up#*.}}
  n=$((n + 1)); gap=$((now - last)); last=$now
  [ $gap -gt $longest ] && longest=$gap
  echo "$n $longest" > /tmp/progress.new && mv /tmp/progress.new /tmp/progress
done
"""


def _files(sandbox: Sandbox, cid: str) -> list[tuple[str, int]]:
    current = sandbox.runtime.log_path(cid)
    names = [name for _, name in logfiles.rotated(str(current))] + [str(current)]
    out = []
    for name in names:
        try:
            out.append((name, Path(name).stat().st_size))
        except FileNotFoundError:
            continue  # rotated away between the listing and the stat
    return out


def _progress(sandbox: Sandbox, cid: str) -> tuple[int, int]:
    """(rounds of 1 MiB written, longest round in centiseconds), as the app noted them."""
    path = sandbox.runtime.containers_dir / cid / "upper" / "tmp" / "progress"
    try:
        rounds, longest = path.read_text().split()
    except FileNotFoundError:
        return 0, 0
    return int(rounds), int(longest)


def test_fast_writer_is_capped_rotated_and_never_held_up(sandbox: Sandbox) -> None:
    rotation = LogRotation(max_bytes=2 * MiB, keep=2)
    sandbox.runtime.log_rotation = rotation
    labels = {"app": "chatty", "process_type": "web", "index": "1"}
    sandbox.runtime.start(sandbox.spec("chatty", ("sh", "-c", FAST_WRITER), labels=labels))
    # Meanwhile `logs -t` follows it: every line it shows must be a whole line of the app.
    bad: list[str] = []
    shown = [0]
    stop = threading.Event()

    def follow() -> None:
        with _Tails(sandbox.runtime, "chatty", ProcessFilter(), partial=False) as tails:
            tails.scan()
            tails.history(10)
            while not stop.is_set():
                for line in tails.read_new(time.time()):
                    shown[0] += 1
                    if line.text != LINE and len(bad) < 5:
                        bad.append(line.text)
                time.sleep(0.05)

    follower = threading.Thread(target=follow)
    follower.start()
    most_files = largest = 0
    began = time.monotonic()
    try:
        while time.monotonic() - began < 6:
            files = _files(sandbox, "chatty")
            most_files = max(most_files, len(files))
            largest = max([largest, *(size for _, size in files)])
            time.sleep(0.02)
        rounds, longest = _progress(sandbox, "chatty")
    finally:
        stop.set()
        follower.join(timeout=30)
    elapsed = time.monotonic() - began
    sandbox.runtime.stop("chatty", grace=1)
    print(f"\n{rounds} MiB in {elapsed:.1f} s ({rounds / elapsed:.0f} MiB/s), longest round "
          f"{longest * 10} ms, {shown[0]} lines followed, at most {most_files} files")  # fmt: skip
    assert largest <= rotation.max_bytes
    assert most_files <= rotation.keep + 1
    # Far more went through than the files hold: the shim kept reading all along ...
    assert rounds * MiB > 10 * (rotation.keep + 1) * rotation.max_bytes, rounds
    # ... and no round of 1 MiB took long: the app never waited for its output to be taken.
    assert longest <= 100, f"a round took {longest * 10} ms"
    assert shown[0] > 1000 and not bad, bad


SLOW_WRITER = """
i=0
while [ $i -lt 12000 ]; do
  echo "line $i of a steady writer, padded to a realistic length ......................"
  i=$((i + 1))
  [ $((i % 500)) -eq 0 ] && usleep 50000
done
echo done
sleep 600
"""


def test_follow_reads_every_line_through_the_rotations(sandbox: Sandbox) -> None:
    rotation = LogRotation(max_bytes=64 * 1024, keep=4)
    sandbox.runtime.log_rotation = rotation
    labels = {"app": "steady", "process_type": "web", "index": "1"}
    got: list[str] = []
    with _Tails(sandbox.runtime, "steady", ProcessFilter(), partial=False) as tails:
        tails.scan()
        tails.history(10)
        sandbox.runtime.start(sandbox.spec("steady", ("sh", "-c", SLOW_WRITER), labels=labels))
        deadline = time.monotonic() + 60
        while "done" not in got and time.monotonic() < deadline:
            tails.scan()
            got += [line.text for line in tails.read_new(time.time())]
            time.sleep(0.05)
    files = _files(sandbox, "steady")
    sandbox.runtime.stop("steady", grace=1)
    assert got[-1] == "done", got[-3:]
    numbers = [int(text.split()[1]) for text in got[:-1]]
    assert numbers == list(range(12000))  # nothing lost, nothing twice, in order
    assert len(files) == rotation.keep + 1  # ~1 MB written: it did rotate, many times
    assert all(size <= rotation.max_bytes for _, size in files)
