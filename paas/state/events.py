"""The platform's own events per app (``paas[web.1]: starting``, ``deploy v4 by alice``):
a capped Redis Stream per app, read with the app's output by ``logs`` and the dashboard."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

MAX_EVENTS = 5000
PAGE = 500


@dataclass(frozen=True)
class Event:
    id: str  # the stream entry id; ordered
    at: float
    app: str
    source: str  # "web.1", "deploy", "config", "scale", "router", ...
    text: str

    @property
    def line(self) -> str:
        return f"paas[{self.source}]: {self.text}"


def _any(source: str) -> bool:
    return True


class Events:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._r = client
        self._ns = f"paas:{namespace}:events"

    def key(self, app: str) -> str:
        return f"{self._ns}:{app}"

    def emit(self, app: str, source: str, text: str) -> None:
        self._r.xadd(
            self.key(app),
            {"at": repr(time.time()), "source": source, "text": text},
            maxlen=MAX_EVENTS,
            approximate=True,
        )

    def recent(
        self, app: str, count: int, match: Callable[[str], bool] = _any, until: str = "+"
    ) -> list[Event]:
        """The last ``count`` events whose source ``match`` keeps, up to the event ``until``
        (an id, or "+" for the newest), oldest first."""
        found: list[Event] = []
        end = until
        while len(found) < count:
            raw: Any = self._r.xrevrange(self.key(app), max=end, count=PAGE)
            for entry_id, fields in raw:
                event = _event(app, entry_id, fields)
                if match(event.source) and len(found) < count:
                    found.append(event)
            if len(raw) < PAGE:
                break
            end = f"({_text(raw[-1][0])}"  # exclusive: before the oldest read
        return found[::-1]

    def last_id(self, app: str) -> str:
        """The id of the newest event ("0-0" when none): ``after`` it comes every new one."""
        raw: Any = self._r.xrevrange(self.key(app), count=1)
        return _text(raw[0][0]) if raw else "0-0"

    def after(self, app: str, last_id: str, block_ms: int) -> list[Event]:
        """Events after ``last_id`` ("$" for only new ones), waiting up to ``block_ms``."""
        answer: Any = self._r.xread({self.key(app): last_id}, block=block_ms, count=500)
        if not answer:
            return []
        return [_event(app, entry_id, fields) for entry_id, fields in answer[0][1]]

    def delete(self, app: str) -> None:
        self._r.delete(self.key(app))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _event(app: str, entry_id: Any, fields: dict[Any, Any]) -> Event:
    return Event(
        id=_text(entry_id),
        at=float(fields[b"at"]),
        app=app,
        source=fields[b"source"].decode(),
        text=fields[b"text"].decode(),
    )
