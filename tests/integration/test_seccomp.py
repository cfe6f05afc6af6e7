"""The seccomp filter of app containers against the real kernel, over the bookworm stack
(python3 makes the raw syscalls): what Docker's default profile refuses without
CAP_SYS_ADMIN is refused, and what ordinary programs need (fork, threads) still works."""

from __future__ import annotations

import secrets

import pytest

from paas.images.layers import LayerStore
from paas.model import APP_USER
from paas.runtime.runtime import Runtime
from paas.runtime.spec import ContainerSpec
from paas.settings import Limits

pytestmark = pytest.mark.root

PROBE = """
import ctypes, errno, os, socket, threading
libc = ctypes.CDLL(None, use_errno=True)
SYS_CLONE, SYS_CLONE3, SIGCHLD = 56, 435, 17

def clone(flags):
    pid = libc.syscall(SYS_CLONE, flags | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    if pid < 0:
        return errno.errorcode[ctypes.get_errno()]
    os.waitpid(pid, 0)
    return "made"

print("fork", clone(0))
for name, flag in [("user", 0x10000000), ("net", 0x40000000), ("mnt", 0x00020000),
                   ("pid", 0x20000000), ("uts", 0x04000000), ("ipc", 0x08000000),
                   ("cgroup", 0x02000000)]:
    print("new" + name, clone(flag))
print("clone3", errno.errorcode[ctypes.get_errno()] if libc.syscall(SYS_CLONE3, 0, 0) < 0 else "ok")
thread = threading.Thread(target=print, args=("thread", "ran"))
thread.start()
thread.join()
try:
    socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
    print("vsock made")
except OSError as exc:
    print("vsock", errno.errorcode[exc.errno])
"""


@pytest.mark.parametrize("user", [APP_USER, (0, 0)], ids=["app-user", "root"])
def test_confined_containers_cannot_make_namespaces(
    runtime: Runtime, layers: LayerStore, stack: tuple[str, ...], user: tuple[int, int]
) -> None:
    lines: list[str] = []
    spec = ContainerSpec(
        id=f"seccomp-{secrets.token_hex(4)}",
        lowers=tuple(layers.path(d) for d in reversed(stack)),
        command=("python3", "-c", PROBE),
        env={"PATH": "/usr/bin:/bin"},
        limits=Limits(memory_bytes=256 * 1024**2, cpu=1.0, pids=64),
        netns=None,
        user=user,
        confined=True,
    )
    assert runtime.run(spec, lines.append, timeout=60) == 0, lines
    seen = dict(line.split(" ", 1) for line in lines)
    assert seen["fork"] == "made" and seen["thread"] == "ran", lines
    for kind in ("user", "net", "mnt", "pid", "uts", "ipc", "cgroup"):
        assert seen[f"new{kind}"] == "EPERM", lines
    assert seen["clone3"] == "ENOSYS", lines  # so that glibc falls back to clone
    assert seen["vsock"] == "EPERM", lines
