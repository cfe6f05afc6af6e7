"""Content-addressed layers on disk.

``LayerStore`` owns ``layers_dir``: every layer is a plain directory ``<sha256hex>/`` that
overlayfs can use as a lower dir as is. A layer is filled in a temp dir on the same
filesystem (``new_dir``), then ``commit`` hashes the tree and renames it into place, so a
layer dir is complete or absent, never half written. The digest covers what overlayfs
sees: paths, types, modes, owners, file contents, symlink targets, device numbers (overlay
whiteouts are 0/0 character devices) and ``trusted.*``/``user.*`` xattrs (such as
``trusted.overlay.opaque``). Layers are never modified once committed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from paas.errors import InvalidInput, NotFound, PlatformError

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_TMP = ".tmp"
_CHUNK = 1024 * 1024
# xattrs that are part of a layer's meaning: overlay's (whiteouts, opaque dirs, redirects),
# user ones and file capabilities. security.selinux and friends belong to the host.
_XATTR_PREFIXES = (b"trusted.", b"user.", b"security.capability")


def _field(data: bytes) -> bytes:
    """Length-prefixed field, so that no value can be mistaken for the next one."""
    return str(len(data)).encode() + b":" + data + b","


def _file_sha256(path: bytes) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest().encode()


def _xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return []
        raise
    found = []
    for name in names:
        raw = name.encode()
        if raw.startswith(_XATTR_PREFIXES):
            found.append((raw, os.getxattr(path, name, follow_symlinks=False)))
    return sorted(found)


def _walk(root: bytes, rel: bytes = b".") -> Iterator[tuple[bytes, os.stat_result]]:
    """Every entry under ``root`` (itself first), depth first, children sorted by name."""
    full = root if rel == b"." else os.path.join(root, rel)
    info = os.lstat(full)
    yield rel, info
    if stat.S_ISDIR(info.st_mode):
        for name in sorted(os.listdir(full)):
            yield from _walk(root, name if rel == b"." else os.path.join(rel, name))


def tree_digest(root: Path) -> str:
    """sha256 of a deterministic serialisation of the tree at ``root`` (mtimes excluded)."""
    base = os.fsencode(root)
    digest = hashlib.sha256(b"paas-layer-v1\n")
    seen_inodes: dict[tuple[int, int], bytes] = {}
    for rel, info in _walk(base):
        full = base if rel == b"." else os.path.join(base, rel)
        mode = info.st_mode
        extra: list[bytes] = []
        if stat.S_ISDIR(mode):
            kind = b"d"
        elif stat.S_ISREG(mode):
            kind = b"f"
            inode = (info.st_dev, info.st_ino)
            if info.st_nlink > 1 and inode in seen_inodes:
                extra = [b"hardlink", seen_inodes[inode]]
            else:
                seen_inodes[inode] = rel
                extra = [str(info.st_size).encode(), _file_sha256(full)]
        elif stat.S_ISLNK(mode):
            kind, extra = b"l", [os.readlink(full)]
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = b"c" if stat.S_ISCHR(mode) else b"b"
            extra = [str(os.major(info.st_rdev)).encode(), str(os.minor(info.st_rdev)).encode()]
        elif stat.S_ISFIFO(mode):
            kind = b"p"
        elif stat.S_ISSOCK(mode):
            kind = b"s"
        else:
            raise PlatformError(f"Unsupported file type in layer: {full!r}.")
        fields = [rel, kind, str(stat.S_IMODE(mode)).encode()]
        fields += [str(info.st_uid).encode(), str(info.st_gid).encode(), *extra]
        for name, value in _xattrs(full):
            fields += [b"xattr", name, value]
        digest.update(_field(b"".join(_field(item) for item in fields)))
    return digest.hexdigest()


def tree_size(root: Path) -> int:
    """Apparent size in bytes of the regular files under ``root``."""
    total = 0
    for _rel, info in _walk(os.fsencode(root)):
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
    return total


class LayerStore:
    """Immutable layer dirs named by the digest of their content."""

    def __init__(self, layers_dir: Path) -> None:
        self.layers_dir = layers_dir
        self._tmp_dir = layers_dir / _TMP

    def new_dir(self) -> Path:
        """A fresh empty dir (mode 0755) on the layers' filesystem, to fill and ``commit``."""
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="new-", dir=self._tmp_dir))
        path.chmod(0o755)
        return path

    def discard(self, tmp_dir: Path) -> None:
        """Delete a dir from ``new_dir`` that will not become a layer."""
        self._check_tmp(tmp_dir)
        shutil.rmtree(tmp_dir, ignore_errors=True)

    def commit(self, tmp_dir: Path) -> str:
        """Turn ``tmp_dir`` (from ``new_dir``) into a layer; return its digest.

        A layer with the same digest is stored once: if it exists, ``tmp_dir`` is deleted.
        """
        self._check_tmp(tmp_dir)
        digest = tree_digest(tmp_dir)
        final = self.layers_dir / digest
        if final.exists():
            shutil.rmtree(tmp_dir)
            return digest
        try:
            os.rename(tmp_dir, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(tmp_dir)  # another process committed the same layer meanwhile
        return digest

    def path(self, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise InvalidInput(f"Invalid layer digest {digest!r}: expected 64 hex digits.")
        return self.layers_dir / digest

    def exists(self, digest: str) -> bool:
        return bool(DIGEST_RE.match(digest)) and (self.layers_dir / digest).is_dir()

    def digests(self) -> list[str]:
        """Every stored layer."""
        if not self.layers_dir.is_dir():
            return []
        return sorted(p.name for p in self.layers_dir.iterdir() if DIGEST_RE.match(p.name))

    def age(self, digest: str) -> float:
        """Seconds since the layer was committed (its dir's last status change)."""
        return time.time() - self.path(digest).stat().st_ctime

    def remove(self, digest: str) -> None:
        """Delete a layer for good; the caller makes sure nothing uses it."""
        shutil.rmtree(self.path(digest), ignore_errors=True)

    def size(self, digest: str) -> int:
        """Apparent size in bytes of the layer's regular files."""
        if not self.exists(digest):
            raise NotFound(f"Layer {digest} does not exist.")
        return tree_size(self.path(digest))

    def _check_tmp(self, tmp_dir: Path) -> None:
        if tmp_dir.parent != self._tmp_dir:
            raise PlatformError(f"{tmp_dir} is not a dir made by LayerStore.new_dir().")
