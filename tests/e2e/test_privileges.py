"""End to end: the API and dashboard (gunicorn) run as the platform's user, not root, and
reach what needs root through the agent's socket, which only root and that user may open."""

from __future__ import annotations

import json
import pwd
import stat
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.platform_fixture import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split()
            found.extend(int(c) for c in children)
            todo.extend(int(c) for c in children)
    return found


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])  # the real uid; the others follow it here
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def test_the_api_runs_unprivileged_and_asks_the_agent(platform: Platform) -> None:
    assert platform.proc is not None
    user = pwd.getpwnam(platform.env.get("PAAS_SSH_USER", "paas"))
    by_command = {}
    for pid in _descendants(platform.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            by_command.setdefault(b" ".join(argv), []).append(_uid(pid))
        except FileNotFoundError:
            continue  # ended meanwhile
    web = [uids for command, uids in by_command.items() if b"paas.web.wsgi:app" in command]
    assert web and all(uid == user.pw_uid for uids in web for uid in uids), by_command
    agents = [uids for command, uids in by_command.items() if command.endswith(b" agent ")
              or command.endswith(b" agent")]  # fmt: skip
    assert agents and all(uid == 0 for uids in agents for uid in uids), by_command

    socket_path = platform.root / "run" / "agent.sock"
    mode = socket_path.stat()
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o660
    assert (mode.st_uid, mode.st_gid) == (0, user.pw_gid)

    # What needs root still answers through the agent: the stacks (root-only layer files).
    request = urllib.request.Request(
        f"{platform.api}/api/v1/stacks", headers={"Authorization": f"Bearer {platform.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        stacks = json.load(answer)["stacks"]
    assert stacks and stacks[0]["layers"], stacks
