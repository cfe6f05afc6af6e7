"""Keys that name layers: ``LayerIndex`` owns ``index_dir``, one file ``<key>`` per key
holding the digest of the layer made for it (a Dockerfile step, a set of dependencies).
A key whose layer has been collected since counts as absent."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from paas.errors import PlatformError
from paas.images.layers import DIGEST_RE, LayerStore


class LayerIndex:
    """``index_dir/<key>`` -> layer digest, for sha256 hex keys."""

    def __init__(self, index_dir: Path, layers: LayerStore) -> None:
        self.index_dir = index_dir
        self.layers = layers

    def find(self, key: str) -> str | None:
        """The layer recorded for ``key``, if it still exists."""
        try:
            digest = (self.index_dir / _checked(key)).read_text().strip()
        except FileNotFoundError:
            return None
        return digest if self.layers.exists(digest) else None

    def record(self, key: str, digest: str) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".new-", dir=self.index_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(digest + "\n")
            os.replace(tmp, self.index_dir / _checked(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def prune(self) -> list[str]:
        """Forget the keys whose layer is gone; returns them."""
        if not self.index_dir.is_dir():
            return []
        gone = []
        for entry in sorted(self.index_dir.iterdir()):
            if DIGEST_RE.match(entry.name) and self.find(entry.name) is None:
                entry.unlink(missing_ok=True)
                gone.append(entry.name)
        return gone


def _checked(key: str) -> str:
    if not DIGEST_RE.match(key):
        raise PlatformError(f"Invalid layer index key {key!r}: expected 64 hex digits.")
    return key
