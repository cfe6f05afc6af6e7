"""The dashboard's routes: sign-in, the apps, one app (processes, replicas, releases, config,
domains, logs, builds, events) and the API tokens.

Every state-changing route is a form post that redirects (303) back with a message; a post
sent by the page's script (``Accept: application/json``) gets the message as JSON instead.
Every change goes through ``Services``, the same use cases the JSON API calls.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from paas.applogs import ProcessFilter
from paas.buildlogs import BuildLogs
from paas.errors import InvalidInput, PaasError
from paas.model import validate_app_name
from paas.services import MAX_SCALE, Services
from paas.web import auth
from paas.web.api_logs import HEARTBEAT, event_stream
from paas.web.dashboard.overview import Overview
from paas.web.extensions import host

dashboard = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

LOG_LINES = 200
EVENT_LINES = 200
CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
ACTIONS = {"restart": "Restarted", "stop": "Stopped", "start": "Started"}


def _services() -> Services:
    services: Services = current_app.extensions["paas.services"]
    return services


def _overview() -> Overview:
    return Overview(_services(), host())


def _local(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another host), else None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or "\\" in target:
        return None
    return target


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _back(default: str) -> str:
    """Where a form post returns: the page it was sent from (same site), else ``default``."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host:
        path = referrer.path + (f"?{referrer.query}" if referrer.query else "")
        return _local(path) or default
    return default


def _done(message: str, default: str) -> Any:
    if _wants_json():
        return {"message": message}
    flash(message, "ok")
    return redirect(_back(default), 303)


# --- guard, headers, errors, template helpers ------------------------------------------------


@dashboard.before_request
def _guard() -> Any:
    if request.endpoint == "dashboard.static":
        return None
    if request.endpoint != "dashboard.signin":
        user = auth.current_user(_services().store)
        if user is None:
            if request.accept_mimetypes.best in ("application/json", "text/event-stream"):
                return jsonify(error="unauthorized", message="Sign in again."), 401
            return redirect(url_for("dashboard.signin", next=request.full_path.rstrip("?")))
        g.user = user
    auth.check_csrf()
    return None


@dashboard.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "dashboard.static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@dashboard.errorhandler(PaasError)
def _error(exc: PaasError) -> Any:
    status = exc.http_status
    headers = {}
    if isinstance(exc, auth.TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    if request.endpoint == "dashboard.signin":
        return render_template("signin.html", error=exc.message, next=_next()), status, headers
    if _wants_json():
        return jsonify(error=exc.kind, message=exc.message), status, headers
    if request.method in auth.SAFE_METHODS or isinstance(exc, auth.CsrfRefused):
        page = render_template("error.html", message=exc.message, status=status)
        return page, status, headers
    flash(exc.message, "error")
    return redirect(_back(url_for("dashboard.apps")), 303)


@dashboard.app_template_global()
def csrf_token() -> str:
    return auth.csrf_token()


@dashboard.app_template_global()
def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        auth.CSRF_FIELD, auth.csrf_token()
    )


@dashboard.app_template_filter()
def ago(when: float | None) -> str:
    if when is None:
        return "never"
    return f"{duration(max(0.0, time.time() - when))} ago"


@dashboard.app_template_filter()
def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


@dashboard.app_template_filter()
def iso(when: float | None) -> str:
    if when is None:
        return ""
    return datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(timespec="seconds")


@dashboard.app_template_filter()
def size(count: int | None) -> str:
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"


# --- signing in ------------------------------------------------------------------------------


def _next() -> str:
    return _local(request.values.get("next")) or url_for("dashboard.apps")


@dashboard.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    if request.method == "GET":
        return render_template("signin.html", error=None, next=_next())
    client = request.remote_addr or "unknown"
    auth.sign_in(
        _services().store, request.form.get("username", ""), request.form.get("password", ""),
        client,
    )  # fmt: skip
    return redirect(_next(), 303)


@dashboard.post("/signout")
def signout() -> Any:
    auth.sign_out()
    return redirect(url_for("dashboard.signin"), 303)


# --- apps ------------------------------------------------------------------------------------


@dashboard.get("/")
def apps() -> Any:
    return render_template("apps.html", apps=_overview().apps())


@dashboard.get("/live")
def apps_live() -> Any:
    return render_template("_apps_live.html", apps=_overview().apps())


@dashboard.get("/apps/<name>")
def app_page(name: str) -> Any:
    services = _services()
    page = Overview(services, host()).app(validate_app_name(name))
    return render_template(
        "app.html", page=page, releases=services.releases(name), max_scale=MAX_SCALE,
        platform_host=f"{name}.{services.settings.domain}",
    )


@dashboard.get("/apps/<name>/live")
def app_live(name: str) -> Any:
    page = _overview().app(validate_app_name(name))
    return render_template("_app_live.html", page=page)


def _number(raw: str, least: int, message: str) -> int:
    """A whole number from ``least`` on, in the digits 0-9 (``isdigit`` also takes ``²``)."""
    text = raw.strip()
    if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) < least:
        raise InvalidInput(message)
    return int(text)


