"""RepoStore: creating repos, reading and exporting commits straight from the object store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from paas.errors import InvalidInput, NotFound, PlatformError
from paas.gitserver.repos import AppBackend, RepoStore, default_hook_source


@pytest.fixture
def store(tmp_path: Path) -> RepoStore:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-receive").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "pre-receive").chmod(0o755)
    return RepoStore(tmp_path / "repos", hooks)


def add_commit(store: RepoStore, app: str, files: dict[bytes, tuple[int, bytes]]) -> str:
    """Add a commit of ``files`` (path -> (mode, content)) without pointing any ref at it."""
    with Repo(str(store.path(app))) as repo:
        objects = repo.object_store

        def build(entries: dict[bytes, tuple[int, bytes]]) -> ObjectID:
            tree = Tree()
            subdirs: dict[bytes, dict[bytes, tuple[int, bytes]]] = {}
            for path, (mode, content) in entries.items():
                head, _, rest = path.partition(b"/")
                if rest:
                    subdirs.setdefault(head, {})[rest] = (mode, content)
                else:
                    blob = Blob.from_string(content)
                    objects.add_object(blob)
                    tree.add(head, mode, blob.id)
            for name, sub in subdirs.items():
                tree.add(name, stat.S_IFDIR, build(sub))
            objects.add_object(tree)
            return tree.id

        commit = Commit()
        commit.tree = build(files)
        commit.author = commit.committer = b"t <t@example.com>"
        commit.author_time = commit.commit_time = 0
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"test"
        objects.add_object(commit)
        return str(commit.id.decode())


def set_ref(store: RepoStore, app: str, ref: bytes, sha: str) -> None:
    with Repo(str(store.path(app))) as repo:
        repo.refs[Ref(ref)] = ObjectID(sha.encode())


def test_ensure_creates_a_bare_repo_with_the_hook_linked(store: RepoStore) -> None:
    assert not store.exists("hello")
    path = store.ensure("hello")
    assert path == store.repos_dir / "hello.git"
    assert store.exists("hello")
    hook = path / "hooks" / "pre-receive"
    assert hook.is_symlink()
    assert os.readlink(hook) == str(store.hook_source / "pre-receive")
    assert store.ensure("hello") == path  # idempotent
    assert [p.name for p in store.repos_dir.iterdir()] == ["hello.git"]


def test_ensure_relinks_a_hook_that_points_elsewhere(store: RepoStore, tmp_path: Path) -> None:
    store.ensure("hello")
    other = tmp_path / "other"
    other.mkdir()
    (other / "pre-receive").write_text("#!/bin/sh\n")
    (other / "pre-receive").chmod(0o755)
    RepoStore(store.repos_dir, other).ensure("hello")
    assert os.readlink(store.path("hello") / "hooks" / "pre-receive") == str(other / "pre-receive")


def test_ensure_refuses_without_an_executable_hook(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="missing or not executable"):
        RepoStore(tmp_path / "repos", tmp_path / "nohooks").ensure("hello")


@pytest.mark.parametrize("name", ["../etc", "a/b", "Hello", "", "x" * 40, "-x"])
def test_paths_come_only_from_valid_app_names(store: RepoStore, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.path(name)


def test_default_hook_source_is_the_projects_hooks_dir() -> None:
    assert (default_hook_source() / "pre-receive").is_file()


def test_export_writes_files_exec_bits_symlinks_and_dirs(store: RepoStore, tmp_path: Path) -> None:
    store.ensure("hello")
    sha = add_commit(
        store,
        "hello",
        {
            b"Procfile": (0o100644, b"web: ./run\n"),
            b"run": (0o100755, b"#!/bin/sh\n"),
            b"link": (0o120000, b"Procfile"),
            b"src/app/main.py": (0o100644, b"print(1)\n"),
        },
    )
    dest = tmp_path / "out"
    assert store.export("hello", sha, dest) == sha  # not on any ref: read from the store
    assert (dest / "Procfile").read_bytes() == b"web: ./run\n"
    assert stat.S_IMODE((dest / "run").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "Procfile").stat().st_mode) == 0o644
    assert os.readlink(dest / "link") == "Procfile"
    assert (dest / "src" / "app" / "main.py").read_text() == "print(1)\n"


def test_export_by_ref_and_into_a_non_empty_dir(store: RepoStore, tmp_path: Path) -> None:
    store.ensure("hello")
    sha = add_commit(store, "hello", {b"a": (0o100644, b"1")})
    set_ref(store, "hello", b"refs/heads/master", sha)
    assert store.export("hello", "refs/heads/master", tmp_path / "out") == sha
    with pytest.raises(PlatformError, match="not empty"):
        store.export("hello", sha, tmp_path / "out")


@pytest.mark.parametrize("bad", [b"..", b".git", b".GIT"])
def test_export_refuses_unsafe_tree_entries(store: RepoStore, tmp_path: Path, bad: bytes) -> None:
    store.ensure("hello")
    sha = add_commit(store, "hello", {bad: (0o100644, b"x")})
    with pytest.raises(InvalidInput, match="unsafe path"):
        store.export("hello", sha, tmp_path / "out")


def test_export_of_unknown_commit_or_app(store: RepoStore, tmp_path: Path) -> None:
    store.ensure("hello")
    with pytest.raises(NotFound):
        store.export("hello", "0" * 40, tmp_path / "out")
    with pytest.raises(NotFound):
        store.export("hello", "refs/heads/nope", tmp_path / "out")
    with pytest.raises(NotFound):
        store.export("other", "0" * 40, tmp_path / "out")


def test_read_file(store: RepoStore) -> None:
    store.ensure("hello")
    sha = add_commit(
        store,
        "hello",
        {
            b"Procfile": (0o100644, b"web: x\n"),
            b"d/app.json": (0o100644, b"{}"),
            b"l": (0o120000, b"Procfile"),
        },
    )
    assert store.read_file("hello", sha, "Procfile") == b"web: x\n"
    assert store.read_file("hello", sha, "d/app.json") == b"{}"
    assert store.read_file("hello", sha, "/d/app.json") == b"{}"
    assert store.read_file("hello", sha, "missing") is None
    assert store.read_file("hello", sha, "d") is None
    assert store.read_file("hello", sha, "Procfile/x") is None
    assert store.read_file("hello", sha, "l") is None


def test_head_prefers_master_then_main(store: RepoStore) -> None:
    assert store.head("hello") is None
    store.ensure("hello")
    assert store.head("hello") is None
    one = add_commit(store, "hello", {b"a": (0o100644, b"1")})
    two = add_commit(store, "hello", {b"a": (0o100644, b"2")})
    set_ref(store, "hello", b"refs/heads/main", one)
    assert store.head("hello") == one
    set_ref(store, "hello", b"refs/heads/master", two)
    assert store.head("hello") == two


def test_delete(store: RepoStore) -> None:
    store.ensure("hello")
    store.delete("hello")
    assert not store.exists("hello")
    store.delete("hello")  # idempotent


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_owner_is_applied_to_new_repos_and_restored(store: RepoStore) -> None:
    owned = RepoStore(store.repos_dir, store.hook_source, owner=(65534, 65534))
    path = owned.ensure("hello")
    assert all(p.lstat().st_uid == 65534 for p in [path, *path.rglob("*")])
    (path / "refs" / "heads" / "new").write_text("x")  # as if written by root on a push
    owned.restore_owner("hello")
    assert (path / "refs" / "heads" / "new").stat().st_uid == 65534


def test_backend_maps_request_paths_to_repos(store: RepoStore) -> None:
    from dulwich.errors import NotGitRepository

    store.ensure("hello")
    backend = AppBackend(store)
    for path in ("/hello.git", "hello.git", "hello", b"/hello.git"):
        repo = backend.open_repository(path)
        assert Path(repo.path).resolve() == store.path("hello").resolve()
        repo.close()
    for bad in ("/missing.git", "/../hello.git", "/Hello.git"):
        with pytest.raises(NotGitRepository):
            backend.open_repository(bad)
