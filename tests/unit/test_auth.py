"""Signing in to the dashboard with Flask's test client over a private redis-server: the
password hash, session cookie flags, CSRF refusal, the sign-in rate limit, sign-out, the
session ending when the password changes, and the session key file."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from paas.applogs import AppLogs, LogLine, ProcessFilter
from paas.model import Replica
from paas.services import Services
from paas.settings import Settings
from paas.web import auth
from paas.web.app import create_app
from paas.wiring import services as wire_services
from tests.integration.test_applogs import redis_settings as redis_settings  # a fixture

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

PASSWORD = "correct horse battery"


@dataclass
class FakeQueue:
    """Records what would go to the worker; finishes each operation's stream at once, as the
    worker does when it is done (with ``answer`` as its closing message)."""

    services: Services | None = None
    answer: str = "Released v2: done"
    reconciles: list[str] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)

    def enqueue_deploy(self, build_id: str) -> None:
        raise AssertionError("no deploys here")

    def enqueue_reconcile(self, app: str) -> None:
        self.reconciles.append(app)

    def enqueue_operation(self, op_id: str) -> None:
        assert self.services is not None
        self.operations.append(op_id)
        self.services.logs.finish(op_id, True, self.answer)

    def enqueue_retire(self, delay: float) -> None:
        return None


@dataclass
class FakeHost:
    """The agent's side: replicas as set by a test; logs of replicas that wrote nothing."""

    replicas: list[Replica] = field(default_factory=list)
    applogs: AppLogs | None = None

    def observe(self, app: str | None = None) -> list[Replica]:
        return [r for r in self.replicas if app is None or r.key.app == app]

    def recent_logs(self, app: str, lines: int, process: ProcessFilter) -> list[LogLine]:
        assert self.applogs is not None
        return self.applogs.recent(app, lines, process)

    def follow_logs(
        self, app: str, lines: int, process: ProcessFilter
    ) -> Generator[list[LogLine], None, None]:
        assert self.applogs is not None
        return self.applogs.follow(app, lines, process)


@dataclass
class Dash:
    app: Flask
    services: Services
    queue: FakeQueue
    host: FakeHost

    def client(self) -> FlaskClient:
        return self.app.test_client()


@pytest.fixture
def dash(redis_settings: Settings) -> Iterator[Dash]:
    """The whole web app (API and dashboard) over an emptied store, the admin password set."""
    client = redis.Redis.from_url(redis_settings.effective_redis_url)
    client.flushall()
    queue = FakeQueue()
    services = wire_services(redis_settings, queue)
    queue.services = services
    host = FakeHost()
    auth.set_admin_password(services.store, PASSWORD)
    yield Dash(create_app(services, host), services, queue, host)  # type: ignore[arg-type]
    shutil.rmtree(redis_settings.repos_dir, ignore_errors=True)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def sign_in(
    client: FlaskClient, password: str = PASSWORD, next_path: str = "", **extra: Any
) -> Any:
    form = {"csrf_token": csrf_of(client.get("/signin").text), "username": "admin",
            "password": password, "next": next_path}  # fmt: skip
    return client.post("/signin", data=form, **extra)


def set_cookie_header(response: Any) -> str:
    cookies = [v for k, v in response.headers.items() if k == "Set-Cookie"]
    assert len(cookies) == 1, cookies
    return str(cookies[0])


# --- the account ---------------------------------------------------------------------------


def test_password_is_stored_as_scrypt_hash(dash: Dash) -> None:
    stored = dash.services.store.admin_password_hash()
    assert stored is not None and stored.startswith("scrypt:") and PASSWORD not in stored
    with pytest.raises(auth.InvalidInput, match="at least"):
        auth.set_admin_password(dash.services.store, "short")


