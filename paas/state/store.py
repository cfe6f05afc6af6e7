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
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from paas.errors import Conflict, NotFound
from paas.model import (
    App,
    CrashState,
    PortMap,
    Release,
    StorageMount,
    parse_port_map,
    parse_storage_mount,
    validate_app_name,
)
from paas.settings import Limits


@dataclass(frozen=True)
class Build:
    id: str
    app: str
    rev: str
    status: str  # "queued", "running", "succeeded", "failed"
    created_at: float
    release: int | None = None
    message: str = ""
    actor: str = "git"


@dataclass(frozen=True)
class Operation:
    """A change to an app that the worker carries out under the app's lock (config change,
    rollback, restart, stop, start, re-route, destroy); its output goes to a log stream
    named by its id, which the requester follows."""

    id: str
    app: str
    kind: str
    params: dict[str, Any]
    actor: str
    created_at: float


OPERATION_TTL = 24 * 3600
LOCK_LEASE = 30.0  # seconds an app stays locked after its holder died without letting go


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

    def release(self, app: str, version: int) -> Release:
        raw = self._r.lindex(self._k("app", app, "releases"), version - 1)
        if raw is None:
            raise NotFound(f"{app} has no release v{version}. Run paas releases {app}.")
        return _release_from_json(raw)

    # --- config and formation -----------------------------------------------------------------

    def config(self, app: str) -> dict[str, str]:
        raw = self._r.hgetall(self._k("app", app, "config"))
        return {_text(k): _text(v) for k, v in raw.items()}

    def formation(self, app: str) -> dict[str, int]:
        raw = self._r.hgetall(self._k("app", app, "formation"))
        return {_text(k): int(v) for k, v in raw.items()}

    def set_config(self, app: str, values: Mapping[str, str], unset: Iterable[str] = ()) -> None:
        key = self._k("app", app, "config")
        pipe = self._r.pipeline()
        if values:
            pipe.hset(key, mapping=_fields(values))
        for name in unset:
            pipe.hdel(key, name)
        pipe.execute()

    def replace_config(self, app: str, values: Mapping[str, str]) -> None:
        key = self._k("app", app, "config")
        pipe = self._r.pipeline()
        pipe.delete(key)
        if values:
            pipe.hset(key, mapping=_fields(values))
        pipe.execute()

    def generations(self, app: str) -> dict[str, int]:
        """Restart counters per process type: a replica of an older one is replaced."""
        raw = self._r.hgetall(self._k("app", app, "generation"))
        return {_text(k): int(v) for k, v in raw.items()}

    def bump_generation(self, app: str, process_types: Iterable[str]) -> None:
        for ptype in process_types:
            self._r.hincrby(self._k("app", app, "generation"), ptype, 1)

    def stopped(self, app: str) -> bool:
        return bool(self._r.exists(self._k("app", app, "stopped")))

    def set_stopped(self, app: str, stopped: bool) -> None:
        if stopped:
            self._r.set(self._k("app", app, "stopped"), "1")
        else:
            self._r.delete(self._k("app", app, "stopped"))

    def check_modes(self, app: str) -> dict[str, str]:
        """Process type -> "skipped" or "disabled" (absent: checks enabled)."""
        raw = self._r.hgetall(self._k("app", app, "checks"))
        return {_text(k): _text(v) for k, v in raw.items()}

    def set_check_mode(self, app: str, process_types: Iterable[str], mode: str) -> None:
        key = self._k("app", app, "checks")
        for ptype in process_types:
            if mode == "enabled":
                self._r.hdel(key, ptype)
            else:
                self._r.hset(key, ptype, mode)

    # --- app ports -----------------------------------------------------------------------------

    def ports(self, app: str) -> list[PortMap]:
        raw = self._r.lrange(self._k("app", app, "ports"), 0, -1)
        return [parse_port_map(_text(p)) for p in raw]

    def set_ports(self, app: str, ports: list[PortMap]) -> None:
        """Give ``app`` these host ports (taking them from nobody: ``Conflict`` if another
        app has one)."""
        owners = self._k("port-owners")
        for p in ports:
            owner = self._r.hget(owners, str(p.host))
            if owner is not None and _text(owner) != app:
                raise Conflict(f"Port {p.host} is used by app \"{_text(owner)}\".")
        for old in self.ports(app):
            self._r.hdel(owners, str(old.host))
        for p in ports:
            self._r.hset(owners, str(p.host), app)
        key = self._k("app", app, "ports")
        self._r.delete(key)
        if ports:
            self._r.rpush(key, *(str(p) for p in ports))

    # --- storage mounts --------------------------------------------------------------------

    def storage(self, app: str) -> list[StorageMount]:
        raw = self._r.lrange(self._k("app", app, "storage"), 0, -1)
        return [parse_storage_mount(_text(m)) for m in raw]

    def set_storage(self, app: str, mounts: list[StorageMount]) -> None:
        key = self._k("app", app, "storage")
        pipe = self._r.pipeline()
        pipe.delete(key)
        if mounts:
            pipe.rpush(key, *(str(m) for m in mounts))
        pipe.execute()

    # --- process settings ---------------------------------------------------------------------

    def stop_timeout(self, app: str) -> float | None:
        """Seconds between TERM and KILL for the app's replicas (None: the platform's)."""
        raw = self._r.get(self._k("app", app, "stop-timeout"))
        return None if raw is None else float(raw)

    def set_stop_timeout(self, app: str, seconds: float | None) -> None:
        key = self._k("app", app, "stop-timeout")
        if seconds is None:
            self._r.delete(key)
        else:
            self._r.set(key, repr(seconds))

    # --- builder settings ---------------------------------------------------------------------

    def builder_settings(self, app: str) -> dict[str, str]:
        """The app's own builder settings (``stack``, ``memory``), as set."""
        raw = self._r.hgetall(self._k("app", app, "builder"))
        return {_text(k): _text(v) for k, v in raw.items()}

    def set_builder_setting(self, app: str, key: str, value: str | None) -> None:
        """Set one builder setting, or drop it (None) to get the platform's."""
        if value is None:
            self._r.hdel(self._k("app", app, "builder"), key)
        else:
            self._r.hset(self._k("app", app, "builder"), key, value)

    # --- resource limits ----------------------------------------------------------------------

    def limits(self, app: str) -> dict[str, Limits]:
        """Process type ("" for all) -> limits set for it."""
        raw = self._r.hgetall(self._k("app", app, "limits"))
        return {_text(k): Limits(**json.loads(v)) for k, v in raw.items()}

    def set_limits(self, app: str, process_type: str, limits: Limits | None) -> None:
        key = self._k("app", app, "limits")
        if limits is None:
            self._r.hdel(key, process_type)
        else:
            self._r.hset(key, process_type, json.dumps(asdict(limits)))

    # --- crash restarts -----------------------------------------------------------------------

    def crashes(self, app: str) -> dict[str, CrashState]:
        """Dyno (web.1) -> its crash state, for slots that crashed."""
        raw = self._r.hgetall(self._k("app", app, "crashes"))
        return {_text(k): CrashState(**json.loads(v)) for k, v in raw.items()}

    def record_crash(self, app: str, dyno: str, state: CrashState) -> None:
        self._r.hset(self._k("app", app, "crashes"), dyno, json.dumps(asdict(state)))

    def forget_crashes(self, app: str, dynos: Iterable[str]) -> None:
        for dyno in dynos:
            self._r.hdel(self._k("app", app, "crashes"), dyno)

    # --- retiring replicas --------------------------------------------------------------------

    def retire_later(self, container_ids: Iterable[str], deadline: float) -> None:
        """Replicas out of the router, draining until ``deadline``, then to be stopped."""
        for cid in container_ids:
            self._r.hset(self._k("retiring"), cid, repr(deadline))

    def retiring(self) -> dict[str, float]:
        raw = self._r.hgetall(self._k("retiring"))
        return {_text(k): float(v) for k, v in raw.items()}

    def retired(self, container_id: str) -> None:
        self._r.hdel(self._k("retiring"), container_id)

    # --- domains ------------------------------------------------------------------------------

    def add_domain(self, app: str, domain: str) -> None:
        owner = self._r.hget(self._k("domains"), domain)
        if owner is not None and _text(owner) != app:
            raise Conflict(f'{domain} is already used by app "{_text(owner)}".')
        self._r.hsetnx(self._k("domains"), domain, app)
        self._r.sadd(self._k("app", app, "domains"), domain)

    def remove_domain(self, app: str, domain: str) -> None:
        if not self._r.srem(self._k("app", app, "domains"), domain):
            raise NotFound(f"{domain} is not a domain of {app}. Run paas domains {app}.")
        self._r.hdel(self._k("domains"), domain)

    def domains(self, app: str) -> list[str]:
        return sorted(_text(d) for d in self._r.smembers(self._k("app", app, "domains")))

    # --- destroying ---------------------------------------------------------------------------

    def delete_app(self, app: str) -> None:
        """Forget everything about ``app`` (its builds' logs expire on their own)."""
        for domain in self.domains(app):
            self._r.hdel(self._k("domains"), domain)
        self.set_ports(app, [])
        for build_id in self._r.lrange(self._k("app", app, "builds"), 0, -1):
            self._r.delete(self._k("build", _text(build_id)))
        names = ("releases", "config", "formation", "generation", "stopped", "domains", "builds",
                 "checks", "crashes", "limits", "storage", "stop-timeout", "builder")
        self._r.delete(*(self._k("app", app, n) for n in names))
        self._r.hdel(self._k("apps"), app)

    def set_formation(self, app: str, counts: Mapping[str, int]) -> None:
        if counts:
            for ptype, count in counts.items():
                self._r.hset(self._k("app", app, "formation"), ptype, count)

    # --- locks --------------------------------------------------------------------------------

    @contextmanager
    def app_lock(
        self, app: str, wait: float | None = 3600.0, lease: float = LOCK_LEASE
    ) -> Iterator[bool]:
        """Serialise changes to one app. Yields False if it was not free within ``wait``
        seconds (0: do not wait). The lock is a lease of ``lease`` seconds that a thread
        renews while it is held, so that a holder killed outright (a worker's ``kill -9``)
        frees the app within ``lease`` seconds, not when a long fixed timeout runs out."""
        lock = self._r.lock(
            self._k("lock", app), timeout=lease, blocking_timeout=wait, thread_local=False
        )  # (the renewing thread needs its token)
        acquired = lock.acquire(blocking=wait != 0)
        released = threading.Event()
        renewer = threading.Thread(target=_renew, args=(lock, lease / 3, released), daemon=True)
        if acquired:
            renewer.start()
        try:
            yield bool(acquired)
        finally:
            if acquired:
                released.set()
                renewer.join()
                with contextlib.suppress(LockError):  # expired meanwhile
                    lock.release()

    # --- builds -------------------------------------------------------------------------------

    def new_build(self, app: str, rev: str, actor: str = "git") -> Build:
        build = Build(
            id=f"{app}-{secrets.token_hex(6)}", app=app, rev=rev, status="queued",
            created_at=time.time(), actor=actor,
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

    # --- operations ---------------------------------------------------------------------------

    def new_operation(
        self, app: str, kind: str, params: Mapping[str, Any], actor: str
    ) -> Operation:
        op = Operation(
            id=f"op-{app}-{secrets.token_hex(6)}", app=app, kind=kind, params=dict(params),
            actor=actor, created_at=time.time(),
        )  # fmt: skip
        self._r.set(self._k("op", op.id), json.dumps(asdict(op)), ex=OPERATION_TTL)
        return op

    def get_operation(self, op_id: str) -> Operation:
        raw = self._r.get(self._k("op", op_id))
        if raw is None:
            raise NotFound(f"Operation {op_id} not found (they are kept for a day).")
        return Operation(**json.loads(raw))

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

    def builds(self, app: str) -> list[Build]:
        """The app's builds, newest first."""
        ids = [_text(i) for i in self._r.lrange(self._k("app", app, "builds"), 0, -1)]
        raw = self._r.mget([self._k("build", i) for i in reversed(ids)]) if ids else []
        return [Build(**json.loads(r)) for r in raw if r is not None]

    def latest_build(self, app: str) -> Build | None:
        """The app's newest build, if any (one read, whatever the number of builds)."""
        build_id = self._r.lindex(self._k("app", app, "builds"), -1)
        raw = None if build_id is None else self._r.get(self._k("build", _text(build_id)))
        return None if raw is None else Build(**json.loads(raw))

    # --- the dashboard's admin account, API token details, sign-in failures ------------------

    def set_admin_password_hash(self, password_hash: str) -> None:
        self._r.set(self._k("admin", "password"), password_hash)

    def admin_password_hash(self) -> str | None:
        raw = self._r.get(self._k("admin", "password"))
        return None if raw is None else _text(raw)

    def describe_token(self, token: str, name: str) -> None:
        """Record a token's name and the time it was first described (kept if already set)."""
        details = json.dumps({"name": name, "created_at": time.time()})
        self._r.hsetnx(self._k("tokens", "details"), _token_hash(token), details)

    def create_token(self, owner: str, name: str) -> str:
        """A new API token of ``owner``, named ``name``; only its hash is kept."""
        token = secrets.token_urlsafe(32)
        self.add_token(owner, token)
        self.describe_token(token, name)
        return token

    def tokens(self) -> list[tuple[str, str, str, float | None]]:
        """Every API token as (id: its SHA-256, owner, name, created at), oldest first; tokens
        added without details (name "", time None) come last."""
        owners = self._r.hgetall(self._k("tokens"))
        details = self._r.hgetall(self._k("tokens", "details"))
        found: list[tuple[str, str, str, float | None]] = []
        for digest, owner in owners.items():
            info = json.loads(details[digest]) if digest in details else {}
            created = info.get("created_at")
            found.append((_text(digest), _text(owner), str(info.get("name", "")), created))
        return sorted(found, key=lambda t: (t[3] is None, t[3] or 0.0, t[1]))

    def revoke_token(self, token_id: str) -> None:
        """Forget the token whose hash is ``token_id``: it no longer authenticates."""
        if not self._r.hdel(self._k("tokens"), token_id):
            raise NotFound("No such API token: it may have been revoked already.")
        self._r.hdel(self._k("tokens", "details"), token_id)

    def count_failure(self, who: str, window: float) -> int:
        """Count one more failure of ``who`` (such as ``signin:addr:127.0.0.1``) in a window
        that starts with its first failure; returns the count so far."""
        key = self._k("failures", who)
        pipe = self._r.pipeline()
        pipe.incr(key)
        pipe.expire(key, max(1, int(window)), nx=True)
        count, _ = pipe.execute()
        return int(count)

    def failures(self, who: str) -> tuple[int, float]:
        """The failures of ``who`` in its current window, and the seconds the window has left."""
        key = self._k("failures", who)
        pipe = self._r.pipeline()
        pipe.get(key)
        pipe.pttl(key)
        count, ttl_ms = pipe.execute()
        return (0, 0.0) if count is None else (int(count), max(0, int(ttl_ms)) / 1000)

    def clear_failures(self, who: str) -> None:
        self._r.delete(self._k("failures", who))


def _renew(lock: Lock, every: float, released: threading.Event) -> None:
    """Extend the lease of a held lock every ``every`` seconds until it is released."""
    while not released.wait(every):
        try:
            lock.reacquire()
        except LockError:
            return  # lost (the holder stalled longer than the lease): nothing to renew


def _fields(values: Mapping[str, str]) -> Any:
    """A str mapping as redis-py's ``hset`` takes it (its key type is invariant)."""
    return dict(values)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
