"""OCI bundles: the runc ``config.json`` rendered from a ``ContainerSpec`` (a pure function),
and the overlay mounts that form a container's root filesystem.

Mounts use mount(2)/umount2(2) through ctypes rather than the ``mount`` program: no process
per mount on the start path, the kernel's errno comes back exactly (``mount`` turns it into
prose), and it does not depend on util-linux's option parsing of a 4 KiB option string.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Any

from paas.errors import InvalidInput, PlatformError
from paas.runtime.spec import ContainerSpec

INIT = ("/usr/bin/tini", "-g", "--")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD_US = 100_000
# Docker's default capability set.
CAPABILITIES = tuple(
    f"CAP_{name}"
    for name in (
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    )
)  # fmt: skip
# What confined (app) containers lose of Docker's set: raw sockets (ping, spoofing), device
# nodes, audit writes, file capabilities and chroot, which web apps and workers do not use.
DROPPED_FOR_APPS = frozenset(
    f"CAP_{n}" for n in ("NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT")
)
# Syscalls Docker's default seccomp profile refuses to containers without CAP_SYS_ADMIN and
# friends (kernel modules, keyrings, namespaces, mounts, clocks, tracing, swap, reboot,
# BPF, ...); a confined container gets EPERM for each. Names unknown to this kernel's
# architecture are skipped by runc.
DENIED_SYSCALLS = (
    "acct", "add_key", "bpf", "chroot", "clock_adjtime", "clock_settime", "clock_settime64",
    "create_module", "delete_module", "fanotify_init", "finit_module", "get_kernel_syms",
    "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load",
    "keyctl", "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "perf_event_open", "pidfd_getfd", "pivot_root", "process_madvise",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "quotactl_fd", "reboot", "request_key", "set_mempolicy", "set_mempolicy_home_node",
    "setdomainname", "sethostname", "setns", "settimeofday", "stime", "swapon", "swapoff",
    "syslog", "sysfs", "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd",
    "ustat", "vhangup", "vm86", "vm86old",
)  # fmt: skip
# clone(2) flags that make namespaces: refused as Docker does, above all CLONE_NEWUSER, which
# the kernel grants any user and which would give the app capabilities over new namespaces
# (netfilter, mounts) and the kernel code behind them.
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}  # fmt: skip
AF_VSOCK = 40
EPERM, ENOSYS = 1, 38
SECCOMP = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
        # One rule per flag (rules are alternatives): (flags & FLAG) == FLAG.
        *(
            {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
             "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}
            for flag in NAMESPACE_FLAGS.values()
        ),
        # clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes glibc fall
        # back to clone (threads, posix_spawn), as under Docker.
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
         "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_EQ"}]},
    ],
}  # fmt: skip
# The defaults of ``runc spec`` (runc 1.1).
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
BASE_MOUNTS: tuple[dict[str, Any], ...] = (
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
)  # fmt: skip
MEMSW_FILE = Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def host_has_memsw() -> bool:
    """Whether the host accounts swap in the memory cgroup (``memory.memsw.*`` exists)."""
    return MEMSW_FILE.exists()


def cgroups_path(cgroup_parent: str, container_id: str) -> str:
    """runc's ``cgroupsPath``: absolute, so it does not depend on the launcher's own cgroup."""
    return f"/{cgroup_parent.strip('/')}/{container_id}"


def render_config(
    spec: ContainerSpec,
    *,
    rootfs: Path,
    hosts_file: Path,
    resolv_file: Path,
    cgroup_parent: str,
    memsw: bool,
) -> dict[str, Any]:
    """The OCI runtime config (``config.json``) that runs ``spec`` under tini as PID 1."""
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if spec.netns is not None:
        namespaces.append({"type": "network", "path": str(spec.netns)})
    memory: dict[str, int] = {"limit": spec.limits.memory_bytes}
    if memsw:
        memory["swap"] = spec.limits.memory_bytes
    resources: dict[str, Any] = {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": memory,
        "pids": {"limit": spec.limits.pids},
    }
    if spec.limits.cpu > 0:
        resources["cpu"] = {
            "quota": max(1000, round(spec.limits.cpu * CPU_PERIOD_US)),
            "period": CPU_PERIOD_US,
        }
    mounts = [dict(m) for m in BASE_MOUNTS]
    mounts += [
        {"destination": "/etc/hosts", "type": "bind", "source": str(hosts_file),
         "options": ["bind", "ro"]},
        {"destination": "/etc/resolv.conf", "type": "bind", "source": str(resolv_file),
         "options": ["bind", "ro"]},
    ]  # fmt: skip
    mounts += [
        {"destination": m.destination, "type": "bind", "source": str(m.source),
         "options": ["rbind", "ro" if m.read_only else "rw"]}
        for m in spec.mounts
    ]  # fmt: skip
    caps = [c for c in CAPABILITIES if not (spec.confined and c in DROPPED_FOR_APPS)]
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups_path(cgroup_parent, spec.id),
        "resources": resources,
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.netns is not None:  # its own netns: any user may listen on ports below 1024
        linux["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0"}
    if spec.confined:
        linux["seccomp"] = SECCOMP
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": spec.terminal,
            "user": dict(zip(("uid", "gid"), spec.user or (0, 0), strict=True)),
            "args": [*INIT, *spec.command],
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": spec.cwd,
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": spec.confined,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
    }


# --- overlay mounts ------------------------------------------------------------------------

_MNT_DETACH = 2
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def overlay_options(lowers: tuple[Path, ...], upper: Path, work: Path) -> str:
    """``lowerdir=TOP:...:BOTTOM,upperdir=...,workdir=...``; checked against the kernel's limits."""
    if not lowers:
        raise InvalidInput("A container needs at least one image layer.")
    for path in (*lowers, upper, work):
        if not path.is_absolute() or set(str(path)) & {":", ",", "\\"}:
            raise InvalidInput(f"Layer path {str(path)!r} must be absolute, without ':' ',' '\\'.")
    options = f"lowerdir={':'.join(map(str, lowers))},upperdir={upper},workdir={work}"
    if len(options) >= _PAGE:
        raise PlatformError(
            f"The overlay options take {len(options)} bytes, over the kernel's {_PAGE}: "
            "use shorter layer paths or fewer layers."
        )
    return options


def mount_overlay(lowers: tuple[Path, ...], upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay of ``lowers`` (top first) with ``upper``/``work`` on ``target``."""
    options = overlay_options(lowers, upper, work)
    if _libc().mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise PlatformError(f"Mounting the overlay on {target} failed: {os.strerror(err)}.")


def unmount(target: Path) -> None:
    """Unmount ``target`` if it is a mount point (lazily when busy); a no-op otherwise."""
    if not is_mounted(target):
        return
    libc = _libc()
    if libc.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY and libc.umount2(os.fsencode(target), _MNT_DETACH) == 0:
        return
    if err != errno.EINVAL:  # EINVAL: not (any longer) a mount point
        raise PlatformError(f"Unmounting {target} failed: {os.strerror(err)}.")


def mount_points() -> list[Path]:
    """The mount points of this mount namespace, from ``/proc/self/mountinfo``."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().splitlines()
    return [Path(_unescape(line.split(" ")[4])) for line in lines]


def is_mounted(target: Path) -> bool:
    return Path(os.path.abspath(target)) in mount_points()


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    if "\\" not in field:
        return field
    return (
        field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")
    )
