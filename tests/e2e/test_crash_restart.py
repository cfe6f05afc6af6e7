"""A replica that keeps crashing is restarted: the first time within 2 s of the crash,
then after about 1 s, then about 2 s (exponential backoff), and ps shows it crashed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from paas.settings import Settings
from paas.wiring import services
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "crashy"
# Serves for a while (long enough to pass the deploy's checks), then exits 3.
PROCFILE = "web: python3 -m http.server $PORT & sleep 3.5; exit 3\n"


def test_crashing_replica_restarts_with_backoff(platform: Platform, tmp_path: Path) -> None:
    repo = make_app(tmp_path / APP, "crash")
    (repo / "Procfile").write_text(PROCFILE)
    commit(repo, "crashes")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    events = services(Settings.from_env(platform.env)).events

    deadline = time.monotonic() + 90
    starts: list[float] = []
    crashes: list[float] = []
    while time.monotonic() < deadline and len(starts) < 4:
        time.sleep(1)
        listed = events.recent(APP, 200)
        starts = [e.at for e in listed if e.source == "web.1" and e.text.startswith("starting")]
        crashes = [e.at for e in listed if e.source == "web.1" and "crashed, exit 3" in e.text]
    assert len(starts) >= 4 and len(crashes) >= 3, [e.line for e in events.recent(APP, 200)]
    print("\n".join(f"{e.at:.2f} {e.line}" for e in events.recent(APP, 200)))
    life = 3.5  # each replica serves this long, then exits
    # The crash is noticed within about a second of the exit ...
    lags = [crashes[i] - starts[i] - life for i in range(3)]
    assert all(0 <= lag < 1.6 for lag in lags), lags
    # ... and the replica restarts at once, then after ~1 s, then after ~2 s.
    waits = [starts[i + 1] - crashes[i] for i in range(3)]
    assert waits[0] < 0.6, waits
    assert 0.9 <= waits[1] < 1.8, waits
    assert 1.9 <= waits[2] < 2.8, waits
    assert starts[1] - starts[0] - life < 2.0  # first restart within 2 s of the crash
    ps = platform.cli("ps", APP)
    assert "web.1" in ps.stdout
    assert platform.cli("apps:destroy", APP, "--force").returncode == 0  # stop the loop
