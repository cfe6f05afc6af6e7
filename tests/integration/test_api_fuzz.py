"""Malformed and random input against every operation of the OpenAPI document.

The API under test is ``create_app`` over the real collaborators of ``paas.wiring`` and a
real redis-server on a Unix socket in a temporary platform root. Only the task queue is a
fake: the worker is not what this is about, and a request that queues a change blocks on the
change's log stream, so the fake ends each queued change at once, as succeeded or as failed
(drawn per example). Failed changes give the 422 answers.

For every request: no 5xx; the status is one the document lists for the operation (or, when a
path parameter holds a '/' or is empty, the URL is another path and any status but a 5xx
goes); a JSON answer matches the documented schema, and an error answer is an Error. For every
4xx answer the platform's state is as before: every Redis key with its type and value, the
SSH authorized_keys file and the repositories' files. A 422 (the worker failed) may only have
left the record and the log of the change it queued.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jsonschema
import pytest
import redis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paas.platform import render_redis_conf
from paas.settings import Settings
from paas.state.logstream import LogStreams
from paas.web.app import create_app
from paas.web.openapi import DOCUMENT
from paas.wiring import local_host, redis_client, worker_services

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

TOKEN = "fuzz-token"
APP = "seeded"
DOMAIN = "www.seeded.test"
KEY_NAME = "seed@test"
PREFIX = "/api/v1"
JSON = "application/json"
EXAMPLES = 60
METHODS = ("get", "post", "put", "patch", "delete")
# Building a stack runs debootstrap against the Debian mirror for minutes; a fuzzer must
# not start that, and its one input (a suite name) is checked by the stack builder's tests.
NOT_FUZZED = {("/stacks/{stack}/build", "post")}
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in METHODS and (path, method) not in NOT_FUZZED
]


def _public_key() -> str:
    """A well-formed ssh-ed25519 public key line (no one holds its private key)."""
    kind = b"ssh-ed25519"
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", 32) + bytes(range(32))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} seed"


@dataclass
class InstantWorker:
    """A ``TaskQueue`` that ends each queued change at once, as ``ok`` says."""

    logs: LogStreams
    ok: bool = True

    def enqueue_deploy(self, build_id: str) -> None:
        raise AssertionError(f"the API queued a deploy ({build_id})")

    def enqueue_reconcile(self, app: str) -> None:
        """Scaling queues a reconcile and does not wait for it: nothing to do."""

    def enqueue_operation(self, op_id: str) -> None:
        self.logs.finish(op_id, self.ok, "Done" if self.ok else "The change failed (fake).")


@dataclass
class Platform:
    settings: Settings
    redis: redis.Redis
    worker: InstantWorker
    client: FlaskClient
    seed: dict[str, Any] = field(default_factory=dict)  # the snapshot once seeded
    dirty: bool = True  # whether the last request may have changed the state

    def reset(self) -> None:
        """The state as it was once seeded (Redis, authorized_keys, repositories): every
        example starts from the same state."""
        if not self.dirty:
            return
        pipe = self.redis.pipeline()
        pipe.flushdb()
        for key, (_kind, value) in self.seed["redis"].items():
            pipe.restore(key, 0, value)
        pipe.execute()
        self.authorized_keys.write_bytes(self.seed["authorized_keys"])
        for repo in self.settings.repos_dir.iterdir():
            if repo.name not in self.seed["repos"]:
                shutil.rmtree(repo)
        self.dirty = False

    @property
    def authorized_keys(self) -> Path:
        return self.settings.ssh_dir / "authorized_keys"

    def snapshot(self) -> dict[str, Any]:
        """Every Redis key with its type and value, and the files the API may write."""
        keys = sorted(self.redis.scan_iter("*", count=1000))
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.dump(key)
        values = pipe.execute()
        repos = self.settings.repos_dir
        return {
            "redis": {k: (values[2 * i], values[2 * i + 1]) for i, k in enumerate(keys)},
            "authorized_keys": self.authorized_keys.read_bytes(),
            "repos": sorted(str(p.relative_to(repos)) for p in repos.rglob("*")),
        }


def _start_redis(settings: Settings) -> subprocess.Popen[bytes]:
    for path in (settings.run_dir, settings.redis_dir, settings.ssh_dir, settings.repos_dir):
        path.mkdir(parents=True, exist_ok=True)
    conf = settings.redis_dir / "redis.conf"
    conf.write_text(render_redis_conf(settings))
    proc = subprocess.Popen(
        ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = redis_client(settings)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return proc
        except redis.RedisError:
            time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    raise RuntimeError("redis-server did not come up")


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    root = Path(tempfile.mkdtemp(prefix="paas-fuzz-"))
    settings = Settings.from_env({"PAAS_ROOT": str(root)})
    proc = _start_redis(settings)
    try:
        client = redis_client(settings)
        worker = InstantWorker(LogStreams(client, settings.instance))
        services = replace(worker_services(settings), queue=worker)
        services.store.add_token("admin", TOKEN)
        api = create_app(services, local_host(services)).test_client()
        yield Platform(settings, client, worker, api)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(settings.runc_root.parent, ignore_errors=True)  # runc made it for ps


@pytest.fixture(scope="module")
def seeded(platform: Platform) -> Platform:
    """An app with a domain and a config var, and an SSH key: so 404 and 409 mean something."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answers = [
        platform.client.post(f"{PREFIX}/apps", json={"name": APP}, headers=auth),
        platform.client.post(f"{PREFIX}/apps/{APP}/domains", json={"domain": DOMAIN}, headers=auth),
        platform.client.post(
            f"{PREFIX}/ssh-keys", json={"name": KEY_NAME, "key": _public_key()}, headers=auth
        ),
    ]
    assert [a.status_code for a in answers] == [201, 201, 201], [a.get_json() for a in answers]
    prefix = f"paas:{platform.settings.instance}"
    platform.redis.hset(f"{prefix}:app:{APP}:config", "SEEDED", "1")
    platform.seed = platform.snapshot()
    return platform


