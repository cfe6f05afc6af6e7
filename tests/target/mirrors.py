"""The package mirrors this host is configured for, read from its apt and pip settings.

The target's proxy admits only these hosts, and the target image installs from the same
Debian mirror. Nothing here names a host: everything comes from the host's configuration
(``apt-get indextargets``, ``pip config list``, and pip's own default index when the
configuration sets none).

Run as ``python3 mirrors.py debian`` (the Debian mirror URL) or ``python3 mirrors.py hosts``
(every host name the proxy must admit, one a line).
"""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

TIMEOUT = 30


def _lines(argv: list[str]) -> list[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def apt_uris() -> list[str]:
    """The URIs of every index apt fetches (one per suite, component and architecture)."""
    return _lines(["apt-get", "indextargets", "--format", "$(URI)"])


def debian_mirror() -> str:
    """The mirror of the host's main Debian suite: what comes before ``/dists/``."""
    for uri in apt_uris():
        base, sep, rest = uri.partition("/dists/")
        if sep and rest.startswith("bookworm/main/"):
            return base
    raise SystemExit("No bookworm main index in the host's apt sources.")


def pip_index_hosts() -> set[str]:
    """The hosts of the index URLs pip is configured for, else those of pip's default index."""
    urls: list[str] = []
    own_index = False
    for line in _lines([sys.executable, "-m", "pip", "config", "list"]):
        key, _, value = line.partition("=")
        if key.endswith("index-url"):
            urls.extend(value.strip("'\"").split())
            own_index = own_index or key.rsplit(".", 1)[-1] == "index-url"
    hosts = {urlsplit(u).hostname for u in urls if u.startswith(("http://", "https://"))}
    if not own_index:
        from pip._internal.models.index import PyPI

        hosts |= {urlsplit(PyPI.url).hostname, PyPI.file_storage_domain}
    return {h for h in hosts if h}


def proxy_hosts() -> list[str]:
    apt_hosts = {urlsplit(u).hostname for u in apt_uris()}
    return sorted({h for h in apt_hosts if h} | pip_index_hosts())


if __name__ == "__main__":
    if sys.argv[1:] == ["debian"]:
        print(debian_mirror())
    elif sys.argv[1:] == ["hosts"]:
        print("\n".join(proxy_hosts()))
    else:
        raise SystemExit("usage: mirrors.py debian|hosts")
