"""The per-container supervisor ("shim"), started by ``Runtime.start``.

runc records no exit status, and a detached container's init is reparented away from whoever
started it. The shim owns that gap for one container: it detaches from its launcher (setsid +
fork), becomes a child subreaper, runs ``runc run -d`` with the container's stdout/stderr on the
log file, reports "started" (or runc's error) to the launcher through a pipe, then waits for the
container's init. When the init exits it reads the OOM-kill counter of the container's memory
cgroup *before* reaping it (nothing can delete the cgroup earlier: the runtime waits for the
shim) and writes ``exit.json`` atomically. It does not tear anything down; ``Runtime`` does.

Run as ``python -S -m paas.runtime.shim RUNC ROOT ID DIR OOM_CONTROL STATUS_FD`` with fd 2 on
the log file. It imports only light standard modules (no typing, json, re or subprocess) to keep
its start fast and its resident memory small; the launcher lives in ``paas.runtime.runtime``.
"""

from __future__ import annotations

import ctypes
import os
import select
import sys
import time

LOG_FILE = "container.log"
EXIT_FILE = "exit.json"
INIT_PID_FILE = "init.pid"
SHIM_PID_FILE = "shim.pid"
MODULE = "paas.runtime.shim"
START_TIMEOUT = 60.0
_PR_SET_CHILD_SUBREAPER = 36


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _oom_kills(oom_control: str) -> int:
    try:
        with open(oom_control, encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except OSError:
        pass
    return 0


def _run_runc(argv: list[str]) -> str | None:
    """Run ``runc run -d``; return None on success, else runc's message."""
    offset = os.lseek(2, 0, os.SEEK_END)  # runc's own errors land in the log after this
    pid = os.posix_spawnp(argv[0], argv, dict(os.environ))
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], START_TIMEOUT)[0]:
            os.kill(pid, 9)
    finally:
        os.close(pidfd)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0:
        return None
    os.lseek(2, offset, os.SEEK_SET)  # O_APPEND: writes still go to the end
    return runc_message(os.read(2, 65536).decode(errors="replace")) or f"runc exited with {code}"


def runc_message(stderr: str) -> str:
    """The ``msg`` parts of runc's ``time=... level=error msg="..."`` lines (else the text)."""
    messages = [
        line.split(' msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
        for line in stderr.splitlines()
        if ' msg="' in line
    ]
    return "; ".join(messages) or stderr.strip()


def main(argv: list[str]) -> int:
    runc, root, container_id, directory, oom_control, status_arg = argv
    status = int(status_arg)
    os.set_inheritable(status, False)  # runc and the container must not hold the pipe
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _write_atomic(os.path.join(directory, SHIM_PID_FILE), str(os.getpid()))
    pid_file = os.path.join(directory, INIT_PID_FILE)
    runc_argv = [runc, "--root", root, "run", "-d", "--pid-file", pid_file,
                 "--bundle", directory, container_id]  # fmt: skip
    try:
        error = _run_runc(runc_argv)
        if error is None:
            with open(pid_file, encoding="ascii") as f:
                init_pid = int(f.read())
    except (OSError, ValueError) as exc:
        error = f"{runc}: {exc}"
    os.write(status, (f"failed {error}" if error else f"started {init_pid} {os.getpid()}").encode())
    os.close(status)
    if error is not None:
        return 1
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
            oom = _oom_kills(oom_control)  # before reaping: the cgroup still exists
            if info.si_code == os.CLD_EXITED:
                exit_code = info.si_status
            else:
                signal = info.si_status
                exit_code = 128 + signal
            os.waitpid(init_pid, 0)
            break
        os.waitpid(info.si_pid, 0)  # runc's own intermediate processes
    _write_atomic(
        os.path.join(directory, EXIT_FILE),
        f'{{"exit_code": {_js(exit_code)}, "signal": {_js(signal)}, '
        f'"oom_killed": {"true" if oom else "false"}, "finished_at": {time.time()!r}}}\n',
    )
    return 0


def _js(value: int | None) -> str:
    return "null" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
