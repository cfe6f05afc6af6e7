"""HTTP client of the JSON API, and how the CLI finds the API and its token."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paas.errors import Conflict, InvalidInput, NotFound, PaasError, PlatformError, Unauthorized
from paas.settings import Settings

_BY_STATUS: dict[int, type[PaasError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
}


def config_path(env: dict[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "/root")) / ".config")
    return Path(base) / "paas" / "config.json"


@dataclass(frozen=True)
class Endpoint:
    """Where the API is and how to authenticate. ``actor`` names who acts when the token is a
    relay's (the SSH commands pass the key's name); the API records it in releases."""

    url: str
    token: str
    actor: str | None = None


def find_endpoint(env: dict[str, str] | None = None) -> Endpoint:
    """The API to talk to: PAAS_API_URL/PAAS_TOKEN, else what `paas login` stored, else the
    platform on this machine (its token file under PAAS_ROOT)."""
    env = dict(os.environ) if env is None else env
    if env.get("PAAS_API_URL") and env.get("PAAS_TOKEN"):
        return Endpoint(env["PAAS_API_URL"].rstrip("/"), env["PAAS_TOKEN"])
    stored = config_path(env)
    if stored.exists() and not env.get("PAAS_ROOT"):
        data = json.loads(stored.read_text())
        return Endpoint(data["url"].rstrip("/"), data["token"])
    settings = Settings.from_env(env)
    try:
        token = settings.token_file.read_text().strip()
    except OSError:
        raise Unauthorized(
            f"No platform found: {settings.token_file} is not readable. Run paas login URL "
            "--token TOKEN, or run this on the platform host as root (set PAAS_ROOT if the "
            "platform root is not /var/lib/paas)."
        ) from None
    return Endpoint(settings.api_url, token)


class ApiClient:
    # A change (config, rollback, restart) answers once the worker has carried it out, which
    # may take the server up to 600 s.
    def __init__(self, endpoint: Endpoint, timeout: float = 660.0) -> None:
        self._e = endpoint
        self._timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        with self._open(method, path, data, "application/json") as resp:
            return json.loads(resp.read() or b"null")

    def stream(self, path: str) -> Generator[str, None, None]:
        """GET a streamed answer (server-sent events) and yield its lines as they come;
        closing the iterator closes the connection."""
        with self._open("GET", path, None, "text/event-stream") as resp:
            try:
                for raw in resp:
                    yield raw.decode(errors="replace").rstrip("\r\n")
            except (OSError, http.client.HTTPException) as exc:
                raise PlatformError(
                    f"The platform at {self._e.url} stopped answering: {exc}"
                ) from None

    def download(self, path: str, target: Path) -> int:
        """GET a file into ``target`` (written aside, then renamed); returns its size."""
        tmp = target.with_name(f".{target.name}.part")
        size = 0
        try:
            with self._open("GET", path, None, "application/x-tar") as resp, tmp.open("wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    size += len(chunk)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def _open(
        self, method: str, path: str, data: bytes | None, accept: str
    ) -> http.client.HTTPResponse:
        req = urllib.request.Request(f"{self._e.url}/api/v1{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._e.token}")
        req.add_header("Accept", accept)
        if self._e.actor is not None:
            req.add_header("X-Paas-Actor", self._e.actor)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            resp: http.client.HTTPResponse = urllib.request.urlopen(req, timeout=self._timeout)
        except urllib.error.HTTPError as exc:
            raise _error_from(exc) from None
        except urllib.error.URLError as exc:
            raise PlatformError(
                f"Cannot reach the platform at {self._e.url}: {exc.reason}. Is it running?"
            ) from None
        return resp


def _error_from(exc: urllib.error.HTTPError) -> PaasError:
    try:
        message = json.loads(exc.read()).get("message") or exc.reason
    except (ValueError, AttributeError):
        message = str(exc.reason)
    return _BY_STATUS.get(exc.code, PlatformError)(str(message))
