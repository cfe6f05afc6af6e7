"""The dashboard's pages and forms without JavaScript (Flask's test client over a private
redis-server; replicas and the worker are fakes): app states, the app page, scaling with the
number field and the + / - buttons, rollback, config values hidden until asked, domains,
logs, build logs, events, API tokens, escaping and the security headers."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from paas.applogs import AppLogs
from paas.model import Release, Replica, ReplicaKey, ReplicaState
from paas.runtime.spec import ContainerInfo
from paas.state.events import Event
from paas.state.store import Build
from paas.web.dashboard.overview import ProcessRow, app_state, process_rows, replica_rows
from tests.unit.test_auth import Dash, csrf_of, sign_in
from tests.unit.test_auth import dash as dash  # a fixture
from tests.unit.test_auth import redis_settings as redis_settings  # a fixture

NOW = time.time()


def release(app: str, version: int, **kw: Any) -> Release:
    fields: dict[str, Any] = {
        "app": app, "version": version, "image_id": f"img{version}", "config": {},
        "processes": {"web": "gunicorn app:app", "worker": "python work.py"},
        "git_rev": f"{version:040x}", "description": f"Deploy {version:07x}",
        "created_at": NOW - 600 + version, "created_by": "git",
    }  # fmt: skip
    return Release(**{**fields, **kw})


def replica(app: str, dyno: str, state: ReplicaState = ReplicaState.RUNNING, **kw: Any) -> Replica:
    ptype, index = dyno.split(".")
    fields: dict[str, Any] = {
        "container_id": f"{app}.{dyno}.{index}", "key": ReplicaKey(app, ptype, int(index)),
        "release": 1, "state": state, "address": f"198.18.0.{index}", "started_at": NOW - 65,
    }  # fmt: skip
    return Replica(**{**fields, **kw})


@dataclass
class NoContainers:
    root: Path

    def list(self) -> list[ContainerInfo]:
        return []

    def log_path(self, container_id: str) -> Path:
        return self.root / container_id


@pytest.fixture
def client(dash: Dash, tmp_path: Path) -> FlaskClient:
    s = dash.services
    dash.host.applogs = AppLogs(s.store, s.events, NoContainers(tmp_path))
    c = dash.client()
    sign_in(c)
    return c


def deployed(dash: Dash, app: str = "hello", versions: int = 2) -> None:
    s = dash.services
    s.create_app(app)
    for v in range(1, versions + 1):
        s.store.add_release(release(app, v))
    s.store.set_formation(app, {"web": 1, "worker": 0})


def post(client: FlaskClient, path: str, data: dict[str, str], **kw: Any) -> Any:
    token = csrf_of(client.get("/settings").text)
    return client.post(path, data={"csrf_token": token, **data}, **kw)


def flashed(client: FlaskClient, response: Any) -> str:
    assert response.status_code == 303, response.text
    return client.get(response.headers["Location"]).text


# --- the read model --------------------------------------------------------------------------


def test_app_state_words() -> None:
    r1 = release("a", 1)
    up, starting = replica("a", "web.1"), replica("a", "web.2", ReplicaState.STARTING)
    crashed = replica("a", "web.3", ReplicaState.CRASHED, exit_code=1)
    build = Build("a-1", "a", "abc", "running", NOW)
    assert app_state(r1, False, build, [up]) == "deploying"
    assert app_state(r1, False, Build("a-1", "a", "abc", "succeeded", NOW), [up]) == "running"
    assert app_state(r1, True, None, []) == "stopped"
    assert app_state(None, False, None, []) == "new"
    assert app_state(r1, False, None, [up, crashed]) == "crashed"
    assert app_state(r1, False, None, [starting]) == "deploying"
    assert app_state(r1, False, None, []) == "stopped"


def test_process_rows_count_the_current_release_apart() -> None:
    rows = process_rows(
        release("a", 2, processes={"web": "w", "release": "migrate"}), {"web": 2},
        [replica("a", "web.1", release=2), replica("a", "web.1", release=1),
         replica("a", "web.2", ReplicaState.STARTING, release=2)],
    )  # fmt: skip
    assert rows == (ProcessRow("web", "w", desired=2, running=1, others=1),)


def test_replica_rows_count_restarts_of_the_release_and_keep_the_last_exit() -> None:
    r2 = release("a", 2, created_at=NOW - 100)
    events = [
        Event("1-0", NOW - 200, "a", "web.1", "crashed, exit 1"),  # before v2: not counted
        Event("2-0", NOW - 50, "a", "web.1", "crashed, exit 137 (out of memory)"),
        Event("3-0", NOW - 40, "a", "web.1", "up at 198.18.0.1"),
        Event("4-0", NOW - 30, "a", "web.2", "exited, exit 0"),
    ]
    rows = replica_rows(
        [replica("a", "web.1", release=2), replica("a", "web.2", ReplicaState.CRASHED,
                                                    release=2, exit_code=3)],
        {2: r2}, events, "paas-nosuch", NOW,
    )  # fmt: skip
    assert [r.restarts for r in rows] == [1, 1]
    assert rows[0].last_exit == "crashed, exit 137 (out of memory)"
    assert rows[0].uptime == pytest.approx(65)
    assert rows[1].last_exit == "exit 3" and rows[1].uptime is None
    assert rows[0].memory_bytes is None  # no such cgroup here


# --- pages -----------------------------------------------------------------------------------


def test_apps_page_lists_every_app_with_state_release_counts_and_url(
    dash: Dash, client: FlaskClient
) -> None:
    deployed(dash, "hello")
    dash.services.create_app("empty")
    dash.host.replicas = [replica("hello", "web.1", release=2)]
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    row = text[text.index('href="/apps/hello"') :].split("</tr>")[0]
    assert "state-running" in row and "v2" in row and "web 1/1" in row and "worker 0/0" in row
    assert "http://hello.paas.test/" in row
    assert "state-new" in text[text.index('href="/apps/empty"') :].split("</tr>")[0]
    live = client.get("/live")
    assert live.status_code == 200 and 'id="apps" data-live' in live.text


def test_app_page_shows_processes_replicas_releases_domains_and_events(
    dash: Dash, client: FlaskClient
) -> None:
    deployed(dash)
    dash.services.store.add_domain("hello", "www.hello.test")
    dash.services.events.emit("hello", "web.1", "crashed, exit 137 (out of memory)")
    dash.host.replicas = [replica("hello", "web.1", release=2)]
    text = client.get("/apps/hello").text
    assert 'id="count-web"' in text and 'value="1"' in text
    assert re.search(r'id="running-web" data-live>1 of 1<', text)
    # address and uptime (rendered against the wall clock, so minutes since collection)
    assert "198.18.0.1" in text and re.search(r"\b\d+ min\b", text)
    assert "Roll back to v1" in text and "Roll back to v2" not in text
    assert 'href="/apps/hello/builds/v1"' in text
    assert "www.hello.test" in text and "hello.paas.test" in text
    assert "out of memory" in text
    live = client.get("/apps/hello/live").text
    assert 'id="replicas" data-live' in live and 'id="app-state" data-live' in live
    assert client.get("/apps/nosuch").status_code == 404


def test_scale_with_field_and_buttons_goes_through_ps_scale(
    dash: Dash, client: FlaskClient
) -> None:
    deployed(dash)
    done = post(client, "/apps/hello/scale", {"process_type": "web", "count": "1", "op": "inc"},
                headers={"Referer": "http://localhost/apps/hello"})  # fmt: skip
    assert done.headers["Location"] == "/apps/hello"
    assert "Scaled web to 2." in flashed(client, done)
    assert dash.services.store.formation("hello")["web"] == 2
    post(client, "/apps/hello/scale", {"process_type": "web", "count": "3", "op": "set"})
    assert dash.services.store.formation("hello")["web"] == 3
    post(client, "/apps/hello/scale", {"process_type": "web", "count": "3", "op": "dec"})
    assert dash.services.store.formation("hello")["web"] == 2
    assert dash.queue.reconciles == ["hello"] * 3
    as_json = post(client, "/apps/hello/scale", {"process_type": "worker", "count": "1"},
                   headers={"Accept": "application/json"})  # fmt: skip
    assert as_json.json == {"message": "Scaled worker to 1."}
    bad = post(client, "/apps/hello/scale", {"process_type": "nope", "count": "1"})
    assert 'No process type "nope"' in html.unescape(flashed(client, bad))
    for odd in ("²", "1.5", "-1", ""):
        refused = post(client, "/apps/hello/scale", {"process_type": "web", "count": odd},
                       headers={"Accept": "application/json"})  # fmt: skip
        assert refused.status_code == 400 and "whole number" in refused.json["message"]
    too_many = post(client, "/apps/hello/scale", {"process_type": "web", "count": "99"},
                    headers={"Accept": "application/json"})  # fmt: skip
    assert too_many.status_code == 400 and "use 0 to 50" in too_many.json["message"]
    assert dash.services.store.formation("hello") == {"web": 2, "worker": 1}


def test_rollback_button_requests_the_release(dash: Dash, client: FlaskClient) -> None:
    deployed(dash)
    dash.queue.answer = "Released v3: rollback to v1"
    done = post(client, "/apps/hello/rollback", {"version": "1"})
    assert "Released v3: rollback to v1." in flashed(client, done)
    op = dash.services.store.get_operation(dash.queue.operations[-1])
    assert (op.kind, op.params, op.actor) == ("rollback", {"version": 1}, "admin")
    missing = post(client, "/apps/hello/rollback", {"version": "9"})
    assert "has no release v9" in flashed(client, missing)
    for bad in ("0", "²", "-1", ""):
        refused = post(client, "/apps/hello/rollback", {"version": bad})
        assert "Choose a release." in flashed(client, refused), bad
    assert len(dash.queue.operations) == 1


def test_config_values_are_hidden_until_asked_and_editable(
    dash: Dash, client: FlaskClient
) -> None:
    deployed(dash)
    dash.services.store.replace_config("hello", {"SECRET": "<s3cret>", "OTHER": "x"})
    hidden = client.get("/apps/hello/config").text
    assert "s3cret" not in hidden and "SECRET" in hidden
    shown = client.get("/apps/hello/config?show=SECRET").text
    assert 'value="&lt;s3cret&gt;"' in shown and 'value="x"' not in shown
    every = client.get("/apps/hello/config?show=*").text
    assert "&lt;s3cret&gt;" in every and 'value="x"' in every
    done = post(client, "/apps/hello/config", {"key": "NEW", "value": "1", "restart": "1"})
    assert "Set NEW: released v2, the processes restarted with it." in flashed(client, done)
    op = dash.services.store.get_operation(dash.queue.operations[-1])
    assert op.params == {"set": {"NEW": "1"}, "unset": [], "restart": True}
    dash.queue.answer = "Config changed; it applies from the next deploy"
    quiet = post(client, "/apps/hello/config", {"key": "OTHER", "op": "unset"})
    assert "Not restarted" in flashed(client, quiet)
    op = dash.services.store.get_operation(dash.queue.operations[-1])
    assert op.params == {"set": {}, "unset": ["OTHER"], "restart": False}
    bad = post(client, "/apps/hello/config", {"key": "1BAD", "value": "v"})
    assert "Invalid config key" in html.unescape(flashed(client, bad))


def test_domains_are_added_and_removed(dash: Dash, client: FlaskClient) -> None:
    deployed(dash)
    dash.queue.answer = "Routed hello"
    done = post(client, "/apps/hello/domains", {"domain": "WWW.Hello.test"})
    assert "Added www.hello.test." in flashed(client, done)
    assert dash.services.store.domains("hello") == ["www.hello.test"]
    post(client, "/apps/hello/domains", {"domain": "www.hello.test", "op": "remove"})
    assert dash.services.store.domains("hello") == []


def test_process_actions(dash: Dash, client: FlaskClient) -> None:
    deployed(dash)
    dash.queue.answer = "Stopped hello"
    assert "Stopped hello." in flashed(client, post(client, "/apps/hello/ps/stop", {}))
    bad = post(client, "/apps/hello/ps/explode", {}, headers={"Accept": "application/json"})
    assert bad.status_code == 400
    kinds = [dash.services.store.get_operation(o).kind for o in dash.queue.operations]
    assert kinds == ["stop"]


def test_logs_build_log_and_events_pages(dash: Dash, client: FlaskClient) -> None:
    deployed(dash, versions=1)
    s = dash.services
    s.events.emit("hello", "deploy", "v1 by <git>")
    build = s.store.new_build("hello", "a" * 40)
    s.store.save_build(Build(build.id, "hello", "a" * 40, "succeeded", NOW, release=1))
    s.logs.append(build.id, "-----> Installing <requirements>")
    s.logs.finish(build.id, True, "Released v1")
    logs = client.get("/apps/hello/logs?process=web").text
    assert 'data-stream="/apps/hello/logs/stream?process=web"' in logs
    assert client.get("/apps/hello/logs?process=web.x").status_code == 400
    everything = client.get("/apps/hello/logs").text
    assert "paas[deploy]: v1 by &lt;git&gt;" in everything
    out = client.get("/apps/hello/builds/v1").text
    assert "-----&gt; Installing &lt;requirements&gt;" in out and "Released v1" in out
    events = client.get("/apps/hello/events").text
    assert "v1 by &lt;git&gt;" in events and "<git>" not in events


def test_log_stream_needs_a_session(dash: Dash) -> None:
    deployed(dash)
    response = dash.client().get("/apps/hello/logs/stream",
                                 headers={"Accept": "text/event-stream"})  # fmt: skip
    assert response.status_code == 401


def test_tokens_are_listed_created_once_and_revoked(
    dash: Dash, client: FlaskClient
) -> None:
    store = dash.services.store
    store.add_token("admin", "legacy-token")  # as setup adds it: no name, no time
    created = post(client, "/settings/tokens", {"name": "laptop"})
    token = re.search(r'<code class="secret">([^<]+)</code>', created.text)
    assert token and store.token_owner(token.group(1)) == "admin"
    listed = client.get("/settings").text
    assert token.group(1) not in listed  # shown once only
    assert "laptop" in listed and "unknown" in listed  # the legacy token has no time
    (laptop,) = [t for t in store.tokens() if t[2] == "laptop"]
    done = post(client, "/settings/tokens/revoke", {"id": laptop[0]})
    assert "Token revoked" in flashed(client, done)
    assert store.token_owner(token.group(1)) is None
    again = post(client, "/settings/tokens/revoke", {"id": laptop[0]})
    assert "revoked already" in flashed(client, again)


def test_pages_send_security_headers_and_no_inline_script(
    dash: Dash, client: FlaskClient
) -> None:
    deployed(dash)
    for path in ("/", "/apps/hello", "/apps/hello/config", "/settings", "/signin"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
        assert not re.search(r"\son[a-z]+=", response.text), path
        assets = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', response.text)
        assert assets and all(a.startswith("/assets/") for a in assets), assets
    js = client.get("/assets/dashboard.js")
    assert js.status_code == 200 and js.headers.get("Cache-Control") != "no-store"


def test_every_form_has_its_csrf_token(dash: Dash, client: FlaskClient) -> None:
    deployed(dash)
    dash.services.store.add_domain("hello", "www.hello.test")
    dash.services.store.replace_config("hello", {"A": "1"})
    for path in ("/", "/apps/hello", "/apps/hello/config?show=A", "/settings"):
        text = client.get(path).text
        for form in re.findall(r'<form method="post".*?</form>', text, re.S):
            assert 'name="csrf_token"' in form, form
