"""``Runtime.list`` reads ``runc list`` again when a container vanished while runc listed
them, and still reports runc's other failures. runc is a stand-in script here: the race
itself cannot be produced on demand."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paas.errors import PlatformError
from paas.runtime.runtime import Runtime

VANISHED = "stat /run/x/runc/a.web.1.v2.ab12: no such file or directory"


def fake_runc(tmp_path: Path, failures: int, message: str) -> Path:
    """A runc whose first ``failures`` calls fail with ``message``, then list nothing."""
    script = tmp_path / "runc"
    count = tmp_path / "count"
    script.write_text(
        "#!/bin/sh\n"
        f'n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}\n'
        f'if [ "$n" -lt {failures} ]; then echo "{message}" >&2; exit 1; fi\n'
        "echo null\n"
    )
    script.chmod(0o755)
    return script


def runtime(tmp_path: Path, runc: Path) -> Runtime:
    return Runtime(tmp_path / "state", tmp_path / "containers", "paas-test", runc=str(runc))


def test_a_container_deleted_while_listing_is_listed_again(tmp_path: Path) -> None:
    runc = fake_runc(tmp_path, 2, VANISHED)
    assert runtime(tmp_path, runc).list() == []
    assert (tmp_path / "count").read_text().strip() == "3"


def test_other_failures_and_a_lasting_race_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="permission denied"):
        runtime(tmp_path, fake_runc(tmp_path, 1, "open /run/x: permission denied")).list()
    assert (tmp_path / "count").read_text().strip() == "1"
    os.remove(tmp_path / "count")
    with pytest.raises(PlatformError, match="no such file"):
        runtime(tmp_path, fake_runc(tmp_path, 5, VANISHED)).list()
