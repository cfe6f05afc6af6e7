"""The store: apps, releases, config, formation, API tokens, SSH keys and build records.

Everything the platform must remember lives here (Redis, persisted by AOF when embedded).
Keys are namespaced by the platform instance so that two platforms may share one Redis.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import redis
from redis.exceptions import LockError

from paas.errors import Conflict, NotFound
from paas.model import App, Release, validate_app_name


@dataclass(frozen=True)
class Build:
    id: str
    app: str
    rev: str
    status: str  # "queued", "running", "succeeded", "failed"
    created_at: float
    release: int | None = None
    message: str = ""


def _release_from_json(raw: str | bytes) -> Release:
    data = json.loads(raw)
    return Release(**data)


class Store:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._r = client
        self._ns = f"paas:{namespace}"

    def _k(self, *parts: str) -> str:
        return ":".join((self._ns, *parts))

    def ping(self) -> bool:
        return bool(self._r.ping())

    # --- apps -------------------------------------------------------------------------------

    def create_app(self, name: str) -> App:
        validate_app_name(name)
        app = App(name=name, created_at=time.time())
        if not self._r.hsetnx(self._k("apps"), name, json.dumps(asdict(app))):
            raise Conflict(f'App "{name}" already exists. Pick another name.')
        return app

    def app_exists(self, name: str) -> bool:
        return bool(self._r.hexists(self._k("apps"), name))

    def get_app(self, name: str) -> App:
        validate_app_name(name)
        raw = self._r.hget(self._k("apps"), name)
        if raw is None:
            hint = ""
            close = difflib.get_close_matches(name, self.app_names(), n=1)
            if close:
                hint = f' Did you mean "{close[0]}"?'
            raise NotFound(f'App "{name}" not found.{hint} Run paas apps:list to see your apps.')
        return App(**json.loads(raw))

    def app_names(self) -> list[str]:
        return sorted(_text(k) for k in self._r.hkeys(self._k("apps")))

    def list_apps(self) -> list[App]:
        raw = self._r.hgetall(self._k("apps"))
        return sorted((App(**json.loads(v)) for v in raw.values()), key=lambda a: a.name)

    # --- releases ---------------------------------------------------------------------------

    def add_release(self, release: Release) -> None:
        self._r.rpush(self._k("app", release.app, "releases"), json.dumps(asdict(release)))

    def releases(self, app: str) -> list[Release]:
        raw = self._r.lrange(self._k("app", app, "releases"), 0, -1)
        return [_release_from_json(r) for r in raw]

    def current_release(self, app: str) -> Release | None:
        raw = self._r.lindex(self._k("app", app, "releases"), -1)
        return None if raw is None else _release_from_json(raw)

    def next_release_version(self, app: str) -> int:
        return int(self._r.llen(self._k("app", app, "releases"))) + 1

    # --- config and formation -----------------------------------------------------------------

    def config(self, app: str) -> dict[str, str]:
        raw = self._r.hgetall(self._k("app", app, "config"))
        return {_text(k): _text(v) for k, v in raw.items()}

    def formation(self, app: str) -> dict[str, int]:
        raw = self._r.hgetall(self._k("app", app, "formation"))
        return {_text(k): int(v) for k, v in raw.items()}

    def set_formation(self, app: str, counts: Mapping[str, int]) -> None:
        if counts:
            for ptype, count in counts.items():
                self._r.hset(self._k("app", app, "formation"), ptype, count)

    # --- locks --------------------------------------------------------------------------------

    @contextmanager
    def app_lock(self, app: str, wait: float | None = 3600.0) -> Iterator[bool]:
        """Serialise changes to one app. Yields False when ``wait`` is 0 and it is busy."""
        lock = self._r.lock(self._k("lock", app), timeout=3600, blocking_timeout=wait)
        acquired = lock.acquire(blocking=wait != 0)
        try:
            yield bool(acquired)
        finally:
            if acquired:
                with contextlib.suppress(LockError):  # expired meanwhile
                    lock.release()

    # --- builds -------------------------------------------------------------------------------

    def new_build(self, app: str, rev: str) -> Build:
        build = Build(
            id=f"{app}-{secrets.token_hex(6)}", app=app, rev=rev, status="queued",
            created_at=time.time(),
        )
        self.save_build(build)
        self._r.rpush(self._k("app", app, "builds"), build.id)
        return build

    def save_build(self, build: Build) -> None:
        self._r.set(self._k("build", build.id), json.dumps(asdict(build)))

    def get_build(self, build_id: str) -> Build:
        raw = self._r.get(self._k("build", build_id))
        if raw is None:
            raise NotFound(f"Build {build_id} not found.")
        return Build(**json.loads(raw))

    # --- API tokens ----------------------------------------------------------------------------

    def add_token(self, name: str, token: str) -> None:
        self._r.hset(self._k("tokens"), _token_hash(token), name)

    def token_owner(self, token: str) -> str | None:
        owner = self._r.hget(self._k("tokens"), _token_hash(token))
        return None if owner is None else _text(owner)

    # --- SSH keys ------------------------------------------------------------------------------

    def add_ssh_key(self, name: str, line: str) -> None:
        if not self._r.hsetnx(self._k("sshkeys"), name, line):
            raise Conflict(f'An SSH key named "{name}" exists. Remove it first or pick a name.')

    def ssh_keys(self) -> dict[str, str]:
        raw = self._r.hgetall(self._k("sshkeys"))
        return {_text(k): _text(v) for k, v in sorted(raw.items())}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
