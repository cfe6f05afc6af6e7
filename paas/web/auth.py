"""Signing in to the dashboard: the admin account, session cookies, CSRF tokens and the
sign-in rate limit.

* The admin password is stored as a werkzeug scrypt hash (``Store.admin_password_hash``).
* Sessions are Flask's signed cookies (key in a 0600 file under the platform root), named
  ``paas_session``, HttpOnly, SameSite=Lax, and Secure when the request came over HTTPS (or
  through a proxy that says so in ``X-Forwarded-Proto``). A session holds the user, its CSRF
  token and a stamp of the password hash it was opened with: changing the password ends
  every session.
* Every state-changing request of the dashboard carries the session's CSRF token, in the form
  field ``csrf_token`` or the ``X-CSRF-Token`` header (the JSON API uses bearer tokens and is
  not under this check).
* Failed sign-ins are counted in Redis per client address and per account: after
  ``MAX_FAILURES`` within ``WINDOW`` seconds, further attempts are refused until the window
  ends, even with the right password.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import check_password_hash, generate_password_hash

from paas.errors import InvalidInput, PaasError, Unauthorized
from paas.settings import Settings
from paas.state.store import Store

ADMIN = "admin"
MAX_FAILURES = 5
WINDOW = 300.0  # seconds
MIN_PASSWORD = 10
SESSION_LIFETIME = timedelta(hours=12)
SECRET_KEY_FILE = "session-secret"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TooManyAttempts(PaasError):
    http_status = 429
    kind = "too_many_attempts"

    def __init__(self, retry_after: float) -> None:
        minutes = max(1, round(retry_after / 60))
        super().__init__(
            f"Too many failed sign-ins. Try again in {minutes} minute{'s' * (minutes != 1)}."
        )
        self.retry_after = max(1, int(retry_after + 0.999))


class CsrfRefused(InvalidInput):
    kind = "csrf"


# --- the admin account ---------------------------------------------------------------------


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def set_admin_password(store: Store, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"The admin password must have at least {MIN_PASSWORD} characters.")
    store.set_admin_password_hash(hash_password(password))


def _stamp(password_hash: str) -> str:
    """A short digest of the password hash, kept in the session to end it on a change."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def sign_in(store: Store, username: str, password: str, client: str) -> None:
    """Check a sign-in attempt from address ``client`` and open the session, or raise
    ``TooManyAttempts`` or ``Unauthorized``."""
    keys = (f"signin:addr:{client}", f"signin:user:{username.strip().lower()[:64]}")
    for key in keys:
        count, left = store.failures(key)
        if count >= MAX_FAILURES:
            raise TooManyAttempts(left)
    stored = store.admin_password_hash()
    if stored is None:
        raise Unauthorized(
            "There is no admin account yet: run paas-platform admin:password on the host."
        )
    if not (
        hmac.compare_digest(username.strip(), ADMIN) and check_password_hash(stored, password)
    ):
        for key in keys:
            store.count_failure(key, WINDOW)
        raise Unauthorized("Wrong user name or password.")
    for key in keys:
        store.clear_failures(key)
    session.clear()  # a new session: nothing carried over from before the sign-in
    session.permanent = True
    session["user"] = ADMIN
    session["stamp"] = _stamp(stored)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def current_user(store: Store) -> str | None:
    """The signed-in user, if the session is valid for the current password."""
    user = session.get("user")
    stored = store.admin_password_hash() if user else None
    if user is None or stored is None or session.get("stamp") != _stamp(stored):
        return None
    return str(user)


def sign_out() -> None:
    session.clear()


# --- CSRF ----------------------------------------------------------------------------------


def csrf_token() -> str:
    """The session's CSRF token (created on first use: the sign-in form has one too)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Refuse a state-changing request without the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused(
            "This form was sent without its security token, or with an old one. "
            "Reload the page and send it again."
        )


# --- session cookies -----------------------------------------------------------------------


def _over_https(req: Request) -> bool:
    return req.is_secure or req.headers.get("X-Forwarded-Proto", "").lower() == "https"


class _SessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions whose cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return _over_https(request) or super().get_cookie_secure(app)


def configure_sessions(app: Flask, secret_key: bytes) -> None:
    app.secret_key = secret_key
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="paas_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )


def secret_key_path(settings: Settings) -> Path:
    return settings.root / SECRET_KEY_FILE


def ensure_secret_key(path: Path) -> bytes:
    """The session signing key in ``path``, created (0600, atomically) if missing."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()
