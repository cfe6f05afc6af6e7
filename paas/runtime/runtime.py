"""``Runtime``: containers as runc runs them, from bundle to teardown.

It owns ``containers_dir/<id>/`` (``meta.json``, ``config.json``, ``hosts``, ``resolv.conf``,
``rootfs`` (the overlay mount point), ``upper``/``work``, the output in ``container.log`` and
its rotated predecessors ``container.log.N``, and the shim's ``shim.pid``, ``shim.log``,
``init.pid`` and ``exit.json``), runc's state under ``runc_root`` and the
containers' cgroups under ``cgroup_parent``. Detached containers are held by their shim
(``paas.runtime.shim``), so they outlive the process that started them; everything here is
read back from disk and runc, nothing is kept in memory. On a host that systemd runs, each
shim gets a transient scope of its own (``systemd-run --scope``, in the slice named
``systemd_slice``), as conmon does for Podman: shims then belong to no platform unit, which
restarts and stops without finding them as left-over processes of its own.

Teardown follows the measured order: kill, wait for the exit, ``runc delete``, unmount, remove
the dir. A bind-mount target that does not exist in the image is created by runc in the upper
layer: with ``spec.upper`` kept as a layer, callers must mount only onto paths that exist.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paas.errors import BuildFailed, Conflict, InvalidInput, PlatformError
from paas.runtime import bundle, cgroups, shim
from paas.runtime.spec import ContainerInfo, ContainerSpec
from paas.settings import Limits, LogRotation

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RUNC_TIMEOUT = 30.0
LIST_ATTEMPTS = 3  # runc list races with deletes: see Runtime._runc_states
_POLL = 0.01
DEFAULT_LOG_ROTATION = LogRotation()


class RunTimedOut(BuildFailed):
    """A foreground run went over its time limit and was killed."""


class RunOutOfMemory(BuildFailed):
    """The kernel killed a process of a foreground run for going over its memory limit."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = f"{limit_bytes / 1024**2:.0f}M"
        super().__init__(f"The container ran out of memory (limit {self.limit}) and was killed.")


