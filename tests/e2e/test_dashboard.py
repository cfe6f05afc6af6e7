"""End to end in a real browser: Debian's chromium driven by Playwright against the whole
platform. A wrong password is refused; sign in; open an app; scale web from 1 to 3 with the
+ button and see 3 replicas come up without a reload; set a config var from the config page
and roll it back with the rollback button; see a new log line arrive over server-sent events;
see a killed replica's crash show up within 2 s and its restart counted; a form post without
its CSRF token is refused. Screenshots go to ``$PAAS_TEST_ARTIFACTS`` (default
``tests/e2e/artifacts/``).

The tests run in order in one browser page and each builds on the state the previous ones
left."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paas.settings import Settings
from paas.state.events import Events
from paas.state.store import Store
from paas.web.auth import set_admin_password
from paas.wiring import redis_client
from tests.e2e.platform_fixture import Platform
from tests.e2e.test_push_deploy import commit, git, http_remote, make_app

playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page
expect = playwright_api.expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.root,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium"),
]

APP = "dash"
PASSWORD = "dashboard e2e password"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
APP_PY = """\
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
@app.get("/<path:path>")
def index(path=""):
    print("dashboard saw /" + path, flush=True)
    return os.environ.get("GREETING", "<unset>") + "\\n"
"""
LIVE = 2.0  # seconds within which the page must show a change of state


def artifacts() -> Path:
    default = Path(__file__).resolve().parent / "artifacts"
    path = Path(os.environ.get("PAAS_TEST_ARTIFACTS") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def deployed(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The app pushed once (v1), and the admin password set; the app destroyed at the end."""
    repo = make_app(tmp_path_factory.mktemp("dash") / APP, "unused")
    (repo / "app.py").write_text(APP_PY)
    commit(repo, "greet from the config")
    push = git(repo, "push", http_remote(platform, APP), "master")
    assert "Released v1" in push.stderr, push.stderr
    settings = Settings.from_env(platform.env)
    set_admin_password(Store(redis_client(settings), settings.instance), PASSWORD)
    try:
        yield platform
    finally:
        platform.cli("apps:destroy", APP, "--force")


@pytest.fixture(scope="module")
def errors() -> list[str]:
    """What the pages logged as errors (a script refused by the CSP would show here)."""
    return []


@pytest.fixture(scope="module")
def page(deployed: Platform, errors: list[str]) -> Iterator[Page]:
    """One page of a chromium with a fresh profile."""
    profile = Path(tempfile.mkdtemp(prefix="paas-chromium-"))
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path="/usr/bin/chromium", headless=True,
            args=CHROMIUM_ARGS, base_url=deployed.api, viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            tab = context.new_page()
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.on(
                "console",
                lambda msg: errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None,
            )
            tab.on(
                "response",
                lambda r: errors.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 400 else None,
            )  # fmt: skip
            yield tab
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def replica_states(platform: Platform) -> list[str]:
    result = platform.cli("ps", APP, "--json")
    assert result.returncode == 0, result.stderr
    return [r["state"] for r in json.loads(result.stdout)["replicas"]]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_wrong_password_is_refused(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_sign_in_and_open_the_app(page: Page) -> None:
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=APP, exact=True))
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("web 1/1")
    page.screenshot(path=str(artifacts() / "apps.png"), full_page=True)
    page.get_by_role("link", name=APP, exact=True).click()
    expect(page.get_by_role("heading", name=APP)).to_be_visible()
    expect(page.locator("#replicas tbody tr")).to_have_count(1)


def test_scale_web_from_1_to_3_with_the_buttons(page: Page, deployed: Platform) -> None:
    page.evaluate("window.notReloaded = true")
    plus = page.get_by_role("button", name="One replica more of web")
    plus.click()
    expect(page.get_by_label("Replicas of web")).to_have_value("2")
    expect(plus).to_be_enabled()
    plus.click()
    expect(page.get_by_role("status")).to_contain_text("Scaled web to 3.")
    wait_for(lambda: replica_states(deployed).count("running") == 3, 120, "3 running replicas")
    seen = time.monotonic()
    running = page.locator("#replicas tbody tr").filter(has_text="running")
    expect(running).to_have_count(3, timeout=LIVE * 1000)
    assert time.monotonic() - seen <= LIVE + 0.5
    expect(page.locator("#running-web")).to_have_text("3 of 3")
    assert page.evaluate("window.notReloaded") is True  # live, without a reload
    expect(page.locator("#replicas tbody tr").first).to_contain_text("MiB")  # from cgroups
    page.screenshot(path=str(artifacts() / "app-scaled-to-3.png"), full_page=True)


