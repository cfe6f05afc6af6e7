"""App repositories on disk: one bare git repository per app, ``<repos_dir>/<app>.git``.

Paths are always derived from a validated app name, never from a path a client sent. Every
repository gets the platform's ``pre-receive`` hook as a symlink to the project's ``hooks/``
directory, so that upgrading the platform upgrades the hook of every app.

``export`` and ``read_file`` read straight from the object store: the pre-receive hook runs
before any ref moves, so the commit being built is not on a branch yet.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.objects import Blob, Commit, ObjectID, Tag, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import Backend

from paas.errors import InvalidInput, NotFound, PlatformError
from paas.model import DEPLOY_BRANCHES, validate_app_name

HOOK_NAME = "pre-receive"
_HEX_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_UNSAFE_NAMES = {b"", b".", b"..", b".git"}
_S_IFGITLINK = 0o160000


def default_hook_source() -> Path:
    """The project's ``hooks/`` directory (the platform runs from its source tree)."""
    return Path(__file__).resolve().parents[2] / "hooks"


class RepoStore:
    """The bare repositories of all apps under ``repos_dir``.

    ``hook_source`` is the project's ``hooks/`` directory. ``owner`` is the (uid, gid) that
    must own every repository (the unprivileged user the SSH forced command runs as); it is
    applied whenever this process, running as root, creates or writes a repository.
    """

    def __init__(
        self, repos_dir: Path, hook_source: Path, owner: tuple[int, int] | None = None
    ) -> None:
        self.repos_dir = repos_dir
        self.hook_source = hook_source
        self.owner = owner

    def path(self, app: str) -> Path:
        return self.repos_dir / f"{validate_app_name(app)}.git"

    def exists(self, app: str) -> bool:
        return (self.path(app) / "HEAD").is_file()

    def ensure(self, app: str) -> Path:
        """Create the app's bare repository if missing, (re)link its hook; return its path."""
        target = self.path(app)
        hook = self.hook_source / HOOK_NAME
        if not os.access(hook, os.X_OK):
            raise PlatformError(f"The git hook {hook} is missing or not executable.")
        if not self.exists(app):
            self.repos_dir.mkdir(parents=True, exist_ok=True)
            # Built aside and renamed into place, so that two pushes creating the same app
            # at once both end up with one complete repository.
            tmp = Path(tempfile.mkdtemp(prefix=f".{app}-", dir=self.repos_dir))
            try:
                Repo.init_bare(str(tmp / "repo.git"), mkdir=True).close()
                self._link_hook(tmp / "repo.git", hook)
                self._chown(tmp / "repo.git")
                try:
                    os.rename(tmp / "repo.git", target)
                except OSError:
                    if not self.exists(app):
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self._link_hook(target, hook)
        return target

    def restore_owner(self, app: str) -> None:
        """Give back files this (root) process wrote into the repository to its owner."""
        if self.owner is not None and self.exists(app):
            self._chown(self.path(app))

    def delete(self, app: str) -> None:
        shutil.rmtree(self.path(app), ignore_errors=True)

    def head(self, app: str) -> str | None:
        """The commit of the deploy branch (``master``, else ``main``), or None."""
        if not self.exists(app):
            return None
        with self._open(app) as repo:
            refs = repo.get_refs()
            for branch in DEPLOY_BRANCHES:
                sha = refs.get(Ref(branch))
                if sha is not None:
                    return sha.decode("ascii")
        return None

    def export(self, app: str, rev: str, dest: Path) -> str:
        """Write the tree of commit ``rev`` (a full sha or a ref name) into ``dest``.

        ``dest`` must not exist or be empty. Regular files keep their executable bit and
        symlinks are recreated as symlinks; submodules become empty directories. Returns
        the commit's sha.
        """
        with self._open(app) as repo:
            commit = self._commit(repo, rev)
            dest.mkdir(parents=True, exist_ok=True)
            if any(dest.iterdir()):
                raise PlatformError(f"Cannot export {app}@{rev} into {dest}: it is not empty.")
            self._write_tree(repo, commit.tree, os.fsencode(dest))
            return str(commit.id.decode("ascii"))

    def read_file(self, app: str, rev: str, path: str) -> bytes | None:
        """The content of the regular file ``path`` in commit ``rev``, or None if absent."""
        with self._open(app) as repo:
            commit = self._commit(repo, rev)
            mode, sha = stat.S_IFDIR, commit.tree
            for part in path.strip("/").encode().split(b"/"):
                if not stat.S_ISDIR(mode):
                    return None
                tree = repo.object_store[sha]
                if not isinstance(tree, Tree) or part not in tree:
                    return None
                mode, sha = tree[part]
            if not stat.S_ISREG(mode):
                return None
            blob = repo.object_store[sha]
            return bytes(blob.data) if isinstance(blob, Blob) else None

    # --- internals -------------------------------------------------------------------------

    @contextmanager
    def _open(self, app: str) -> Iterator[Repo]:
        try:
            repo = Repo(str(self.path(app)))
        except NotGitRepository:
            raise NotFound(f"App {app!r} has no git repository: push to it first.") from None
        try:
            yield repo
        finally:
            repo.close()

    @staticmethod
    def _commit(repo: Repo, rev: str) -> Commit:
        try:
            sha = (
                ObjectID(rev.encode())
                if _HEX_SHA_RE.fullmatch(rev)
                else repo.refs[Ref(rev.encode())]
            )
            obj = repo.object_store[sha]
            while isinstance(obj, Tag):
                obj = repo.object_store[obj.object[1]]
        except KeyError:
            raise NotFound(f"No commit {rev!r} in this repository.") from None
        if not isinstance(obj, Commit):
            raise InvalidInput(f"{rev!r} is not a commit.")
        return obj

    def _write_tree(self, repo: Repo, tree_sha: ObjectID, dest: bytes) -> None:
        tree = repo.object_store[tree_sha]
        if not isinstance(tree, Tree):
            raise InvalidInput(f"Object {tree_sha.decode()} is not a tree.")
        for entry in tree.iteritems():
            name, mode, sha = entry.path, entry.mode, entry.sha
            if name.lower() in _UNSAFE_NAMES or b"/" in name or b"\0" in name:
                raise InvalidInput(f"Refusing to check out the unsafe path {name!r}.")
            target = os.path.join(dest, name)
            # mkdir, symlink and O_EXCL|O_NOFOLLOW all fail on an existing path, so a tree
            # with duplicate names cannot make us write through a symlink it created.
            if stat.S_ISDIR(mode):
                os.mkdir(target, 0o755)
                self._write_tree(repo, sha, target)
            elif mode == _S_IFGITLINK:
                os.mkdir(target, 0o755)
            elif stat.S_ISLNK(mode):
                os.symlink(_blob(repo, sha), target)
            else:
                perm = 0o755 if mode & 0o111 else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                fd = os.open(target, flags, perm)
                with os.fdopen(fd, "wb") as out:
                    out.write(_blob(repo, sha))
                os.chmod(target, perm)  # not narrowed by the umask

    @staticmethod
    def _link_hook(repo_dir: Path, hook: Path) -> None:
        link = repo_dir / "hooks" / HOOK_NAME
        if link.is_symlink() and os.readlink(link) == str(hook):
            return
        link.parent.mkdir(exist_ok=True)
        tmp = link.with_name(f".{HOOK_NAME}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(hook)
        os.replace(tmp, link)

    def _chown(self, top: Path) -> None:
        if self.owner is None:
            return
        uid, gid = self.owner
        os.lchown(top, uid, gid)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), uid, gid)


def _blob(repo: Repo, sha: ObjectID) -> bytes:
    obj = repo.object_store[sha]
    if not isinstance(obj, Blob):
        raise InvalidInput(f"Object {sha.decode()} is not a file.")
    return bytes(obj.data)


class AppBackend(Backend):
    """dulwich backend resolving ``/<app>.git``, ``<app>.git`` or ``<app>`` to the app's repo.

    Only existing repositories of valid app names are opened; anything else is
    ``NotGitRepository``, which dulwich reports as "not found".
    """

    def __init__(self, repos: RepoStore) -> None:
        super().__init__()
        self.repos = repos

    def open_repository(self, path: str | bytes) -> Repo:
        text = os.fsdecode(path).strip("/")
        app = text.removesuffix(".git")
        try:
            repo_path = self.repos.path(app)
        except InvalidInput as exc:
            raise NotGitRepository(exc.message) from None
        if not self.repos.exists(app):
            raise NotGitRepository(f"App {app!r} does not exist.")
        return Repo(str(repo_path))