def test_sign_in_sets_a_hardened_session_cookie(dash: Dash) -> None:
    client = dash.client()
    assert client.get("/").headers["Location"].startswith("/signin?next=/")
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = set_cookie_header(response)
    assert cookie.startswith("paas_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Expires=" in cookie  # a permanent session, for SESSION_LIFETIME
    assert client.get("/").status_code == 200


def test_cookie_is_secure_behind_https(dash: Dash) -> None:
    direct = sign_in(dash.client(), base_url="https://localhost")
    assert "; Secure" in set_cookie_header(direct)
    proxied = sign_in(dash.client(), headers={"X-Forwarded-Proto": "https"})
    assert "; Secure" in set_cookie_header(proxied)


def test_wrong_password_is_refused(dash: Dash) -> None:
    client = dash.client()
    response = sign_in(client, password="wrong password!")
    assert response.status_code == 401
    assert "Wrong user name or password." in response.text
    assert client.get("/").status_code == 302  # still signed out


def test_next_only_leads_to_this_site(dash: Dash) -> None:
    for target, landing in [("https://evil.example/", "/"), ("//evil.example/x", "/"),
                            ("/settings", "/settings")]:  # fmt: skip
        response = sign_in(dash.client(), next_path=target)
        assert response.headers["Location"] == landing, target


# --- CSRF ----------------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_refused(dash: Dash) -> None:
    client = dash.client()
    client.get("/signin")
    refused = client.post("/signin", data={"username": "admin", "password": PASSWORD})
    assert refused.status_code == 400 and "security token" in refused.text
    sign_in(client)
    dash.services.create_app("hello")
    for path, data in [
        ("/apps/hello/scale", {"process_type": "web", "count": "3"}),
        ("/apps/hello/scale", {"process_type": "web", "count": "3", "csrf_token": "forged"}),
        ("/settings/tokens", {"name": "x"}),
        ("/signout", {}),
    ]:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "security token" in response.text
    as_json = client.post("/apps/hello/scale", data={"process_type": "web", "count": "3"},
                          headers={"Accept": "application/json"})  # fmt: skip
    assert as_json.status_code == 400 and as_json.json["error"] == "csrf"
    assert dash.services.store.formation("hello") == {}
    assert dash.queue.reconciles == []
    assert client.get("/").status_code == 200  # still signed in


def test_the_csrf_header_is_accepted_for_script_posts(dash: Dash) -> None:
    client = dash.client()
    sign_in(client)
    token = csrf_of(client.get("/settings").text)
    response = client.post(
        "/settings/tokens", data={"name": "ci"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200 and "copy it now" in response.text


def test_json_api_is_not_under_the_csrf_check(dash: Dash) -> None:
    token = dash.services.store.create_token("admin", "cli")
    response = dash.client().post(
        "/api/v1/apps", json={"name": "viaapi"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201


# --- rate limit ----------------------------------------------------------------------------


def test_sign_in_is_rate_limited_per_address(dash: Dash) -> None:
    client = dash.client()
    for _ in range(auth.MAX_FAILURES):
        assert sign_in(client, password="nope nope nope").status_code == 401
    blocked = sign_in(client)  # the right password, but too late
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.text
    assert 0 < int(blocked.headers["Retry-After"]) <= auth.WINDOW
    other = sign_in(dash.client(), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 429  # the account is limited too


def test_rate_limit_counts_per_account_from_many_addresses(dash: Dash) -> None:
    for n in range(auth.MAX_FAILURES):
        address = {"REMOTE_ADDR": f"10.0.0.{n + 1}"}
        assert sign_in(dash.client(), "bad password!", environ_base=address).status_code == 401
    assert sign_in(dash.client(), environ_base={"REMOTE_ADDR": "10.0.1.1"}).status_code == 429
    count, left = dash.services.store.failures("signin:user:admin")
    assert count == auth.MAX_FAILURES and 0 < left <= auth.WINDOW


def test_a_success_clears_earlier_failures(dash: Dash) -> None:
    client = dash.client()
    for _ in range(auth.MAX_FAILURES - 1):
        sign_in(client, password="nope nope nope")
    assert sign_in(client).status_code == 303
    assert dash.services.store.failures("signin:addr:127.0.0.1") == (0, 0.0)


# --- sessions ------------------------------------------------------------------------------


def test_sign_out_ends_the_session(dash: Dash) -> None:
    client = dash.client()
    sign_in(client)
    home = client.get("/")
    assert client.post("/signout", data={"csrf_token": csrf_of(home.text)}).status_code == 303
    assert client.get("/").status_code == 302


def test_a_new_password_ends_open_sessions(dash: Dash) -> None:
    client = dash.client()
    sign_in(client)
    auth.set_admin_password(dash.services.store, "another good password")
    assert client.get("/").status_code == 302


def test_no_account_yet_says_what_to_do(dash: Dash) -> None:
    client = dash.client()
    redis.Redis.from_url(dash.services.settings.effective_redis_url).delete(
        f"paas:{dash.services.settings.instance}:admin:password"
    )
    response = sign_in(client)
    assert response.status_code == 401 and "admin:password" in response.text


def test_secret_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "session-secret"
    first = auth.ensure_secret_key(path)
    assert len(first) == 64 and os.stat(path).st_mode & 0o777 == 0o600
    assert auth.ensure_secret_key(path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["session-secret"]
