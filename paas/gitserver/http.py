"""git smart HTTP as a WSGI app: `/<app>.git/info/refs`, `git-upload-pack`, `git-receive-pack`.

Mounted by the web app under ``/git``. This layer authenticates (HTTP Basic: git asks for
credentials on a 401, or takes them from the URL), validates the app name, creates the app
on the first push, then hands the request to dulwich's smart HTTP code with our
receive-pack handler. Only the smart protocol is served.

Run it under gunicorn's ``gthread`` worker: a push holds its request open for the whole
build, which the ``sync`` worker's timeout would kill.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from dulwich.web import make_wsgi_chain

from paas.errors import PaasError
from paas.gitserver.receive import DEFAULT_HOOK_TIMEOUT, StreamingReceivePackHandler
from paas.gitserver.repos import AppBackend, RepoStore
from paas.model import validate_app_name

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

UPLOAD_PACK = "git-upload-pack"
RECEIVE_PACK = "git-receive-pack"
_PATH_RE = re.compile(r"^/(?P<repo>[^/]+)/(?P<rest>info/refs|git-upload-pack|git-receive-pack)$")
_REALM = 'Basic realm="paas git", charset="UTF-8"'

Authenticate = Callable[[str | None, str | None], bool]


def make_git_wsgi(
    repos: RepoStore,
    authenticate: Authenticate,
    on_push_to_missing: Callable[[str], None],
    hook_env: Mapping[str, str],
    *,
    hook_timeout: float = DEFAULT_HOOK_TIMEOUT,
) -> WSGIApplication:
    """The WSGI app serving every app's repository over smart HTTP.

    ``authenticate(user, password)`` decides on the Basic credentials (None when absent).
    ``on_push_to_missing(app)`` creates an app a push targets before its repo is made.
    ``hook_env`` is given to the pre-receive hook, plus ``PAAS_APP`` and ``PAAS_PUSHER``.
    """
    backend = AppBackend(repos)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        match = _PATH_RE.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return _text(start_response, "404 Not Found", "Not a git URL: use /git/<app>.git\n")
        user, password = _basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        if not authenticate(user, password):
            return _text(
                start_response,
                "401 Unauthorized",
                "Authentication required: use your API token as the password.\n",
                [("WWW-Authenticate", _REALM)],
            )
        rest = match["rest"]
        if rest == "info/refs":
            service = parse_qs(environ.get("QUERY_STRING", "")).get("service", [""])[0]
        else:
            service = rest
        if service not in (UPLOAD_PACK, RECEIVE_PACK):
            return _text(start_response, "403 Forbidden", "Only smart HTTP git is served.\n")
        name = match["repo"].removesuffix(".git")
        try:
            validate_app_name(name)
            if service == RECEIVE_PACK:
                if not repos.exists(name):
                    on_push_to_missing(name)
                repos.ensure(name)
            elif not repos.exists(name):
                return _text(start_response, "404 Not Found", f"App {name!r} does not exist.\n")
        except PaasError as exc:
            status = f"{exc.http_status} {_REASONS.get(exc.http_status, 'Error')}"
            return _text(start_response, status, exc.message + "\n")

        handler = functools.partial(
            StreamingReceivePackHandler,
            hook_env={**hook_env, "PAAS_APP": name, "PAAS_PUSHER": user or ""},
            hook_timeout=hook_timeout,
        )
        dulwich_app = make_wsgi_chain(backend, handlers={RECEIVE_PACK.encode(): handler})
        environ["PATH_INFO"] = f"/{name}.git/{rest}"
        result: Iterable[bytes] = dulwich_app(environ, start_response)
        if service == RECEIVE_PACK and rest != "info/refs":
            return _then(result, functools.partial(repos.restore_owner, name))
        return result

    return app


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


def _text(
    start_response: StartResponse,
    status: str,
    message: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = message.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            *(headers or []),
        ],
    )
    return [body]


def _then(result: Iterable[bytes], action: Callable[[], None]) -> Iterator[bytes]:
    """Iterate ``result`` (closing it as WSGI requires), then run ``action``."""
    try:
        yield from result
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        action()
