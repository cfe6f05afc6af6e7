"""Which app a command acts on: ``-a APP``, a leading app name, or the checkout's ``paas`` remote.

The decision (``resolve``) is a pure function of the command's words; only
``paas_remote_url`` touches the outside world (it asks git for ``remote.paas.url``).

How the words of an app command are read, in order:

1. ``-a/--app APP`` names the app; every positional word then belongs to the command.
2. No positional word: the app is the one the current checkout's ``paas`` remote names.
3. The number of words decides when only one reading fits the command's ``Shape``:
   ``config:get hello KEY`` (2 words, the command takes 1) names the app,
   ``config:get KEY`` (1 word) does not; ``ps hello`` names it, ``ps:scale web=3`` does not.
4. When both readings fit (a command with optional or repeated arguments), the first word is
   the app unless it has the form of the command's own argument: ``ps:scale web=3`` and
   ``config:set K=V`` are never apps, as an app name holds no ``=``.
5. When the first word could be either (``ps:restart web``, ``config:unset hello KEY`` with a
   lowercase key), it is the app unless the current checkout's ``paas`` remote names another
   app: inside a checkout of ``hello``, ``ps:restart web`` restarts hello's ``web`` and
   ``ps:restart hello`` restarts all of hello; outside a checkout, ``ps:restart web`` means the
   app ``web``. ``-a`` always settles it.
6. Otherwise: an error saying how to name the app.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paas.errors import InvalidInput
from paas.model import APP_NAME_RE, CONFIG_KEY_RE, validate_app_name
from paas.procfile import PROCESS_TYPE_RE

GIT_TIMEOUT = 5.0
NO_APP = "No app given: run this inside an app's git checkout with a `paas` remote, or pass -a APP."
NO_APP_REMOTE = "No app given: name it first (for example `ps hello`), or pass -a APP."

_HTTP_PATH_RE = re.compile(r"^/git/([^/]+?)(?:\.git)?/?$")
_SSH_PATH_RE = re.compile(r"^/?([^/]+?)(?:\.git)?/?$")
_SCP_RE = re.compile(r"^[^/@:]+@[^/:]+:(.+)$")  # paas@host:hello, as Dokku's remotes
_PASSWORD_RE = re.compile(r"//([^/@:]*):[^/@]*@")  # the token in http://paas:TOKEN@host/...


def is_assignment(word: str) -> bool:
    """``NAME=VALUE``: a scale count or a config var, never an app name."""
    return "=" in word


def is_config_key(word: str) -> bool:
    return CONFIG_KEY_RE.fullmatch(word) is not None


def is_process_type(word: str) -> bool:
    return PROCESS_TYPE_RE.fullmatch(word) is not None


def never(word: str) -> bool:
    return False


@dataclass(frozen=True)
class Shape:
    """What the app command ``command`` takes besides the app: ``args`` as its usage shows
    them, between ``least`` and ``most`` words (None: no limit), and which words have the form
    of its own argument."""

    command: str
    args: str = ""
    least: int = 0
    most: int | None = 0
    own_word: Callable[[str], bool] = never

    def fits(self, count: int) -> bool:
        return self.least <= count and (self.most is None or count <= self.most)


@dataclass(frozen=True)
class Target:
    """The app a command acts on and the words left for the command."""

    app: str
    words: tuple[str, ...]


RemoteUrl = Callable[[], str | None]


def app_from_remote_url(url: str) -> str | None:
    """The app a git remote URL points at: ``http(s)://host/git/APP.git``,
    ``ssh://user@host:port/APP`` or ``user@host:APP``; None for any other URL."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("http", "https"):
        match = _HTTP_PATH_RE.fullmatch(parsed.path)
    elif parsed.scheme == "ssh":
        match = _SSH_PATH_RE.fullmatch(parsed.path)
    else:
        scp = _SCP_RE.fullmatch(url)
        match = None if scp is None else _SSH_PATH_RE.fullmatch(scp.group(1))
    if match is None or not APP_NAME_RE.fullmatch(match.group(1)):
        return None
    return match.group(1)


def paas_remote_url(cwd: Path | None = None) -> str | None:
    """``remote.paas.url`` of the git checkout around ``cwd``; None outside one (or without git)."""
    try:
        result = subprocess.run(
            ["git", "config", "--get", "remote.paas.url"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    url = result.stdout.strip()
    return url if result.returncode == 0 and url else None


def resolve(
    app: str | None, words: Sequence[str], shape: Shape, remote_url: RemoteUrl | None
) -> Target:
    """Split a command's words into the app and the command's own words (see the module doc).

    ``remote_url`` gives the checkout's ``paas`` remote; None where there is no checkout to
    look at (commands over SSH). Raises ``InvalidInput`` when the app cannot be told or the
    number of words does not fit the command.
    """
    words = tuple(words)
    if app is None and words and _first_is_app(words, shape, remote_url):
        app, words = words[0], words[1:]
    if not shape.fits(len(words)):
        usage = f"paas {shape.command} [-a APP | APP] {shape.args}".rstrip()
        raise InvalidInput(f"Wrong number of arguments. Usage: {usage}")
    if app is None:
        app = _app_of_remote(remote_url)
    return Target(validate_app_name(app), words)


def _first_is_app(words: tuple[str, ...], shape: Shape, remote_url: RemoteUrl | None) -> bool:
    with_app, without_app = shape.fits(len(words) - 1), shape.fits(len(words))
    if with_app != without_app:
        return with_app
    first = words[0]
    if not shape.own_word(first):
        return True
    if not APP_NAME_RE.fullmatch(first):
        return False
    url = None if remote_url is None else remote_url()
    checkout_app = None if url is None else app_from_remote_url(url)
    return checkout_app is None or checkout_app == first


def _app_of_remote(remote_url: RemoteUrl | None) -> str:
    if remote_url is None:
        raise InvalidInput(NO_APP_REMOTE)
    url = remote_url()
    if url is None:
        raise InvalidInput(NO_APP)
    app = app_from_remote_url(url)
    if app is None:
        shown = _PASSWORD_RE.sub(r"//\1:***@", url)
        raise InvalidInput(
            f"The git remote `paas` ({shown}) does not name an app; pass -a APP, or point "
            "the remote at http://HOST:PORT/git/APP.git or ssh://paas@HOST:PORT/APP."
        )
    return app
