"""The per-app lock on a real Redis: a holder killed outright (``kill -9`` of a Celery worker
in the middle of a change) frees the app within the lock's lease, while a holder that lives
keeps it for as long as it holds it, many leases long."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import redis

from paas.settings import Settings
from paas.state.store import Store
from tests.integration.test_applogs import redis_settings  # noqa: F401  (fixture)

LEASE = 1.0
HOLDER = """
import sys, time, redis
from paas.state.store import Store
store = Store(redis.Redis.from_url(sys.argv[1]), sys.argv[2])
with store.app_lock("hello", lease=float(sys.argv[3])) as acquired:
    print("held" if acquired else "refused", flush=True)
    time.sleep(600)
"""


def _store(settings: Settings, ns: str) -> Store:
    return Store(redis.Redis.from_url(settings.effective_redis_url), ns)


def test_a_killed_holder_frees_the_app_within_the_lease(redis_settings: Settings) -> None:  # noqa: F811
    ns = f"t{secrets.token_hex(3)}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_settings.effective_redis_url, ns, str(LEASE)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        store = _store(redis_settings, ns)
        time.sleep(3 * LEASE)  # renewed all along
        with store.app_lock("hello", wait=0) as acquired:
            assert not acquired
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        with store.app_lock("hello", wait=5 * LEASE) as acquired:
            waited = time.monotonic() - killed
            assert acquired and waited <= LEASE + 0.5, waited
    finally:
        holder.kill()
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()


def test_the_lock_is_free_again_once_released(redis_settings: Settings) -> None:  # noqa: F811
    store = _store(redis_settings, f"t{secrets.token_hex(3)}")
    with store.app_lock("hello", lease=LEASE) as first:
        assert first
        time.sleep(2 * LEASE)
        with store.app_lock("hello", wait=0) as second:
            assert not second
    with store.app_lock("hello", wait=0) as again:
        assert again
