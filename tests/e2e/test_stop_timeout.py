"""A replica that ignores SIGTERM is killed once its app's stop-timeout (ps:set) is over."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from paas.settings import Settings
from paas.wiring import services
from tests.e2e.platform_fixture import Platform, runc_list
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

pytestmark = [pytest.mark.e2e, pytest.mark.root]

APP = "stubborn"
PROCFILE = (
    "web: python3 -c \"import os, signal, http.server as h; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "h.ThreadingHTTPServer(('', int(os.environ['PORT'])), h.SimpleHTTPRequestHandler)"
    ".serve_forever()\"\n"
)


def test_term_ignoring_replica_is_killed_after_its_stop_timeout(
    platform: Platform, tmp_path: Path
) -> None:
    repo = make_app(tmp_path / APP, "unused")
    (repo / "Procfile").write_text(PROCFILE)
    commit(repo, "ignores TERM")
    git(repo, "push", "-q", http_remote(platform, APP), "master")
    settings = Settings.from_env(platform.env)
    (cid,) = [r["id"] for r in json.loads(platform.cli("ps", APP, "--json").stdout)["replicas"]]

    assert platform.cli("ps:set", APP, "stop-timeout", "lots").returncode == 2
    done = platform.cli("ps:set", APP, "stop-timeout", "2")
    assert done.returncode == 0 and "stop-timeout: 2 s" in done.stdout, done.stderr
    assert platform.cli("ps:stop", APP).returncode == 0

    def present() -> bool:
        return cid in {c["id"] for c in runc_list(settings.runc_root)}

    deadline = time.monotonic() + 30
    while present() and time.monotonic() < deadline:
        time.sleep(0.1)
    gone = time.time()
    assert not present()
    events = services(settings).events.recent(APP, 50)
    (stopping,) = [e.at for e in events if e.text.startswith(f"stopping {cid}")]
    assert 1.9 <= gone - stopping < 4.0, gone - stopping  # TERM ignored, KILL after 2 s