# --- what is thrown at the API -------------------------------------------------------------------

NASTY = [
    "", " ", "\x00", "\ud800", "é", "²", "١٢", "💥", "..", "a/b", "%2F", "-1", "0", "v²",
    "web.²", "null", "'\"\\", "\r\n", "a" * 31, "a" * 10000, "Hello", "hello-", "web.1",
]  # fmt: skip
TEXT = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([2**63, -(2**63) - 1, 10**100, 51, -1, 0, 1]),
        st.floats(),
        TEXT,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=8,
)
# The seeded things first (valid paths reach deeper), then neighbours, then anything.
PATH_PLAUSIBLE = {
    "name": [APP, "missing", "seede", APP.upper(), f"{APP}/..", f"../{APP}"],
    "domain": [DOMAIN, DOMAIN.upper(), "other.test"],
    "ref": ["v1", "v0", "v²", f"{APP}-000000000000"],
}
PATH_VALUES = {
    "name": st.one_of(
        st.just(APP),
        st.sampled_from(PATH_PLAUSIBLE["name"]),
        st.from_regex(r"\A[a-z][a-z0-9-]{0,28}[a-z0-9]\Z"),
        TEXT,
    ),
    **{
        name: st.one_of(st.just(values[0]), st.sampled_from(values), TEXT)
        for name, values in PATH_PLAUSIBLE.items()
        if name != "name"
    },
}
QUERY_PLAUSIBLE = {
    "confirm": [APP, "other"],
    "lines": ["1", "100", "0", "10000", "10001", "-1", " 5", "²", "١٢"],
    "process": ["web", "web.1", "web.x", "web.²", "Web", "web.1.2"],
    "follow": ["1", "0", "false", "", "yes"],
    "release": ["v1", "v0", "1", "v²", "v99999999999", "", "v-1"],
    "process_type": ["web", "worker", "", "w b", "release", "web²"],
    "mount": ["/var/lib/paas/storage/x:/data", "/etc:/etc", "a:b", "", "/x/../y:/d"],
}
GOOD_AUTH = {"Authorization": f"Bearer {TOKEN}"}
BAD_AUTHS = st.one_of(
    st.just({}),
    st.builds(lambda t: {"Authorization": f"Bearer {t}"}, TEXT.filter(lambda t: t != TOKEN)),
    st.builds(lambda t: {"Authorization": t}, TEXT),
    st.builds(
        lambda u, p: {"Authorization": "Basic " + _b64(f"{u}:{p}")},
        TEXT,
        TEXT.filter(lambda t: t != TOKEN),
    ),
    st.just({"Authorization": "Basic !!!notbase64"}),
    st.just({"Authorization": f"Token {TOKEN}"}),
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode(errors="surrogatepass")).decode()