@dashboard.post("/apps/<name>/scale")
def scale(name: str) -> Any:
    app = validate_app_name(name)
    ptype = request.form.get("process_type", "")
    count = _number(
        request.form.get("count", ""), 0,
        f"Give the number of replicas as a whole number from 0 to {MAX_SCALE}.",
    )
    count += {"inc": 1, "dec": -1}.get(request.form.get("op", "set"), 0)
    formation = _services().scale(app, {ptype: max(0, count)})
    return _done(f"Scaled {ptype} to {formation.get(ptype, 0)}.", url_for(".app_page", name=app))


@dashboard.post("/apps/<name>/rollback")
def rollback(name: str) -> Any:
    app = validate_app_name(name)
    version = _number(request.form.get("version", "").lstrip("v"), 1, "Choose a release.")
    message = _services().rollback(app, version, g.user)
    return _done(f"{message}.", url_for(".app_page", name=app))


@dashboard.post("/apps/<name>/ps/<action>")
def process_action(name: str, action: str) -> Any:
    app = validate_app_name(name)
    services = _services()
    if action == "restart":
        message = services.restart(app, request.form.get("process_type") or None, g.user)
    elif action == "stop":
        message = services.stop(app, g.user)
    elif action == "start":
        message = services.start(app, g.user)
    else:
        raise InvalidInput(f"Unknown action {action!r}: use restart, stop or start.")
    return _done(f"{message}.", url_for(".app_page", name=app))


# --- config ----------------------------------------------------------------------------------


@dashboard.get("/apps/<name>/config")
def config(name: str) -> Any:
    app = validate_app_name(name)
    values = _services().config(app)
    shown = request.args.get("show", "")
    return render_template(
        "config.html",
        app=app,
        values=values,
        shown=set(values) if shown == "*" else {shown} & set(values),
    )


@dashboard.post("/apps/<name>/config")
def set_config(name: str) -> Any:
    app = validate_app_name(name)
    key = request.form.get("key", "").strip()
    restart = request.form.get("restart") == "1"
    services = _services()
    if request.form.get("op") == "unset":
        release = services.set_config(app, {}, [key], restart, g.user)
        change = f"Removed {key}"
    else:
        value = request.form.get("value", "").replace("\r\n", "\n")
        release = services.set_config(app, {key: value}, [], restart, g.user)
        change = f"Set {key}"
    if release is not None:
        message = f"{change}: released {release}, the processes restarted with it."
    elif restart:
        message = f"{change}. Nothing runs yet: it applies from the first deploy."
    else:
        message = f"{change}. Not restarted: it applies from the next deploy or restart."
    return _done(message, url_for(".config", name=app))


# --- domains ---------------------------------------------------------------------------------


@dashboard.post("/apps/<name>/domains")
def domains(name: str) -> Any:
    app = validate_app_name(name)
    domain = request.form.get("domain", "")
    services = _services()
    if request.form.get("op") == "remove":
        services.remove_domain(app, domain, g.user)
        message = f"Removed {domain}."
    else:
        services.add_domain(app, domain, g.user)
        message = f"Added {domain.strip().lower()}."
    return _done(message, url_for(".app_page", name=app))


# --- logs, builds and events ---------------------------------------------------------------


@dashboard.get("/apps/<name>/logs")
def logs(name: str) -> Any:
    app = validate_app_name(name)
    process = ProcessFilter.parse(request.args.get("process"))
    page = _overview().app(app)
    lines = host().recent_logs(app, LOG_LINES, process)
    return render_template(
        "logs.html", page=page, lines=lines, process=process.process or "", count=LOG_LINES
    )


@dashboard.get("/apps/<name>/logs/stream")
def log_stream(name: str) -> Any:
    app = validate_app_name(name)
    process = ProcessFilter.parse(request.args.get("process"))
    batches = host().follow_logs(app, LOG_LINES, process)
    return Response(
        event_stream(batches, HEARTBEAT),
        mimetype="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


@dashboard.get("/apps/<name>/builds/<ref>")
def build_log(name: str, ref: str) -> Any:
    app = validate_app_name(name)
    services = _services()
    output = BuildLogs(services.store, services.logs).build_output(app, ref)
    return render_template("build.html", app=app, output=output, ref=ref)


@dashboard.get("/apps/<name>/events")
def events(name: str) -> Any:
    app = validate_app_name(name)
    services = _services()
    services.store.get_app(app)
    listed = list(reversed(services.events.recent(app, EVENT_LINES)))
    return render_template("events.html", app=app, events=listed)


# --- settings: API tokens --------------------------------------------------------------------


@dashboard.get("/settings")
def settings() -> Any:
    return render_template("settings.html", tokens=_services().store.tokens(), created=None)


@dashboard.post("/settings/tokens")
def create_token() -> Any:
    name = request.form.get("name", "").strip()
    if not 0 < len(name) <= 64:
        raise InvalidInput("Name the token (up to 64 characters), e.g. ci or laptop.")
    store = _services().store
    token = store.create_token(g.user, name)
    # Shown once, in this answer only (not kept in a flash message: that is a cookie).
    return render_template("settings.html", tokens=store.tokens(), created=(name, token))


@dashboard.post("/settings/tokens/revoke")
def revoke_token() -> Any:
    _services().store.revoke_token(request.form.get("id", ""))
    return _done("Token revoked: it no longer works.", url_for(".settings"))
