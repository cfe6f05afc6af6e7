"""Where the OOM-kill counter of a container's cgroup is read, on cgroup v1 and v2 hosts, and
reading it."""

from __future__ import annotations

from pathlib import Path

from paas.runtime.cgroups import oom_counter
from paas.runtime.shim import oom_kills

HYBRID = {"memory": Path("/sys/fs/cgroup/memory"), "unified": Path("/sys/fs/cgroup/unified")}
V2 = {"unified": Path("/sys/fs/cgroup")}


def test_the_counter_is_v1s_oom_control_where_a_v1_memory_hierarchy_exists() -> None:
    assert oom_counter("/paas-x/a.web.1", HYBRID) == Path(
        "/sys/fs/cgroup/memory/paas-x/a.web.1/memory.oom_control"
    )


def test_the_counter_is_v2s_memory_events_on_a_v2_host() -> None:
    assert oom_counter("/paas-x/a.web.1", V2) == Path("/sys/fs/cgroup/paas-x/a.web.1/memory.events")


def test_both_formats_give_the_kill_count(tmp_path: Path) -> None:
    v1 = tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    v2 = tmp_path / "memory.events"
    v2.write_text("low 0\nhigh 0\nmax 12\noom 3\noom_kill 3\noom_group_kill 0\n")
    assert (oom_kills(str(v1)), oom_kills(str(v2))) == (2, 3)
    assert oom_kills(str(tmp_path / "gone")) == 0