UPGRADE = {"Connection": "Upgrade", "Upgrade": "paas-run"}
DEEP = 100000  # deeper than Python's JSON parser can go
RAW_BODIES = [
    b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP, b"{" * 5000, b'{"name": ', b"\xff\xfe", b"null",
]  # fmt: skip


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return dict(DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    return schema


def _body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    media = operation.get("requestBody", {}).get("content", {}).get(JSON)
    return None if media is None else _resolve(media["schema"])


def _body_properties(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The properties the operation's body documents (a process type for a map)."""
    schema = _body_schema(operation)
    if schema is None:
        return {}
    properties = schema.get("properties") or {"web": schema.get("additionalProperties", {})}
    return {name: _resolve(s) for name, s in properties.items()}


def _shapes(schema: dict[str, Any], value: str) -> list[Any]:
    """``value`` where a property of ``schema`` holds text (a key and a value of a map)."""
    kind = schema.get("type")
    if kind == "array":
        return [[value]]
    if kind == "object":
        return [{"K": value}, {value: "1"}]
    return [value]


# Valid or nearly valid values of the documented properties, so that the requests also get
# past the first checks.
PLAUSIBLE: dict[str, list[Any]] = {
    "name": [APP, "new-app", KEY_NAME, "new@key"],
    "domain": [DOMAIN, "new.example.test", f"{APP}.paas.test", "other.paas.test"],
    "version": [1, 2],
    "set": [{"NEW": "1"}, {"SEEDED": "2"}, {"1BAD": "x"}],
    "unset": [["SEEDED"], ["NEW"], []],
    "restart": [True, False],
    "process_type": ["web", "worker"],
    "web": [0, 1, 3],
    "key": [_public_key(), _public_key().replace("AAAAC3", "AAAAB3")],
    "mode": ["enabled", "skipped", "disabled", "off"],
    "process_types": [["web"], []],
    "command": [["ls"], ["sh", "-c", "echo hi"], [""]],
    "tty": [True, False],
    "rows": [24],
    "cols": [80],
    "env": [{"K": "V"}, {"PORT": "1"}],
}


def _bodies(operation: dict[str, Any]) -> st.SearchStrategy[tuple[bytes | None, str | None]]:
    """Raw bodies with a content type: none, not JSON, any JSON, and objects with some of the
    documented properties holding plausible values or any JSON, and extra properties."""
    known = st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(st.sampled_from(PLAUSIBLE.get(name, [None])), JSON_VALUES)
            for name in _body_properties(operation) or ["name"]
        },
    )
    extra = st.dictionaries(TEXT, JSON_VALUES, max_size=2)
    objects = st.one_of(known, st.builds(lambda k, e: {**e, **k}, known, extra))
    as_json = st.one_of(objects, JSON_VALUES).map(lambda v: json.dumps(v).encode())
    raw = st.one_of(st.binary(max_size=300), st.sampled_from(RAW_BODIES))
    content_types = st.sampled_from([JSON, "text/plain", None])
    return st.one_of(
        st.tuples(st.none(), st.none()),
        st.tuples(as_json, st.just(JSON)),
        st.tuples(st.one_of(as_json, raw), content_types),
    )


@dataclass(frozen=True)
class Call:
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: bytes | None
    content_type: str | None
    headers: dict[str, str]
    worker_ok: bool

    @property
    def url(self) -> str:
        # Lone surrogates go out as the bytes of invalid UTF-8, as a broken client sends them.
        quoted = {k: quote(v, safe="", errors="surrogatepass") for k, v in self.params.items()}
        query = urlencode(self.query, errors="surrogatepass")
        return f"{PREFIX}{self.path.format(**quoted)}" + (f"?{query}" if query else "")

    @property
    def authorized(self) -> bool:
        return self.headers.get("Authorization") == GOOD_AUTH["Authorization"]

    @property
    def elsewhere(self) -> bool:
        """Whether a path parameter makes the URL another path (werkzeug decodes %2F)."""
        return any(v == "" or "/" in v for v in self.params.values())


def _wire(headers: dict[str, str]) -> dict[str, str]:
    """Header values as a server sees them: the UTF-8 bytes sent (no line ends: HTTP has
    none in a value), read as latin-1."""
    return {
        k: v.encode(errors="surrogatepass").decode("latin-1").replace("\r", "").replace("\n", "")
        for k, v in headers.items()
    }


def _query_names(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]


def _calls(path: str, operation: dict[str, Any]) -> st.SearchStrategy[Call]:
    params = st.fixed_dictionaries(
        {name: PATH_VALUES[name] for name in PATH_VALUES if f"{{{name}}}" in path}
    )
    documented = st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(st.sampled_from(QUERY_PLAUSIBLE[name]), TEXT)
            for name in _query_names(operation)
        },
    )
    queries = st.builds(
        lambda d, e: {**e, **d}, documented, st.dictionaries(TEXT, TEXT, max_size=2)
    )
    public = operation.get("security") == []
    auths = st.just(GOOD_AUTH) if public else st.one_of(st.just(GOOD_AUTH), BAD_AUTHS)
    extra = st.sampled_from([{}, UPGRADE])
    headers = st.builds(lambda a, e: _wire({**a, **e}), auths, extra)
    return st.builds(
        lambda p, q, b, h, ok: Call(path, p, q, b[0], b[1], h, ok),
        params,
        queries,
        _bodies(operation),
        headers,
        st.booleans(),
    )