def test_config_change_then_roll_back(page: Page, deployed: Platform) -> None:
    host = f"{APP}.paas.test"
    assert deployed.get(host) == (200, "<unset>\n")
    page.get_by_role("link", name="Config").click()
    page.get_by_label("Key").fill("GREETING")
    page.get_by_label("Value", exact=True).fill("hello from the dashboard")
    page.get_by_role("button", name="Set", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(
        "Set GREETING: released v2", timeout=180_000
    )
    expect(page.get_by_role("link", name="Show and edit GREETING")).to_be_visible()
    assert "hello from the dashboard" not in page.content()  # hidden until asked
    assert deployed.get(host) == (200, "hello from the dashboard\n")

    page.get_by_role("link", name="Overview").click()
    page.get_by_role("button", name="Roll back to v1").click()
    first = page.locator("section", has=page.get_by_role("heading", name="Releases")).locator(
        "tbody tr"
    ).first
    expect(first).to_contain_text("v3", timeout=180_000)
    expect(first).to_contain_text("Rollback to v1")
    assert deployed.get(host) == (200, "<unset>\n")
    expect(page.locator("#replicas tbody tr").filter(has_text="v3")).to_have_count(3)
    page.screenshot(path=str(artifacts() / "app-rolled-back.png"), full_page=True)


def test_a_new_log_line_arrives(page: Page, deployed: Platform) -> None:
    page.get_by_role("link", name="Logs").click()
    log = page.get_by_role("log")
    expect(log.locator("li").first).to_be_visible()
    page.wait_for_timeout(1000)  # the event stream is open
    marker = f"marker-{time.monotonic_ns()}"
    assert deployed.get(f"{APP}.paas.test", f"/{marker}")[0] == 200
    expect(log).to_contain_text(f"dashboard saw /{marker}", timeout=5000)
    page.get_by_label("Process").select_option("web")
    page.get_by_role("button", name="Show").click()
    expect(log).to_contain_text(f"dashboard saw /{marker}")
    page.screenshot(path=str(artifacts() / "logs.png"), full_page=True)


def test_a_crash_shows_up_live(page: Page, deployed: Platform) -> None:
    """A killed replica is seen crashed and restarted by the platform (at once, the first
    time); the page shows the crash within 2 s of the platform recording it, and the slot's
    restart count."""
    page.get_by_role("link", name="Overview").click()
    rows = page.locator("#replicas tbody tr")
    expect(rows.filter(has_text="running")).to_have_count(3)
    settings = Settings.from_env(deployed.env)
    victim = rows.first.get_attribute("data-replica")
    dyno = rows.first.locator("th").inner_text()
    assert victim and dyno == "web.1"
    subprocess.run(
        ["runc", "--root", str(settings.runc_root), "kill", victim, "KILL"],
        check=True, timeout=30,
    )  # fmt: skip
    events = Events(redis_client(settings), settings.instance)
    wait_for(
        lambda: any(e.source == dyno and e.text.startswith("crashed")
                    for e in events.recent(APP, 50)),
        60, "the platform to record the crash",
    )  # fmt: skip
    expect(page.locator("#recent-events")).to_contain_text(
        f"{dyno} crashed, exit 137", timeout=LIVE * 1000
    )
    again = rows.filter(has=page.get_by_role("rowheader", name=dyno, exact=True))
    expect(again.filter(has_text="running").locator("td").nth(4)).to_have_text("1", timeout=60_000)
    page.screenshot(path=str(artifacts() / "app-after-crash.png"), full_page=True)


def test_a_form_post_without_its_csrf_token_is_refused(page: Page, errors: list[str]) -> None:
    page.get_by_role("link", name="Settings").click()
    form = page.locator("form", has=page.get_by_label("New token named"))
    form.locator('input[name="csrf_token"]').evaluate("input => input.remove()")
    page.get_by_label("New token named").fill("forged")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("alert")).to_contain_text("without its security token")
    page.goto("/settings")
    expect(page.get_by_role("row").filter(has_text="forged")).to_have_count(0)
    base = page.url.split("/settings")[0]
    assert errors == [
        f"401 POST {base}/signin",  # the wrong password
        f"400 POST {base}/settings/tokens",  # the missing CSRF token
    ]