class Runtime:
    def __init__(
        self,
        runc_root: Path,
        containers_dir: Path,
        cgroup_parent: str,
        runc: str = "runc",
        python: str = sys.executable,
        log_rotation: LogRotation = DEFAULT_LOG_ROTATION,
        systemd_slice: str | None = None,
    ) -> None:
        """``systemd_slice``: put each shim in a scope of its own in this slice (see
        ``systemd_runs_host``); None: shims stay in the cgroup of the process that starts
        them."""
        self.runc_root = runc_root
        self.containers_dir = containers_dir
        self.cgroup_parent = cgroup_parent
        self.runc = runc
        self.python = python
        self.log_rotation = log_rotation
        self.systemd_slice = systemd_slice

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        """Start a detached container; return once runc has started its init."""
        directory = self._prepare(spec)
        try:
            pid = self._launch_shim(spec.id, directory)
        except BaseException:
            self.remove(spec.id)
            raise
        meta = self._read_json(directory / "meta.json") or {}
        return ContainerInfo(
            id=spec.id, labels=dict(spec.labels), status="running", pid=pid,
            started_at=meta.get("started_at"), log_path=directory / shim.LOG_FILE,
        )  # fmt: skip

    def run(self, spec: ContainerSpec, output: Callable[[str], None], timeout: float) -> int:
        """Run a container in the foreground, pass each line of its combined stdout and stderr
        to ``output`` as it comes, and return its exit code. Kills it after ``timeout`` seconds
        (``RunTimedOut``); raises ``RunOutOfMemory`` when the kernel killed one of its
        processes for its memory limit. Always removes the container, but never
        ``spec.upper``: that is the caller's new layer. runc creates missing bind-mount
        targets in the upper, so with a kept upper, mount only onto paths that exist in the
        lower layers."""
        directory = self._prepare(spec)
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen(
                [self.runc, "--root", str(self.runc_root), "run", "--keep", "--bundle",
                 str(directory), spec.id],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            assert proc.stdout is not None
            if not _stream_lines(proc.stdout.fileno(), output, time.monotonic() + timeout):
                raise RunTimedOut(
                    f"The container ran longer than its time limit of {timeout:g} s and was killed."
                )
            code = proc.wait(timeout=RUNC_TIMEOUT)
            # --keep: the cgroup, and so its OOM counter, lasts until the removal below
            counter = cgroups.oom_counter(bundle.cgroups_path(self.cgroup_parent, spec.id))
            if shim.oom_kills(str(counter)):
                raise RunOutOfMemory(spec.limits.memory_bytes)
            return code
        finally:
            if proc is not None:
                if proc.poll() is None:
                    self._runc("kill", spec.id, "KILL", check=False)
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                assert proc.stdout is not None
                proc.stdout.close()
            self.remove(spec.id)

    def stop(self, container_id: str, grace: float) -> None:
        """TERM, up to ``grace`` seconds to exit, then KILL; then remove the container."""
        _check_id(container_id)
        for signal, wait in (("TERM", grace), ("KILL", 10.0)):
            if self._exited(container_id):
                break
            self._runc("kill", container_id, signal, check=False)
            if _wait_until(lambda: self._exited(container_id), wait):
                break
        self.remove(container_id)

    def remove(self, container_id: str) -> None:
        """Tear a container down completely; idempotent, and fine with half-made containers."""
        _check_id(container_id)
        directory = self.containers_dir / container_id
        self._runc("delete", "--force", container_id)  # kills it first if still running
        if not _wait_until(lambda: self._shim_pid(container_id) is None, 5.0):
            raise PlatformError(f"The supervisor of container {container_id} did not exit.")
        self._end_scope(container_id)
        bundle.unmount(directory / "rootfs")
        meta = self._read_json(directory / "meta.json") or {}
        if meta.get("work"):
            shutil.rmtree(meta["work"], ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            raise PlatformError(f"Could not remove {directory}.")

    # --- observation ------------------------------------------------------------------------

    def list(self) -> list[ContainerInfo]:
        """Every container of this runtime: with a dir, known to runc, or both."""
        states = self._runc_states()
        ids = set(states)
        if self.containers_dir.is_dir():
            ids |= {p.name for p in self.containers_dir.iterdir() if p.is_dir()}
        return [self._info(i, states.get(i)) for i in sorted(ids)]

    def _runc_states(self) -> dict[str, dict[str, Any]]:
        """``runc list`` by id, read again when a container was deleted while runc listed
        them (it then fails on the state dir it had just found)."""
        attempts = 1
        while True:
            try:
                listed = json.loads(self._runc("list", "--format", "json")) or []
                return {state["id"]: state for state in listed}
            except PlatformError as exc:
                if attempts == LIST_ATTEMPTS or "no such file or directory" not in exc.message:
                    raise
                attempts += 1

    def get(self, container_id: str) -> ContainerInfo | None:
        _check_id(container_id)
        result = self._runc("state", container_id, check=False)
        state = json.loads(result) if result.startswith("{") else None
        if state is None and not (self.containers_dir / container_id).is_dir():
            return None
        return self._info(container_id, state)

    def update(self, container_id: str, limits: Limits) -> None:
        """Apply new cgroup limits to a running container (``runc update``)."""
        memory = str(limits.memory_bytes)
        quota = max(1000, round(limits.cpu * bundle.CPU_PERIOD_US)) if limits.cpu > 0 else -1
        args = ["update", "--memory", memory, "--pids-limit", str(limits.pids),
                "--cpu-period", str(bundle.CPU_PERIOD_US), "--cpu-quota", str(quota)]
        if bundle.host_has_memsw():
            args[3:3] = ["--memory-swap", memory]
        self._runc(*args, _check_id(container_id))

    def log_path(self, container_id: str) -> Path:
        return self.containers_dir / _check_id(container_id) / shim.LOG_FILE

    def prune_cgroups(self) -> None:
        """Remove this runtime's empty parent cgroup dirs (runc leaves them behind)."""
        cgroups.prune(self.cgroup_parent)

    # --- internals --------------------------------------------------------------------------

    def _prepare(self, spec: ContainerSpec) -> Path:
        """Write the bundle and mount the root filesystem; undo everything on failure."""
        _check_id(spec.id)
        directory = self.containers_dir / spec.id
        if (self.runc_root / spec.id).exists():
            raise Conflict(f"Container {spec.id} already exists (runc knows it).")
        self.containers_dir.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
        except FileExistsError:
            raise Conflict(f"Container {spec.id} already exists.") from None
        try:
            if spec.upper is not None:
                upper = spec.upper
                work = spec.upper.with_name(f".{spec.upper.name}.work")
                upper.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(work, ignore_errors=True)  # left by a crash: ours by its name
            else:
                upper, work = directory / "upper", directory / "work"
                upper.mkdir()
            work.mkdir()
            meta = {
                "id": spec.id,
                "labels": dict(spec.labels),
                "started_at": time.time(),
                "work": str(work) if spec.upper is not None else None,
            }
            _write_atomic(directory / "meta.json", json.dumps(meta))
            (directory / "hosts").write_text(spec.hosts, encoding="utf-8")
            (directory / "resolv.conf").write_text(spec.resolv, encoding="utf-8")
            rootfs = directory / "rootfs"
            rootfs.mkdir()
            config = bundle.render_config(
                spec, rootfs=rootfs, hosts_file=directory / "hosts",
                resolv_file=directory / "resolv.conf", cgroup_parent=self.cgroup_parent,
                memsw=bundle.host_has_memsw(),
            )  # fmt: skip
            _write_atomic(directory / "config.json", json.dumps(config, indent=1))
            bundle.mount_overlay(spec.lowers, upper, work, rootfs)
        except BaseException:
            bundle.unmount(directory / "rootfs")
            if spec.upper is not None:
                shutil.rmtree(spec.upper.with_name(f".{spec.upper.name}.work"), ignore_errors=True)
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return directory

    def _launch_shim(self, container_id: str, directory: Path) -> int:
        """Start the shim of a prepared bundle; return the init's pid once runc has started
        it, or raise ``PlatformError`` with runc's message."""
        counter = cgroups.oom_counter(bundle.cgroups_path(self.cgroup_parent, container_id))
        read_end, write_end = os.pipe()
        unit = self._scope(container_id)
        scope = () if unit is None else (
            "systemd-run", "--scope", "--quiet", "--collect", f"--slice={self.systemd_slice}",
            f"--unit={unit}", f"--description=paas: supervisor of container {container_id}", "--",
        )  # fmt: skip
        argv = [
            *scope,
            *(self.python, "-S", "-m", shim.MODULE, self.runc, str(self.runc_root), container_id),
            *(str(directory), str(counter), str(write_end)),
            *(str(self.log_rotation.max_bytes), str(self.log_rotation.keep)),
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),  # -S: no site-packages
        }
        try:
            with open(directory / shim.SHIM_LOG_FILE, "ab") as log:
                first = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    pass_fds=(write_end,),
                )  # fmt: skip
            os.close(write_end)
            write_end = -1
            first.wait(timeout=RUNC_TIMEOUT)  # it exits as soon as the shim has forked off
            report = _read_to_eof(read_end, time.monotonic() + shim.START_TIMEOUT + RUNC_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PlatformError(f"Could not start the supervisor of {container_id}: {exc}") from exc
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        word, _, rest = report.partition(" ")
        if word == "started":
            return int(rest.split()[0])
        if word == "failed":
            raise PlatformError(f"runc could not start container {container_id}: {rest.strip()}")
        said = _last_lines(directory / shim.SHIM_LOG_FILE)  # systemd-run's error, say
        raise PlatformError(
            f"The supervisor of container {container_id} exited without starting it"
            + (f": {said}" if said else ".")
        )

    def _scope(self, container_id: str) -> str | None:
        """The systemd scope of the container's shim, if shims get scopes."""
        if self.systemd_slice is None:
            return None
        return f"{self.systemd_slice.removesuffix('.slice')}-{container_id}.scope"

    def _end_scope(self, container_id: str) -> None:
        """Stop the shim's scope, empty by now. systemd sees a scope go empty by itself only
        where it tracks processes with cgroup v2; with v1 (systemd in a container on a v1 or
        hybrid host) the scope would stay, empty, for ever."""
        unit = self._scope(container_id)
        if unit is not None:  # not loaded (already collected): systemctl says so, harmlessly
            subprocess.run(["systemctl", "stop", unit], capture_output=True,
                           timeout=RUNC_TIMEOUT, check=False)  # fmt: skip

    def _info(self, container_id: str, state: dict[str, Any] | None) -> ContainerInfo:
        directory = self.containers_dir / container_id
        meta = self._read_json(directory / "meta.json") or {}
        exit_info = self._read_json(directory / shim.EXIT_FILE)
        runc_status = state["status"] if state else None
        pid: int | None = None
        if state and runc_status in ("running", "paused"):
            status, pid = "running", state["pid"]
        elif runc_status == "created" or (
            runc_status is None and exit_info is None and self._shim_pid(container_id)
        ):
            status = "creating"
        else:
            status = "stopped"
        return ContainerInfo(
            id=container_id,
            labels=meta.get("labels", {}),
            status=status,
            pid=pid,
            started_at=meta.get("started_at"),
            exit_code=exit_info.get("exit_code") if exit_info and status == "stopped" else None,
            oom_killed=bool(exit_info and exit_info.get("oom_killed")),
            log_path=directory / shim.LOG_FILE if directory.is_dir() else None,
        )

    def _exited(self, container_id: str) -> bool:
        """The init is gone and its shim is done (so the OOM counter has been read)."""
        if (self.containers_dir / container_id / shim.EXIT_FILE).exists():
            return True
        if self._shim_pid(container_id) is not None:
            return False
        info = self.get(container_id)
        return info is None or info.status == "stopped"

    def _shim_pid(self, container_id: str) -> int | None:
        """The pid of the container's shim while it runs (a zombie has an empty cmdline)."""
        try:
            pid = int((self.containers_dir / container_id / shim.SHIM_PID_FILE).read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if shim.MODULE.encode() in cmdline and container_id.encode() in cmdline:
            return pid
        return None

    def _runc(self, *args: str, check: bool = True) -> str:
        """Run a runc command; return its stdout, or raise ``PlatformError`` with its message."""
        argv = [self.runc, "--root", str(self.runc_root), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=RUNC_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PlatformError(f"runc {args[0]} failed: {exc}") from None
        if check and done.returncode != 0:
            raise PlatformError(f"runc {' '.join(args)} failed: {shim.runc_message(done.stderr)}")
        return done.stdout

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def _check_id(container_id: str) -> str:
    if not ID_RE.match(container_id):
        raise InvalidInput(
            f"Invalid container id {container_id!r}: use letters, digits, '_', '.' and '-'."
        )
    return container_id


def _stream_lines(fd: int, output: Callable[[str], None], deadline: float) -> bool:
    """Pass complete lines read from ``fd`` to ``output`` until EOF (True) or the deadline."""
    pending = b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            if pending:
                output(pending.decode(errors="replace").rstrip("\r"))
            return True
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            output(line.decode(errors="replace").rstrip("\r"))
    return False


def systemd_runs_host() -> bool:
    """Whether systemd is the host's init (sd_booted(3)'s test) and ``systemd-run`` is there
    to make scopes."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemd-run") is not None


def _last_lines(path: Path, count: int = 3) -> str:
    """The last lines of a file, on one line ("" if there are none)."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " ".join(lines[-count:])


def _read_to_eof(fd: int, deadline: float) -> str:
    chunks: list[bytes] = []
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks).decode(errors="replace")
        chunks.append(chunk)
    raise PlatformError("Timed out waiting for runc to start the container.")


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