def _corpus(path: str, operation: dict[str, Any]) -> Iterator[Call]:
    """A failing change; bodies that are not JSON or too deep; each NASTY value in each path
    parameter, documented query parameter and body property (as itself, in a list or in a
    map), everything else plausible: the boundaries random generation may miss in a bounded
    number of examples."""
    params = {name: v[0] for name, v in PATH_PLAUSIBLE.items() if f"{{{name}}}" in path}
    properties = _body_properties(operation)
    body = {name: PLAUSIBLE.get(name, [None])[0] for name in properties}
    headers = {**GOOD_AUTH, **UPGRADE}

    def call(params: dict[str, str], query: dict[str, str], body: Any) -> Call:
        return Call(path, params, query, json.dumps(body).encode(), JSON, headers, True)

    yield replace(call(params, {}, body), worker_ok=False)  # the change fails: a 422
    if properties:
        for raw in RAW_BODIES:
            yield replace(call(params, {}, None), body=raw)
    for nasty in NASTY:
        for name in params:
            yield call({**params, name: nasty}, {}, body)
        for name in _query_names(operation):
            yield call(params, {name: nasty}, body)
        for name, schema in properties.items():
            for shaped in _shapes(schema, nasty):
                yield call(params, {}, {**body, name: shaped})


# --- what the answers must be ------------------------------------------------------------------


def _schema_of(operation: dict[str, Any], status: int) -> dict[str, Any] | None:
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    media = response.get("content", {}).get(JSON)
    return None if media is None else {**media["schema"], "components": DOCUMENT["components"]}


def _is_change_record(key: bytes, instance: str) -> bool:
    """The record of a queued change or its log stream (``Store.new_operation``)."""
    return key.startswith((f"paas:{instance}:op:".encode(), f"paas:{instance}:log:op-".encode()))


def _check(platform: Platform, method: str, operation: dict[str, Any], call: Call) -> None:
    platform.reset()
    platform.worker.ok = call.worker_ok
    before = platform.snapshot()
    answer = platform.client.open(
        call.url,
        method=method.upper(),
        data=call.body,
        content_type=call.content_type,
        headers=call.headers,
        buffered=False,
    )
    try:
        status = answer.status_code
        streaming = answer.mimetype == "text/event-stream"
        body = None if streaming else answer.get_data()
    finally:
        answer.close()  # a followed log never ends: close it without reading
    platform.dirty = not 400 <= status < 500 or status == 422
    shown = f"{method.upper()} {call.url[:300]!r} {call.headers} {(call.body or b'')[:300]!r}: "
    shown += f"{status} {body!r}"
    assert status < 500, shown
    if call.elsewhere:
        if 400 <= status < 500:
            assert answer.is_json, shown
    else:
        assert str(status) in operation["responses"], shown
        schema = _schema_of(operation, status)
        if schema is not None and not streaming:
            jsonschema.validate(json.loads(body or b"null"), schema)
        if not call.authorized and operation.get("security") != []:
            assert status == 401, shown
    if 400 <= status < 500:
        error = json.loads(body or b"null")
        assert isinstance(error, dict), shown
        assert isinstance(error.get("error"), str) and error.get("message"), shown
        after = platform.snapshot()
        if status == 422:
            instance = platform.settings.instance
            new = set(after["redis"]) - set(before["redis"])
            for key in new:
                if _is_change_record(key, instance):
                    del after["redis"][key]
        changed = [k for k in {*before, *after} if before.get(k) != after.get(k)]
        changed += [k for k in {*before["redis"], *after["redis"]}
                    if before["redis"].get(k) != after["redis"].get(k)]  # fmt: skip
        assert after == before, f"a rejected request changed {changed}: {shown}"


@pytest.mark.parametrize(
    ("path", "method", "operation"),
    OPERATIONS,
    ids=[f"{method.upper()} {path}" for path, method, _ in OPERATIONS],
)
def test_malformed_input_is_rejected_cleanly(
    seeded: Platform, path: str, method: str, operation: dict[str, Any]
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(call=_calls(path, operation))
    def check(call: Call) -> None:
        _check(seeded, method, operation, call)

    for call in _corpus(path, operation):
        _check(seeded, method, operation, call)
    check()
