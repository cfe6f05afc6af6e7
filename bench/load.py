"""A small HTTP load generator for the router: N client threads, each on one keep-alive
connection, sending GETs until told to stop, counting answers and failures.

Like browsers and urllib3, a request sent on a *reused* connection that the server closed
before answering (it went idle through a router reload) is retried once on a new
connection (RFC 9112, 9.3.1); those retries are counted apart. A failure is anything
else: an error on a fresh connection, or a 5xx answer.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class LoadResult:
    requests: int = 0
    retried: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    failed_at: list[float] = field(default_factory=list)  # time.time() of each failure
    bodies: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


class Load:
    """``with Load(port, host) as load: ...`` keeps requests going; ``load.result`` after."""

    def __init__(self, port: int, host: str, threads: int = 8, path: str = "/",
                 timeout: float = 10.0) -> None:
        self._port, self._host, self._path, self._timeout = port, host, path, timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.result = LoadResult()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self._timeout + 5)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self._port, timeout=self._timeout)

    def _run(self) -> None:
        conn, reused = self._connect(), False
        while not self._stop.is_set():
            started, retried = time.monotonic(), False
            try:
                try:
                    status, body = self._get(conn)
                except _STALE:
                    if not reused:
                        raise
                    conn.close()  # closed while idle: retry once on a new connection
                    conn, retried = self._connect(), True
                    status, body = self._get(conn)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn, reused = self._connect(), False
                self._record(failure=type(exc).__name__, retried=retried)
                continue
            reused = True
            elapsed = time.monotonic() - started
            if status >= 500:
                self._record(failure=f"HTTP {status}", retried=retried, latency=elapsed)
            else:
                self._record(body=body, retried=retried, latency=elapsed)
        conn.close()

    def _get(self, conn: http.client.HTTPConnection) -> tuple[int, str]:
        conn.request("GET", self._path, headers={"Host": self._host})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")

    def _record(self, *, failure: str | None = None, body: str | None = None,
                retried: bool = False, latency: float | None = None) -> None:
        with self._lock:
            r = self.result
            r.requests += 1
            if retried:
                r.retried += 1
            if failure is not None:
                r.failures[failure] += 1
                r.failed_at.append(time.time())
            if body is not None:
                r.bodies[body] += 1
            if latency is not None:
                r.latencies.append(latency)
