"""``app.json``: the parts the platform reads (``formation`` for a new app, Dokku-style
``healthchecks`` per process type), parsed and validated into typed values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paas.errors import InvalidInput
from paas.procfile import validate_process_type

MAX_SCALE = 50


@dataclass(frozen=True)
class HealthCheck:
    """One HTTP check of a replica: GET ``path`` must answer 2xx (and contain ``content``)
    within ``timeout`` seconds; ``attempts`` tries, ``wait`` seconds apart, the first after
    ``initial_delay`` seconds."""

    path: str = "/"
    content: str = ""
    timeout: float = 5.0
    attempts: int = 3
    wait: float = 2.0
    initial_delay: float = 0.0
    name: str = ""


@dataclass(frozen=True)
class AppJson:
    formation: Mapping[str, int]
    healthchecks: Mapping[str, tuple[HealthCheck, ...]]


EMPTY = AppJson(formation={}, healthchecks={})


def parse_app_json(text: str | bytes | None) -> AppJson:
    """Parse app.json; a missing file ("" or None) is EMPTY; a bad one an ``InvalidInput``
    saying where."""
    if not text:
        return EMPTY
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"app.json is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidInput("app.json must hold a JSON object.")
    return AppJson(
        formation=_formation(data.get("formation", {})),
        healthchecks=_healthchecks(data.get("healthchecks", {})),
    )


def _formation(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise InvalidInput('app.json "formation" must be an object: {"web": {"quantity": 2}}.')
    counts = {}
    for ptype, spec in raw.items():
        validate_process_type(ptype)
        quantity: Any = spec.get("quantity") if isinstance(spec, dict) else None
        if not _int(quantity) or not 0 <= quantity <= MAX_SCALE:
            raise InvalidInput(
                f'app.json formation.{ptype}.quantity must be a whole number from 0 to '
                f"{MAX_SCALE}."
            )
        counts[ptype] = quantity
    return counts


def _healthchecks(raw: Any) -> dict[str, tuple[HealthCheck, ...]]:
    if not isinstance(raw, dict):
        raise InvalidInput('app.json "healthchecks" must be an object: {"web": [{...}]}.')
    checks = {}
    for ptype, items in raw.items():
        validate_process_type(ptype)
        if not isinstance(items, list):
            raise InvalidInput(f"app.json healthchecks.{ptype} must be a list of checks.")
        checks[ptype] = tuple(_check(f"healthchecks.{ptype}[{i}]", c) for i, c in enumerate(items))
    return checks


def _check(where: str, raw: Any) -> HealthCheck:
    if not isinstance(raw, dict):
        raise InvalidInput(f"app.json {where} must be an object.")
    path = raw.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n"):
        raise InvalidInput(f'app.json {where}.path must be a URL path such as "/health".')
    content = raw.get("content", "")
    if not isinstance(content, str):
        raise InvalidInput(f"app.json {where}.content must be text.")
    numbers = {}
    for key, default, low, high in (
        ("timeout", 5.0, 0.1, 300.0), ("attempts", 3, 1, 100),
        ("wait", 2.0, 0.0, 300.0), ("initialDelay", 0.0, 0.0, 600.0),
    ):  # fmt: skip
        value = raw.get(key, default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            raise InvalidInput(f"app.json {where}.{key} must be a number from {low} to {high}.")
        numbers[key] = value
    if not _int(numbers["attempts"]):
        raise InvalidInput(f"app.json {where}.attempts must be a whole number.")
    return HealthCheck(
        path=path,
        content=content,
        timeout=float(numbers["timeout"]),
        attempts=int(numbers["attempts"]),
        wait=float(numbers["wait"]),
        initial_delay=float(numbers["initialDelay"]),
        name=str(raw.get("name", "")),
    )


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
