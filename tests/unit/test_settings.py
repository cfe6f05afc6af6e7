from pathlib import Path

import pytest

from paas.errors import InvalidInput
from paas.platform import render_redis_conf
from paas.settings import LogRotation, Settings, parse_size


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.root == Path("/var/lib/paas")
    assert (s.domain, s.http_port, s.embedded_redis) == ("paas.test", 80, True)
    assert s.effective_redis_url == "unix:///var/lib/paas/run/redis.sock"


def test_round_trip_through_env() -> None:
    s = Settings.from_env({"PAAS_ROOT": "/tmp/p1", "PAAS_HTTP_PORT": "8080",
                           "PAAS_SUBNET": "198.19.5.0/24", "PAAS_REDIS_URL": "redis://x:1/0"})
    assert Settings.from_env(s.to_env()) == s


def test_log_rotation() -> None:
    assert Settings.from_env({}).log_rotation == LogRotation(10 * 1024**2, 3)
    s = Settings.from_env({"PAAS_LOG_MAX_BYTES": "64k", "PAAS_LOG_KEEP": "5"})
    assert s.log_rotation == LogRotation(64 * 1024, 5)
    assert Settings.from_env(s.to_env()).log_rotation == s.log_rotation


def test_two_roots_share_nothing() -> None:
    a = Settings.from_env({"PAAS_ROOT": "/tmp/a"})
    b = Settings.from_env({"PAAS_ROOT": "/tmp/b"})
    assert a.instance != b.instance
    assert a.bridge != b.bridge and a.runc_root != b.runc_root
    assert len(a.bridge) <= 15


@pytest.mark.parametrize(
    "env",
    [{"PAAS_HTTP_PORT": "0"}, {"PAAS_API_PORT": "http"}, {"PAAS_SUBNET": "300.1.1.0/24"},
     {"PAAS_SUBNET": "198.18.0.0/30"}, {"PAAS_LOG_MAX_BYTES": "1k"},
     {"PAAS_LOG_MAX_BYTES": "big"}, {"PAAS_LOG_KEEP": "0"}, {"PAAS_LOG_KEEP": "-1"}],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        Settings.from_env(env)


def test_sizes() -> None:
    assert parse_size("512m") == 512 * 1024**2
    assert parse_size("1G") == 1024**3
    with pytest.raises(InvalidInput):
        parse_size("lots")


def test_embedded_redis_listens_on_a_socket_only() -> None:
    conf = render_redis_conf(Settings.from_env({"PAAS_ROOT": "/tmp/r"}))
    assert "port 0" in conf and "unixsocket /tmp/r/run/redis.sock" in conf
    assert "appendonly yes" in conf
