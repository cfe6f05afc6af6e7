"""LayerStore: digests are deterministic and cover what overlayfs sees; commits are atomic."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from paas.errors import InvalidInput, NotFound, PlatformError
from paas.images.layers import LayerStore, tree_digest

ROOT = os.geteuid() == 0


def _fill(root: Path) -> None:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\necho hi\n")
    (root / "usr/bin/tool").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc/motd").write_text("hello\n")
    os.symlink("../usr/bin/tool", root / "etc/tool")
    os.link(root / "etc/motd", root / "etc/motd.hard")


def _digest_of(tmp_path: Path, name: str, fill: Callable[[Path], object] | None = None) -> str:
    root = tmp_path / name
    root.mkdir()
    _fill(root)
    if fill is not None:
        fill(root)
    return tree_digest(root)


def test_digest_is_deterministic_and_ignores_mtimes(tmp_path: Path) -> None:
    first = _digest_of(tmp_path, "a")
    second = _digest_of(tmp_path, "b", lambda r: os.utime(r / "etc/motd", (1, 1)))
    assert first == second
    assert len(first) == 64


def _relink(root: Path) -> None:
    (root / "etc/tool").unlink()
    os.symlink("/usr/bin/tool", root / "etc/tool")


def _unlink_hardlink(root: Path) -> None:
    (root / "etc/motd.hard").unlink()
    (root / "etc/motd.hard").write_text("hello\n")


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "etc/motd").write_text("hello!\n"),
        lambda r: (r / "etc/motd").chmod(0o600),
        _relink,
        lambda r: (r / "etc/new").mkdir(),
        lambda r: (r / "etc/empty").write_text(""),
        lambda r: os.mkfifo(r / "etc/fifo"),
        _unlink_hardlink,
    ],
    ids=["content", "mode", "symlink-target", "new-dir", "new-file", "fifo", "hardlink"],
)
def test_digest_sees_every_change(tmp_path: Path, change: Callable[[Path], object]) -> None:
    assert _digest_of(tmp_path, "a") != _digest_of(tmp_path, "b", change)


def test_paths_cannot_be_confused_with_contents(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "ab").write_text("c")
    (two / "a").write_text("bc")
    assert tree_digest(one) != tree_digest(two)


def test_user_xattrs_are_part_of_the_digest(tmp_path: Path) -> None:
    plain = _digest_of(tmp_path, "a")
    try:
        tagged = _digest_of(tmp_path, "b", lambda r: os.setxattr(r / "etc/motd", "user.paas", b"1"))
    except OSError:
        pytest.skip("the filesystem of tmp_path has no user xattrs")
    assert plain != tagged


@pytest.mark.skipif(not ROOT, reason="whiteouts and trusted.* xattrs need root")
def test_whiteouts_and_opaque_dirs_are_part_of_the_digest(tmp_path: Path) -> None:
    def whiteout(root: Path) -> None:
        os.mknod(root / "etc/gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))

    def other_device(root: Path) -> None:
        os.mknod(root / "etc/gone", 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    def opaque(root: Path) -> None:
        os.setxattr(root / "etc", "trusted.overlay.opaque", b"y")

    plain = _digest_of(tmp_path, "a")
    digests = {
        plain,
        _digest_of(tmp_path, "b", whiteout),
        _digest_of(tmp_path, "c", other_device),
        _digest_of(tmp_path, "d", opaque),
    }
    assert len(digests) == 4
    assert _digest_of(tmp_path, "e", whiteout) == _digest_of(tmp_path, "f", whiteout)


def test_commit_renames_into_place_and_stores_once(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    first = store.new_dir()
    assert first.stat().st_mode & 0o777 == 0o755
    _fill(first)
    digest = store.commit(first)
    assert not first.exists()
    assert store.exists(digest)
    assert store.path(digest) == tmp_path / "layers" / digest
    assert (store.path(digest) / "etc/motd").read_text() == "hello\n"
    assert os.readlink(store.path(digest) / "etc/tool") == "../usr/bin/tool"

    second = store.new_dir()
    _fill(second)
    assert store.commit(second) == digest
    assert not second.exists()
    assert sorted(os.listdir(tmp_path / "layers")) == sorted([".tmp", digest])
    assert store.size(digest) == len("#!/bin/sh\necho hi\n") + 2 * len("hello\n")


@pytest.mark.skipif(not ROOT, reason="whiteouts and trusted.* xattrs need root")
def test_commit_keeps_whiteouts_and_xattrs(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    new = store.new_dir()
    (new / "etc").mkdir()
    os.setxattr(new / "etc", "trusted.overlay.opaque", b"y")
    os.mknod(new / "gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    layer = store.path(store.commit(new))
    assert os.getxattr(layer / "etc", "trusted.overlay.opaque") == b"y"
    info = os.lstat(layer / "gone")
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def test_discard_and_foreign_dirs(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    new = store.new_dir()
    (new / "file").write_text("x")
    store.discard(new)
    assert not new.exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(PlatformError):
        store.commit(elsewhere)


def test_bad_and_unknown_digests(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    with pytest.raises(InvalidInput):
        store.path("../etc")
    assert not store.exists("../etc")
    assert not store.exists("0" * 64)
    with pytest.raises(NotFound):
        store.size("0" * 64)
