"""Dockerfile builds: one content-addressed layer per RUN, COPY and ADD, with a step cache.

``DockerfileBuilder.build`` reads ``Dockerfile`` and ``.dockerignore`` at the top of the
source (see ``paas.build.dockerfile``) and carries the instructions out in order:

- ``FROM`` names a stack (``bookworm``: its layers, built once by ``StackBuilder``) or a local
  image: ``sha256:<image id>`` of the image store, or a name that the ``image_refs`` callable
  resolves to an image id (the platform maps ``APP`` and ``APP:vN`` to the image of that
  release). A local image gives its layers, environment and work dir. One FROM per file;
  ``ARG`` may come before it and is then only visible to FROM.
- ``RUN`` runs in a build container over the layers so far (read-only lowers; the kept
  upper dir becomes the step's layer), in the host network namespace with the host's proxy
  settings, CA bundle and pip configuration (``paas.build.buildpack.host_build_environment``), in
  the WORKDIR, as the USER (through ``setpriv``), with the ARG and ENV values as environment.
- ``COPY`` and ``ADD`` write the files of the build context (less what ``.dockerignore``
  excludes) straight into a new layer dir, owned by root unless ``--chown`` says otherwise.
  ADD takes local files only: a URL or an archive (which Docker would extract) fails.
- ``ENV``, ``ARG``, ``WORKDIR``, ``USER``, ``EXPOSE``, ``CMD``, ``ENTRYPOINT`` and ``LABEL``
  change the image's metadata and make no layer.

The image's file system is read from its layer dirs (whiteouts and opaque dirs honoured):
USER and ``--chown`` names are looked up in its ``/etc/passwd`` and ``/etc/group`` when the
line is reached; COPY follows the image's symlinks in its destination (``/bin`` is
``usr/bin`` in bookworm) and gives the dirs it creates the owner and mode the image already
has for them. A RUN step's bind mounts onto paths the image lacks (``/etc/pip.conf``) leave
empty files in its upper dir; they are removed before the layer is committed. The output
reads like Docker's: ``Step N/M : ...``, `` ---> Using cache`` or `` ---> Running in ID``
and the RUN's own lines, then `` ---> `` and the short layer digest.

Cache: every instruction extends a chain of keys, ``sha256(parent key, instruction as
evaluated (variables expanded, paths resolved), content of the files it copies)``, rooted in
the FROM image's layers. The layer each RUN, COPY and ADD made is recorded under its key as
``cache_dir/<key>`` (a ``LayerIndex``). A step whose key is recorded and whose layer
still exists is not run again ("Using cache"), so an unchanged rebuild runs nothing and a
change rebuilds from the first changed step. ARG values come from the app's config vars.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paas.build.buildpack import PIP_CONF_PATH, host_build_environment, out_of_memory
from paas.build.dockerfile import (
    DockerIgnore,
    Instruction,
    expand_word,
    expand_words,
    fail,
    key_values,
    match_regex,
    parse_dockerfile,
)
from paas.errors import BuildFailed
from paas.images.layer_index import LayerIndex
from paas.images.layers import DIGEST_RE, LayerStore
from paas.images.oci import is_opaque, is_whiteout, walk
from paas.images.stack import ContainerRunner, StackBuilder
from paas.images.store import ImageStore
from paas.runtime.runtime import RunOutOfMemory, RunTimedOut
from paas.runtime.spec import ContainerSpec
from paas.settings import Limits

DOCKERFILE = "Dockerfile"
SETPRIV = "/usr/bin/setpriv"  # util-linux, in every Debian stack: runs RUN steps as USER
_CACHE_ROOT = "paas-dockerfile-v1"
_CHUNK = 1024 * 1024
_MAX_SYMLINKS = 40
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class DockerBuild:
    """The image a Dockerfile describes."""

    layers: tuple[str, ...]  # bottom (the FROM image's) to top
    env: Mapping[str, str]  # ENV (with the FROM image's)
    workdir: str  # WORKDIR, "/" by default
    user: str | None  # USER as written (expanded), None: root
    user_ids: tuple[int, int] | None  # USER resolved in the image's /etc/passwd: (uid, gid)
    command: tuple[str, ...] | None  # CMD, a shell form as ("/bin/sh", "-c", text)
    entrypoint: tuple[str, ...] | None  # ENTRYPOINT, likewise
    exposed_port: int | None  # the first TCP port of EXPOSE
    labels: Mapping[str, str]

    @property
    def process_argv(self) -> tuple[str, ...] | None:
        """What the image runs: ENTRYPOINT followed by CMD (Docker's rule; a shell-form
        ENTRYPOINT thereby ignores CMD, which only becomes ``$0`` of its shell)."""
        argv = (*(self.entrypoint or ()), *(self.command or ()))
        return argv or None


@dataclass(frozen=True)
class _User:
    uid: int
    gid: int
    home: str | None  # None: the uid has no /etc/passwd entry


@dataclass(frozen=True)
class _State:
    """The image after some instructions."""

    key: str  # cache key of everything so far
    layers: tuple[str, ...]
    env: Mapping[str, str]
    workdir: str
    args: Mapping[str, str] = field(default_factory=dict)  # ARGs declared with a value
    global_args: Mapping[str, str] = field(default_factory=dict)  # those before FROM
    user: str | None = None
    ids: _User | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    ports: tuple[int, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def words_env(self) -> dict[str, str]:
        """The variables instructions expand: ARG values, overridden by ENV."""
        return {**self.args, **self.env}


class DockerfileBuilder:
    """Builds an app's Dockerfile into layers, reusing the layers of unchanged steps."""

    def __init__(
        self,
        runtime: ContainerRunner,
        layers: LayerStore,
        stacks: StackBuilder,
        images: ImageStore,
        cache_dir: Path,
        *,
        stack_names: Collection[str] = ("bookworm",),
        image_refs: Callable[[str], str | None] | None = None,
        host_env: Mapping[str, str] | None = None,
        pip_conf: Path = Path(PIP_CONF_PATH),
        resolv_conf: Path = Path("/etc/resolv.conf"),
    ) -> None:
        self.runtime = runtime
        self.layers = layers
        self.stacks = stacks
        self.images = images
        self.cache = LayerIndex(cache_dir, layers)
        self.stack_names = tuple(stack_names)
        self.image_refs = image_refs
        self.env, self.mounts = host_build_environment(host_env, pip_conf)
        self.resolv_conf = resolv_conf

    def build(
        self,
        app: str,
        source_dir: Path,
        config: Mapping[str, str],
        output: Callable[[str], None],
        limits: Limits,
        timeout: float,
    ) -> DockerBuild:
        """Build ``source_dir/Dockerfile``; ``BuildFailed`` names the instruction's line."""
        path = source_dir / DOCKERFILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BuildFailed("There is no Dockerfile at the top of the repository.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BuildFailed(f"Cannot read the Dockerfile: {exc}.") from None
        instructions = parse_dockerfile(text)
        run = _Build(
            self, app, source_dir, DockerIgnore.read(source_dir), dict(config), output, limits,
            timeout, time.monotonic() + timeout,
        )  # fmt: skip
        return run.all(instructions)

    # --- the step cache ---------------------------------------------------------------------


def _chain(parent: str, *parts: Any) -> str:
    """The cache key of a step: its parent's key and the step as evaluated."""
    data = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{parent}\n{data}".encode()).hexdigest()


@dataclass(frozen=True)
class _Build:
    """One build: the instructions carried out one after the other."""

    builder: DockerfileBuilder
    app: str
    context: Path
    ignore: DockerIgnore
    config: Mapping[str, str]
    out: Callable[[str], None]
    limits: Limits
    timeout: float
    deadline: float

    def all(self, instructions: Sequence[Instruction]) -> DockerBuild:
        handlers: dict[str, Callable[[Instruction, _State], _State]] = {
            "RUN": self._run, "COPY": self._copy, "ADD": self._copy, "ENV": self._env,
            "ARG": self._arg, "WORKDIR": self._workdir, "USER": self._user,
            "EXPOSE": self._expose, "CMD": self._cmd, "ENTRYPOINT": self._cmd,
            "LABEL": self._label,
        }  # fmt: skip
        started = time.monotonic()
        global_args: dict[str, str] = {}
        state: _State | None = None
        total = len(instructions)
        for number, ins in enumerate(instructions, 1):
            self.out(f"Step {number}/{total} : {ins}")
            if ins.keyword == "FROM":
                if state is not None:
                    raise fail(ins.line, "a second FROM: multi-stage builds are not supported.")
                state = self._from(ins, global_args)
            elif state is None:
                if ins.keyword != "ARG":
                    raise fail(
                        ins.line,
                        "the Dockerfile must start with FROM (only ARG may "
                        "come before it), for example FROM bookworm.",
                    )
                for name, value in self._arg_values(ins, global_args, {}):
                    global_args[name] = value
            else:
                state = handlers[ins.keyword](ins, state)
        if state is None:
            raise BuildFailed("The Dockerfile has no FROM: start it with FROM bookworm.")
        ports = state.ports
        if len(ports) > 1:
            self.out(f"-----> EXPOSE lists {len(ports)} ports: the router sends to {ports[0]}")
        self.out(f"-----> Dockerfile built in {time.monotonic() - started:.1f} s")
        return DockerBuild(
            layers=state.layers, env=dict(state.env), workdir=state.workdir, user=state.user,
            user_ids=(state.ids.uid, state.ids.gid) if state.ids else None,
            command=state.command, entrypoint=state.entrypoint,
            exposed_port=ports[0] if ports else None, labels=dict(state.labels),
        )  # fmt: skip

    # --- FROM and ARG -----------------------------------------------------------------------

    def _from(self, ins: Instruction, global_args: Mapping[str, str]) -> _State:
        words = expand_words(ins.text, global_args, ins.line, ins.escape)
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise fail(ins.line, f"FROM takes an image and optionally AS NAME, not {ins.text!r}.")
        ref = words[0]
        builder = self.builder
        if ref in builder.stack_names:
            layers = builder.stacks.ensure(ref, self.out)
            env: Mapping[str, str] = {}
            workdir = "/"
        else:
            image_id = ref.removeprefix("sha256:")
            if not DIGEST_RE.match(image_id) and builder.image_refs is not None:
                image_id = builder.image_refs(ref) or ""
            if not builder.images.exists(image_id):
                stacks = ", ".join(builder.stack_names)
                raise fail(
                    ins.line,
                    f"unknown base image {ref!r}. FROM takes a stack ({stacks}) or a local "
                    "image: sha256:<image id>, or APP or APP:vN for the image of an app's "
                    "release.",
                )
            image = builder.images.load(image_id)
            layers, env, workdir = image.layers, dict(image.env), image.workdir
        key = _chain(_CACHE_ROOT, "FROM", list(layers), env, workdir)
        return _State(
            key=key, layers=tuple(layers), env=env, workdir=workdir, global_args=global_args
        )

    def _arg_values(
        self, ins: Instruction, env: Mapping[str, str], inherited: Mapping[str, str]
    ) -> list[tuple[str, str]]:
        """The ARGs declared with a value: the app's config var, else the default, else the
        value of a global ARG of that name (``inherited``)."""
        values = []
        for word in expand_words(ins.text, env, ins.line, ins.escape):
            name, sep, default = word.partition("=")
            if not name.isidentifier() or not name.isascii():
                raise fail(ins.line, f"ARG {word!r}: a name is letters, digits and '_'.")
            if name in self.config:
                values.append((name, self.config[name]))
            elif sep:
                values.append((name, default))
            elif name in inherited:
                values.append((name, inherited[name]))
        return values

    def _arg(self, ins: Instruction, state: _State) -> _State:
        values = self._arg_values(ins, state.words_env, state.global_args)
        return replace(
            state, key=_chain(state.key, "ARG", values), args={**state.args, **dict(values)}
        )

    # --- metadata ---------------------------------------------------------------------------

    def _env(self, ins: Instruction, state: _State) -> _State:
        pairs = key_values(ins, state.words_env)
        return replace(state, key=_chain(state.key, "ENV", pairs), env={**state.env, **dict(pairs)})

    def _label(self, ins: Instruction, state: _State) -> _State:
        pairs = key_values(ins, state.words_env)
        labels = {**state.labels, **dict(pairs)}
        return replace(state, key=_chain(state.key, "LABEL", pairs), labels=labels)

    def _workdir(self, ins: Instruction, state: _State) -> _State:
        path = expand_word(ins.text, state.words_env, ins.line, ins.escape)
        workdir = posixpath.normpath(posixpath.join(state.workdir, path))
        return replace(state, key=_chain(state.key, "WORKDIR", workdir), workdir=workdir)

    def _user(self, ins: Instruction, state: _State) -> _State:
        user = expand_word(ins.text, state.words_env, ins.line, ins.escape).strip()
        ids = _resolve_user(self._paths(state), user, ins.line)
        return replace(state, key=_chain(state.key, "USER", user), user=user, ids=ids)

    def _expose(self, ins: Instruction, state: _State) -> _State:
        ports = list(state.ports)
        for word in expand_words(ins.text, state.words_env, ins.line, ins.escape):
            number, _, protocol = word.partition("/")
            protocol = protocol.lower() or "tcp"
            if (
                not number.isdecimal()
                or not 0 < int(number) < 65536
                or protocol not in ("tcp", "udp", "sctp")
            ):
                raise fail(
                    ins.line,
                    f"EXPOSE {word!r} is not a port: write EXPOSE 8080 or EXPOSE 8080/tcp.",
                )
            if protocol == "tcp" and int(number) not in ports:
                ports.append(int(number))
        return replace(state, key=_chain(state.key, "EXPOSE", ports), ports=tuple(ports))

    def _cmd(self, ins: Instruction, state: _State) -> _State:
        key = _chain(state.key, ins.keyword, ins.argv)
        if ins.keyword == "CMD":
            return replace(state, key=key, command=ins.argv)
        return replace(state, key=key, entrypoint=ins.argv)

    # --- RUN --------------------------------------------------------------------------------

    def _paths(self, state: _State) -> list[Path]:
        return [self.builder.layers.path(digest) for digest in state.layers]

    def _layer_step(self, state: _State, key: str, make: Callable[[], str]) -> _State:
        """Add the layer recorded for ``key``, or the one ``make`` makes (and record it)."""
        digest = self.builder.cache.find(key)
        if digest is not None:
            self.out(" ---> Using cache")
        else:
            digest = make()
            self.builder.cache.record(key, digest)
        self.out(f" ---> {digest[:12]}")
        return replace(state, key=key, layers=(*state.layers, digest))

    def _run(self, ins: Instruction, state: _State) -> _State:
        key = _chain(state.key, "RUN", ins.argv)
        return self._layer_step(state, key, lambda: self._run_container(ins, state))

    def _run_container(self, ins: Instruction, state: _State) -> str:
        builder = self.builder
        remaining = self.deadline - time.monotonic()
        too_long = f"the build took longer than its limit of {self.timeout:g} s and was stopped."
        if remaining <= 0:
            raise fail(ins.line, too_long)
        lowers = self._paths(state)
        argv, home = ins.argv, "/root"
        if state.ids is not None and state.ids.uid != 0:
            if _entry(lowers, SETPRIV) is None:
                raise fail(
                    ins.line, f"RUN as USER {state.user} needs {SETPRIV} (util-linux) in the image."
                )
            groups = "--init-groups" if state.ids.home is not None else "--clear-groups"
            ids = (f"--reuid={state.ids.uid}", f"--regid={state.ids.gid}", groups)
            argv, home = (SETPRIV, *ids, "--", *argv), state.ids.home or "/"
        container_id = f"build-{self.app}-{secrets.token_hex(4)}"
        self.out(f" ---> Running in {container_id}")
        upper = builder.layers.new_dir()
        spec = ContainerSpec(
            id=container_id,
            lowers=tuple(reversed(lowers)),
            command=argv,
            env={**builder.env, "HOME": home, **state.args, **state.env},
            limits=self.limits,
            netns=None,
            hostname=self.app,
            cwd=state.workdir,
            mounts=builder.mounts,
            labels={"paas.build": self.app},
            resolv=builder.resolv_conf.read_text(),
            upper=upper,
        )
        try:
            try:
                code = builder.runtime.run(spec, self.out, remaining)
            except RunTimedOut:
                raise fail(ins.line, too_long) from None
            except RunOutOfMemory as exc:
                raise fail(ins.line, out_of_memory(self.app, exc)) from None
            if code != 0:
                shown = ins.text if len(ins.text) <= 80 else f"{ins.text[:77]}..."
                raise fail(
                    ins.line, f"RUN {shown} failed with exit code {code}: see the output above."
                )
            for mount in builder.mounts:  # runc made the missing targets in the new layer
                made = upper / mount.destination.lstrip("/")
                if _entry(lowers, mount.destination) is None and made.is_file():
                    made.unlink()
            return builder.layers.commit(upper)
        except BaseException:
            builder.layers.discard(upper)
            raise

    # --- COPY and ADD -----------------------------------------------------------------------

    def _copy(self, ins: Instruction, state: _State) -> _State:
        env = state.words_env
        if ins.exec_form is not None:
            words = [expand_word(w, env, ins.line, ins.escape) for w in ins.exec_form]
        else:
            words = expand_words(ins.text, env, ins.line, ins.escape)
        if len(words) < 2:
            raise fail(ins.line, f"{ins.keyword} needs a source and a destination.")
        lowers = self._paths(state)
        chown = ins.flags.get("chown")
        owner = None
        if chown:
            owner = _resolve_user(lowers, expand_word(chown, env, ins.line, ins.escape), ins.line)
        mode = _chmod(ins) if "chmod" in ins.flags else None
        plan = self._plan(ins, state, words[:-1], words[-1])
        key = _chain(state.key, ins.keyword, chown, mode, _plan_digest(plan))
        ids = (owner.uid, owner.gid) if owner else (0, 0)
        return self._layer_step(state, key, lambda: self._write_layer(plan, lowers, ids, mode))

    def _sources(self, ins: Instruction, source: str) -> list[tuple[str, Path]]:
        """The context paths (relative, absolute) that ``source`` names, less ignored ones."""
        rel = posixpath.normpath(source.lstrip("/") or ".")
        if rel == ".." or rel.startswith("../"):
            raise fail(
                ins.line,
                f"{ins.keyword} {source!r}: the source is outside the build "
                "context (the repository).",
            )
        if ins.keyword == "ADD" and "://" in source:
            raise fail(
                ins.line,
                f"ADD {source!r}: only local files can be added; download "
                "with RUN (curl or wget) instead.",
            )
        if _GLOB_CHARS & set(rel):
            regex = match_regex(rel)
            found = [(r, p) for r, p in walk(self.context) if regex.match(r)]
        elif rel == ".":
            found = [(rel, self.context)]
        else:
            path = self.context / rel
            found = [(rel, path)] if os.path.lexists(path) else []
        found = [(r, p) for r, p in found if r == "." or not self.ignore.ignored(r)]
        if not found:
            excluded = " or excluded by .dockerignore" if self.ignore.rules else ""
            raise fail(
                ins.line,
                f"{ins.keyword} source {source!r} not found in the build context{excluded}.",
            )
        return found

    def _plan(
        self, ins: Instruction, state: _State, sources: Sequence[str], dest: str
    ) -> list[tuple[str, Path]]:
        """(path in the image, context path) of every entry to copy, parents first."""
        found = [entry for source in sources for entry in self._sources(ins, source)]
        lowers = self._paths(state)
        target = posixpath.normpath(posixpath.join(state.workdir, dest))
        existing = _entry(lowers, _resolve(lowers, target, ins.line, follow_last=True))
        into_dir = dest.endswith("/") or (existing is not None and existing.is_dir())
        if len(found) > 1 and not dest.endswith("/"):
            raise fail(
                ins.line,
                f"{ins.keyword} with more than one source file needs a "
                f"directory ending in '/' as destination, not {dest!r}.",
            )
        plan: list[tuple[str, Path]] = []
        for rel, path in found:
            if _is_real_dir(path):
                plan += [
                    (
                        _resolve(
                            lowers, posixpath.join(target, sub), ins.line, _is_real_dir(child)
                        ),
                        child,
                    )
                    for sub, child in walk(path)
                    if not self.ignore.ignored(posixpath.normpath(posixpath.join(rel, sub)))
                ]
                continue
            name = posixpath.join(target, posixpath.basename(rel)) if into_dir else target
            if ins.keyword == "ADD" and _is_archive(path):
                raise fail(
                    ins.line,
                    f"ADD {rel!r}: Docker would unpack this archive, which "
                    "this platform does not do: COPY it and unpack it in a "
                    "RUN step.",
                )
            plan.append((_resolve(lowers, name, ins.line, follow_last=False), path))
        return sorted(plan, key=lambda item: item[0].split("/"))

    def _write_layer(
        self,
        plan: Sequence[tuple[str, Path]],
        lowers: Sequence[Path],
        ids: tuple[int, int],
        mode: int | None,
    ) -> str:
        layers = self.builder.layers
        root = layers.new_dir()
        try:
            for target, source in plan:
                parts = target.strip("/").split("/")
                _make_parents(root, parts[:-1], lowers, ids)
                made = root.joinpath(*parts)
                info = os.lstat(source)
                if stat.S_ISDIR(info.st_mode):
                    made.mkdir(exist_ok=True)
                elif os.path.lexists(made):
                    made.unlink()
                if stat.S_ISREG(info.st_mode):
                    shutil.copyfile(source, made, follow_symlinks=False)
                elif stat.S_ISLNK(info.st_mode):
                    os.symlink(os.readlink(source), made)
                if not stat.S_ISLNK(info.st_mode):
                    os.chmod(made, stat.S_IMODE(info.st_mode) if mode is None else mode)
                os.lchown(made, *ids)
            return layers.commit(root)
        except BaseException:
            layers.discard(root)
            raise


# --- the image's file system, read from its layer dirs --------------------------------------


def _entry(layers: Sequence[Path], path: str) -> Path | None:
    """Where the merged view of ``layers`` (bottom first) has ``path`` from, None if it has
    no such entry. Symlinks are not followed: resolve ``path`` first (``_resolve``)."""
    parts = [part for part in path.split("/") if part]
    if not parts:
        return layers[-1] if layers else None
    for layer in reversed(layers):
        hides_below = False
        for depth in range(1, len(parts) + 1):
            here = layer.joinpath(*parts[:depth])
            try:
                info = os.lstat(here)
            except FileNotFoundError:
                break  # not in this layer
            if is_whiteout(info):
                return None
            if depth == len(parts):
                return here
            if not stat.S_ISDIR(info.st_mode):
                return None
            hides_below = hides_below or is_opaque(here)
        if hides_below:
            return None
    return None


def _resolve(layers: Sequence[Path], path: str, line: int, follow_last: bool) -> str:
    """``path`` with the symlinks among its parent dirs (and with ``follow_last`` its last
    part) followed inside the image, as the container would see them."""
    todo = [part for part in path.split("/") if part]
    done: list[str] = []
    hops = 0
    while todo:
        name = todo.pop(0)
        if name in (".", ".."):
            done = done[:-1] if name == ".." else done
            continue
        found = _entry(layers, "/".join([*done, name])) if todo or follow_last else None
        if found is not None and found.is_symlink():
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise fail(line, f"too many levels of symbolic links in {path!r}.")
            target = os.readlink(found)
            todo = [part for part in target.split("/") if part] + todo
            done = [] if target.startswith("/") else done
            continue
        done.append(name)
    return "/" + "/".join(done)


def _read(layers: Sequence[Path], path: str) -> str:
    found = _entry(layers, path)
    return found.read_text(errors="replace") if found is not None and found.is_file() else ""


def _table(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 2]


def _resolve_user(layers: Sequence[Path], user: str, line: int) -> _User:
    """``user`` (``name``, ``uid``, with ``:group`` or ``:gid``) looked up in the image."""
    name, _, group = user.partition(":")
    passwd = [row for row in _table(_read(layers, "/etc/passwd")) if len(row) >= 7]
    if name.isdecimal():
        entry = next((row for row in passwd if row[2] == name), None)
        uid = int(name)
    else:
        entry = next((row for row in passwd if row[0] == name), None)
        if entry is None or not entry[2].isdecimal():
            raise fail(
                line,
                f"unknown user {name!r}: the image's /etc/passwd has no such "
                "user (create it in a RUN step first, or give a uid).",
            )
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None and entry[3].isdecimal() else 0
    if group.isdecimal():
        gid = int(group)
    elif group:
        rows = [row for row in _table(_read(layers, "/etc/group")) if row[0] == group]
        if not rows or not rows[0][2].isdecimal():
            raise fail(line, f"unknown group {group!r}: the image's /etc/group has no such group.")
        gid = int(rows[0][2])
    return _User(uid, gid, entry[5] if entry is not None else None)


def _chmod(ins: Instruction) -> int:
    value = ins.flags["chmod"]
    if not value or len(value) > 4 or set(value) - set("01234567"):
        raise fail(ins.line, f"--chmod={value}: give octal permissions such as 755.")
    return int(value, 8)


# --- the build context ----------------------------------------------------------------------


def _is_real_dir(path: Path) -> bool:
    return stat.S_ISDIR(os.lstat(path).st_mode)


def _is_archive(path: Path) -> bool:
    """Whether ``path`` is a file Docker's ADD would unpack (a tar, maybe compressed)."""
    if not path.is_file() or path.is_symlink():
        return False
    with open(path, "rb") as handle:
        head = handle.read(512)
    return head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def _plan_digest(plan: Sequence[tuple[str, Path]]) -> str:
    """sha256 of what a copy writes: paths, types, permissions, contents, link targets."""
    digest = hashlib.sha256()
    for target, source in plan:
        info = os.lstat(source)
        digest.update(f"{target}\0{stat.S_IFMT(info.st_mode)}\0{info.st_mode & 0o7777}\0".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.fsencode(os.readlink(source)))
        elif stat.S_ISREG(info.st_mode):
            with open(source, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        digest.update(b"\0\n")
    return digest.hexdigest()


def _make_parents(
    root: Path, parts: Sequence[str], lowers: Sequence[Path], ids: tuple[int, int]
) -> None:
    """Make the dirs ``parts`` in the new layer ``root``, each with the owner and mode the
    image already gives it (an overlay dir takes its attributes from the top layer), or
    ``ids`` and 0755 when the image has no such dir."""
    for depth in range(1, len(parts) + 1):
        here = root.joinpath(*parts[:depth])
        if os.path.lexists(here):
            continue
        here.mkdir()
        lower = _entry(lowers, "/".join(parts[:depth]))
        info = os.lstat(lower) if lower is not None else None
        if info is not None and stat.S_ISDIR(info.st_mode):
            os.chmod(here, stat.S_IMODE(info.st_mode))
            os.lchown(here, info.st_uid, info.st_gid)
        else:
            os.chmod(here, 0o755)
            os.lchown(here, *ids)
