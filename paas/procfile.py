"""Parsing of Procfiles (``name: command`` lines) and of process-type names."""

from __future__ import annotations

import re

from paas.errors import InvalidInput

PROCESS_TYPE_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_LINE_RE = re.compile(r"^([^:\s]+)\s*:\s*(.*)$")


def validate_process_type(name: str) -> str:
    if not PROCESS_TYPE_RE.fullmatch(name) or len(name) > 30:
        raise InvalidInput(
            f"Invalid process type {name!r}: use letters, digits, '_' and '-' (at most 30)."
        )
    return name


def parse_procfile(text: str) -> dict[str, str]:
    """Return process type -> command, in file order.

    Blank lines and ``#`` comments are skipped. A malformed line, an invalid name, an empty
    command or a duplicated name is an ``InvalidInput`` naming the line.
    """
    processes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE_RE.match(line)
        if not match:
            raise InvalidInput(
                f"Procfile line {number}: expected 'name: command', got {raw.strip()!r}."
            )
        name, command = match.group(1), match.group(2).strip()
        try:
            validate_process_type(name)
        except InvalidInput as exc:
            raise InvalidInput(f"Procfile line {number}: {exc.message}") from None
        if not command:
            raise InvalidInput(f"Procfile line {number}: process type {name!r} has no command.")
        if name in processes:
            raise InvalidInput(f"Procfile line {number}: process type {name!r} is defined twice.")
        processes[name] = command
    return processes
