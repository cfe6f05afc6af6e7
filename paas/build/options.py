"""What an app's build runs with: its stack and its limits, from the app's builder settings
(``paas builder:set APP KEY VALUE``), its ``PAAS_STACK`` config var and the platform's
defaults, in that order.

Builder settings: ``stack`` (a stack built on the platform, see ``paas stacks``) and
``memory`` (the build containers' memory limit, such as ``1g``). The CPU and pids limits and
the time limit of builds are the platform's (``PAAS_DEFAULT_CPU``, ``PAAS_DEFAULT_PIDS``,
``PAAS_BUILD_TIMEOUT``); the default memory limit is ``PAAS_DEFAULT_MEMORY``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from paas.errors import BuildFailed, InvalidInput
from paas.images.stack import STACK_NAME_RE
from paas.settings import MIN_MEMORY, Limits, Settings, parse_size

STACK_VAR = "PAAS_STACK"
BUILDER_KEYS = ("stack", "memory")
MAX_BUILD_MEMORY = 64 * 1024**3


@dataclass(frozen=True)
class BuildOptions:
    stack: str
    stack_origin: str  # where the stack's name comes from, told when it is unknown
    limits: Limits
    timeout: float  # seconds, for the whole build


def build_options(
    settings: Settings, own: Mapping[str, str], config: Mapping[str, str]
) -> BuildOptions:
    """The options of the app's next build; ``own`` are its builder settings."""
    if own.get("stack"):
        stack, origin = own["stack"], "paas builder:set"
    elif config.get(STACK_VAR, "").strip():
        stack, origin = config[STACK_VAR].strip(), f"the {STACK_VAR} config var"
    else:
        stack, origin = settings.stack, "the platform's default"
    limits = settings.default_limits
    if own.get("memory"):
        limits = replace(limits, memory_bytes=int(own["memory"]))
    return BuildOptions(stack, origin, limits, settings.build_timeout)


def known_stack(name: str, known: Collection[str]) -> str:
    """``name`` if the platform has that stack, else ``InvalidInput`` listing the stacks."""
    if name in known:
        return name
    shown = name if len(name) <= 40 else name[:37] + "..."
    raise InvalidInput(
        f"No stack {shown!r} on this platform; the stacks: {', '.join(sorted(known))}. "
        f"Build it first with paas stacks:build {shown}."
    )


def checked_stack(options: BuildOptions, known: Collection[str]) -> str:
    """The stack of ``options`` if the platform has it (``known``), else ``BuildFailed``."""
    if options.stack in known:
        return options.stack
    shown = options.stack if len(options.stack) <= 40 else options.stack[:37] + "..."
    raise BuildFailed(
        f"Unknown stack {shown!r} (named by {options.stack_origin}). "
        f"The stacks on this platform: {', '.join(sorted(known))}. "
        "Pick one with paas builder:set APP stack NAME, or build another with "
        "paas stacks:build NAME."
    )


def checked_builder_setting(key: str, value: str) -> str | None:
    """The value to store for ``builder:set KEY VALUE`` (None: back to the default)."""
    if key not in BUILDER_KEYS:
        raise InvalidInput(
            f"Unknown builder setting {key!r}: use one of {', '.join(BUILDER_KEYS)}."
        )
    value = value.strip()
    if value in ("", "default"):
        return None
    if key == "stack":
        if not STACK_NAME_RE.match(value):
            raise InvalidInput(f"Invalid stack name {value!r}: use a name such as bookworm.")
        return value
    size = parse_size(value)
    if not MIN_MEMORY <= size <= MAX_BUILD_MEMORY:
        raise InvalidInput("A build's memory must be between 16m and 64g.")
    return str(size)
