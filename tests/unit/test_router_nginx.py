"""Rendering of the router's nginx config (pure functions) and the Router's file handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.errors import InvalidInput
from paas.router.nginx import (
    NO_APP_MESSAGE,
    NOT_RUNNING_MESSAGE,
    Router,
    listen_address,
    render_app_conf,
    render_main_conf,
    validate_server_name,
    validate_upstream,
)

LISTEN = "127.0.0.1:8080"


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_main_conf() -> None:
    conf = render_main_conf(Path("/srv/paas/nginx"), 8080, "0.0.0.0")
    lines = directives(conf)
    for expected in [
        "worker_processes auto;",
        "pid /srv/paas/nginx/nginx.pid;",
        "error_log /srv/paas/nginx/logs/error.log warn;",
        "worker_shutdown_timeout 10s;",
        "server_names_hash_bucket_size 128;",
        "client_body_temp_path /srv/paas/nginx/tmp/client_body;",
        "proxy_temp_path /srv/paas/nginx/tmp/proxy;",
        "include /srv/paas/nginx/apps/*.conf;",
        "listen 0.0.0.0:8080 default_server;",
        "include /srv/paas/nginx/generation.conf;",
        f'return 404 "{NO_APP_MESSAGE}\\n";',
    ]:
        assert expected in lines, expected
    assert any(line.startswith("access_log /srv/paas/nginx/logs/access.log") for line in lines)
    assert "daemon" not in conf  # given on the command line, so that -t and -s work alike
    assert conf.count("{") == conf.count("}")


def test_listen_address() -> None:
    assert listen_address("0.0.0.0", 80) == "0.0.0.0:80"
    assert listen_address("", 80) == "0.0.0.0:80"
    assert listen_address("::", 80) == "[::]:80"


def test_app_conf_without_upstreams_answers_503() -> None:
    conf = render_app_conf("hello", ["hello.paas.test"], [], listen=LISTEN)
    lines = directives(conf)
    assert "upstream" not in conf
    assert f"listen {LISTEN};" in lines
    assert "server_name hello.paas.test;" in lines
    assert f'return 503 "{NOT_RUNNING_MESSAGE}\\n";' in lines


def test_app_conf_with_one_upstream() -> None:
    conf = render_app_conf("hello", ["hello.paas.test"], ["198.18.0.11:5000"], listen=LISTEN)
    lines = directives(conf)
    assert "upstream paas_app_hello {" in lines
    assert "server 198.18.0.11:5000 max_fails=1 fail_timeout=2s;" in lines
    for expected in [
        "keepalive 32;",
        "proxy_pass http://paas_app_hello;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection $paas_connection;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_set_header X-Request-Id $request_id;",
        "proxy_next_upstream error timeout;",
    ]:
        assert expected in lines, expected
    assert "503" not in conf


def test_app_conf_with_three_upstreams_and_several_names() -> None:
    upstreams = ["198.18.0.11:5000", "198.18.0.12:5000", "[fd00::3]:5000"]
    conf = render_app_conf(
        "my-app",
        ["my-app.paas.test", "www.example.com", "*.example.org"],
        upstreams,
        listen=LISTEN,
    )
    lines = directives(conf)
    for upstream in upstreams:
        assert f"server {upstream} max_fails=1 fail_timeout=2s;" in lines
    assert "server_name my-app.paas.test www.example.com *.example.org;" in lines
    assert conf.count("{") == conf.count("}")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a.com; include /etc/passwd",
        "a b",
        "UPPER.com",
        "a..b",
        "-a.com",
        "a.com\n",
        'a"',
        "x" * 254,
        "*",
        "a.*",
    ],
)
def test_unsafe_server_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_server_name(name)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "198.18.0.11",
        "198.18.0.11:0",
        "198.18.0.11:70000",
        "host:5000",
        "1.2.3.4:80; x",
        "1.2.3.4:-1",
    ],
)
def test_invalid_upstreams_are_refused(address: str) -> None:
    with pytest.raises(InvalidInput):
        validate_upstream(address)


def test_app_conf_needs_a_valid_app_and_a_name() -> None:
    with pytest.raises(InvalidInput):
        render_app_conf("hello", [], ["198.18.0.11:5000"], listen=LISTEN)
    with pytest.raises(InvalidInput):
        render_app_conf("../x", ["a.test"], [], listen=LISTEN)


def test_router_files_without_a_running_nginx(tmp_path: Path) -> None:
    router = Router(tmp_path / "nginx", 8080, "127.0.0.1")
    router.write_main()
    assert router.conf_file.read_text() == render_main_conf(tmp_path / "nginx", 8080, "127.0.0.1")
    assert router.command()[-2:] == ["-g", "daemon off;"]
    assert not router.is_running()
    assert router.apps() == set()
    assert router.set_app("hello", ["hello.test"], []) is True
    assert router.set_app("hello", ["hello.test"], []) is False  # unchanged: no write, no reload
    assert router.apps() == {"hello"}
    assert router.remove_app("hello") is True
    assert router.remove_app("hello") is False
    assert router.apps() == set()
