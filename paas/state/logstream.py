"""Log streams in Redis Streams: lines appended by a producer, replayed and followed by
any number of readers, including ones that attach late (pub/sub would lose those lines)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

STREAM_TTL = 7 * 24 * 3600
POLL_MS = 1000


@dataclass(frozen=True)
class LogEvent:
    kind: str  # "line" or "end"
    text: str
    ok: bool = True


class LogStreams:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._r = client
        self._ns = f"paas:{namespace}:log"

    def _key(self, stream: str) -> str:
        return f"{self._ns}:{stream}"

    def append(self, stream: str, text: str) -> None:
        key = self._key(stream)
        self._r.xadd(key, {"kind": "line", "text": text})
        self._r.expire(key, STREAM_TTL)

    def finish(self, stream: str, ok: bool, text: str = "", keep: bool = False) -> None:
        """End the stream. A kept one (the build log of a release) never expires: it goes
        with its app (``delete``); any other expires ``STREAM_TTL`` seconds later."""
        key = self._key(stream)
        pipe = self._r.pipeline()
        pipe.xadd(key, {"kind": "end", "text": text, "ok": "1" if ok else "0"})
        if keep:
            pipe.persist(key)
        else:
            pipe.expire(key, STREAM_TTL)
        pipe.execute()

    def delete(self, *streams: str) -> None:
        if streams:
            self._r.delete(*(self._key(s) for s in streams))

    def read(self, stream: str) -> list[LogEvent]:
        entries: list[tuple[Any, dict[Any, Any]]] = self._r.xrange(self._key(stream))  # type: ignore[assignment]
        return [_event(fields) for _, fields in entries]

    def follow(self, stream: str, idle_timeout: float) -> Iterator[LogEvent]:
        """Yield events from the start until an "end" event; stop after ``idle_timeout``
        seconds without any event (the producer died), yielding a failed "end"."""
        key = self._key(stream)
        last = "0-0"
        idle_since = time.monotonic()
        while True:
            # Short blocking reads, so no socket timeout of the client cuts a long wait.
            answer: Any = self._r.xread({key: last}, block=POLL_MS, count=100)
            if not answer:
                if time.monotonic() - idle_since > idle_timeout:
                    yield LogEvent("end", f"no output for {idle_timeout:.0f} s: gave up", ok=False)
                    return
                continue
            idle_since = time.monotonic()
            for entry_id, fields in answer[0][1]:
                last = entry_id
                event = _event(fields)
                yield event
                if event.kind == "end":
                    return


def _event(fields: dict[Any, Any]) -> LogEvent:
    """Fields as redis-py returns them (bytes keys and values)."""
    return LogEvent(
        kind=fields[b"kind"].decode(),
        text=fields.get(b"text", b"").decode(),
        ok=fields.get(b"ok", b"1") == b"1",
    )
