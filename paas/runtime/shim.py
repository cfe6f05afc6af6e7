"""The per-container supervisor ("shim"), started by ``Runtime.start``.

runc records no exit status, and a detached container's init is reparented away from whoever
started it. The shim owns that gap for one container: it detaches from its launcher (setsid +
fork), becomes a child subreaper, runs ``runc run -d`` with the container's stdout/stderr on a
pipe of its own, reports "started" (or runc's error) to the launcher through another pipe,
then waits for the container's init. All along it copies the container's output from the
pipe to the log files, rotating them by size (``paas.runtime.logfiles``): a 1 MiB pipe lets
the app write ahead of it, and renaming a full file costs the app nothing. When the init
exits it reads the OOM-kill counter of the container's memory cgroup *before* reaping it
(nothing can delete the cgroup earlier: the runtime waits for the shim), copies the last of
the output and writes ``exit.json`` atomically. It does not tear anything down; ``Runtime``
does.

Run as ``python -S -m paas.runtime.shim RUNC ROOT ID DIR OOM_COUNTER STATUS_FD MAX_BYTES KEEP``
with its own stdout and stderr on ``shim.log``. It imports only light standard modules (no
typing, json, re or subprocess) to keep its start fast and its resident memory small; the
launcher lives in ``paas.runtime.runtime``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import sys
import time

from paas.runtime import logfiles

LOG_FILE = "container.log"
EXIT_FILE = "exit.json"
INIT_PID_FILE = "init.pid"
SHIM_PID_FILE = "shim.pid"
MODULE = "paas.runtime.shim"
SHIM_LOG_FILE = "shim.log"  # the shim's own errors
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 5.0  # after the init exits, for the output still in the pipe
PIPE_SIZE = 1 << 20  # the pipe buffer, what the app may write ahead of the shim
READ_SIZE = 1 << 20
CAPTURE = 65536
_F_SETPIPE_SZ = 1031
_PR_SET_CHILD_SUBREAPER = 36


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def oom_kills(counter: str) -> int:
    """The ``oom_kill`` count in a memory cgroup's ``memory.oom_control`` (v1) or
    ``memory.events`` (v2), which share the format; 0 if unreadable."""
    try:
        with open(counter, encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except OSError:
        pass
    return 0


class _Pump:
    """Copies the container's output from its pipe to the log files, as it comes, while the
    shim waits for something else: the app never waits for more than a pipe's worth."""

    def __init__(self, fd: int, log: logfiles.Writer) -> None:
        self.fd = fd
        self.log = log
        self.open = True
        self.captured = b""  # the start of the output: runc's errors, if it fails
        self.capturing = True
        os.set_blocking(fd, False)

    def wait(self, other: int, timeout: float | None) -> bool:
        """Copy output until ``other`` (an fd) is readable (True) or ``timeout`` seconds pass
        (False); with ``other`` -1, until the output's end (every writer closed it)."""
        poller = select.poll()
        if self.open:
            poller.register(self.fd, select.POLLIN)
        if other >= 0:
            poller.register(other, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while other >= 0 or self.open:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            ready = {fd for fd, _ in poller.poll(None if left is None else left * 1000)}
            if self.fd in ready and self.copy() < 0:
                poller.unregister(self.fd)
            if other in ready:
                return True
        return True

    def copy(self) -> int:
        """Copy what the pipe holds now; return how much (-1 at the output's end)."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return 0
        if not data:
            self.open = False
            return -1
        if self.capturing and len(self.captured) < CAPTURE:
            self.captured += data[: CAPTURE - len(self.captured)]
        self.log.write(data)
        return len(data)


def _run_runc(argv: list[str], output: int, pump: _Pump) -> str | None:
    """Run ``runc run -d`` with ``output`` as its (and the container's) stdout and stderr;
    return None on success, else runc's message."""
    dup = [(os.POSIX_SPAWN_DUP2, output, 1), (os.POSIX_SPAWN_DUP2, output, 2)]
    pid = os.posix_spawnp(argv[0], argv, dict(os.environ), file_actions=dup)
    pidfd = os.pidfd_open(pid)
    try:
        if not pump.wait(pidfd, START_TIMEOUT):
            os.kill(pid, 9)
    finally:
        os.close(pidfd)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0:
        return None
    while pump.copy() > 0:  # runc's last words
        pass
    text = pump.captured.decode(errors="replace")
    return runc_message(text) or f"runc exited with {code}"


def runc_message(stderr: str) -> str:
    """The ``msg`` parts of runc's ``time=... level=error msg="..."`` lines (else the text)."""
    messages = [
        line.split(' msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
        for line in stderr.splitlines()
        if ' msg="' in line
    ]
    return "; ".join(messages) or stderr.strip()


def main(argv: list[str]) -> int:
    runc, root, container_id, directory, oom_counter, status_arg, max_bytes, keep = argv
    status = int(status_arg)
    os.set_inheritable(status, False)  # runc and the container must not hold the pipe
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _write_atomic(os.path.join(directory, SHIM_PID_FILE), str(os.getpid()))
    log = logfiles.Writer(os.path.join(directory, LOG_FILE), int(max_bytes), int(keep))
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)  # root may go over pipe-max-size
    pump = _Pump(read_end, log)
    pid_file = os.path.join(directory, INIT_PID_FILE)
    runc_argv = [runc, "--root", root, "run", "-d", "--pid-file", pid_file,
                 "--bundle", directory, container_id]  # fmt: skip
    try:
        error = _run_runc(runc_argv, write_end, pump)
        if error is None:
            with open(pid_file, encoding="ascii") as f:
                init_pid = int(f.read())
    except (OSError, ValueError) as exc:
        error = f"{runc}: {exc}"
    pump.capturing, pump.captured = False, b""  # no need to hold on to it any more
    os.close(write_end)  # from now on only the container holds it
    os.write(status, (f"failed {error}" if error else f"started {init_pid} {os.getpid()}").encode())
    os.close(status)
    if error is not None:
        return 1
    exit_code, signal, oom = _wait_for_init(init_pid, oom_counter, pump)
    pump.wait(-1, DRAIN_TIMEOUT)  # what the container wrote last, up to the pipe's end
    log.close()
    _write_atomic(
        os.path.join(directory, EXIT_FILE),
        f'{{"exit_code": {_js(exit_code)}, "signal": {_js(signal)}, '
        f'"oom_killed": {"true" if oom else "false"}, "finished_at": {time.time()!r}}}\n',
    )
    return 0


def _wait_for_init(
    init_pid: int, oom_counter: str, pump: _Pump
) -> tuple[int | None, int | None, int]:
    """Copy the output until the container's init exits; reap it and return its exit code,
    the signal that killed it and the cgroup's OOM-kill count (read before the reaping, while
    the cgroup still exists)."""
    try:
        pidfd = os.pidfd_open(init_pid)
    except OSError:
        pidfd = -1  # reaped already? then waitid below tells
    if pidfd >= 0:
        pump.wait(pidfd, None)
        os.close(pidfd)
    exit_code: int | None = None
    signal: int | None = None
    oom = 0
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:  # the init was never ours: its status is unknowable
            break
        if info is None:
            continue
        if info.si_pid == init_pid:
            oom = oom_kills(oom_counter)  # before reaping: the cgroup still exists
            if info.si_code == os.CLD_EXITED:
                exit_code = info.si_status
            else:
                signal = info.si_status
                exit_code = 128 + signal
            os.waitpid(init_pid, 0)
            break
        os.waitpid(info.si_pid, 0)  # runc's own intermediate processes
    return exit_code, signal, oom


def _js(value: int | None) -> str:
    return "null" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
