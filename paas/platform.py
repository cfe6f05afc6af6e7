"""``paas-platform``: prepares the platform root and runs the platform's own processes.

``paas-platform run`` prepares everything (directories, the SSH user, Redis, nginx and
sshd configs, the bridge, the API token, the default stack), then starts the processes
of the top-level Procfile and stops them all on TERM or Ctrl-C. Each Procfile line is a
``paas-platform PROCESS`` subcommand that execs the real server with its arguments, so
the same lines serve as systemd units.
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from redis import RedisError

from paas.errors import InvalidInput, PaasError, PlatformError
from paas.gitserver.sshd import ensure_host_keys, render_sshd_config
from paas.procfile import parse_procfile
from paas.settings import Settings, load_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
STOP_GRACE = 10.0
UNPRIVILEGED = frozenset({"web"})  # processes that run as the platform's user, not root


def render_redis_conf(settings: Settings) -> str:
    """Embedded Redis: a Unix socket only (no TCP port an app could reach), AOF on."""
    return "\n".join(
        [
            "port 0",
            f"unixsocket {settings.redis_socket}",
            "unixsocketperm 777",  # the run dir (0750, group of the SSH user) guards it
            f"dir {settings.redis_dir}",
            "appendonly yes",
            'save ""',
            "daemonize no",
            f"pidfile {settings.run_dir / 'redis.pid'}",
            "loglevel notice",
            "",
        ]
    )


def _bin(name: str) -> str:
    """A program of our venv (next to this Python) or from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


# --- the processes of the Procfile ----------------------------------------------------------


def process_argv(settings: Settings, name: str) -> list[str]:
    """The command line of one platform process."""
    s = settings
    if name == "redis":
        return ["redis-server", str(s.redis_dir / "redis.conf")]
    if name == "web":
        return [
            _bin("gunicorn"), "-k", "gthread", "--threads", "8", "-w", "2",
            "--timeout", "0", "--no-control-socket", "--graceful-timeout", "10",
            "-b", f"{s.bind}:{s.api_port}", "--access-logfile", "-", "paas.web.wsgi:app",
        ]
    if name == "worker":
        return [
            _bin("celery"), "-A", "paas.tasks.worker", "worker", "-l", "info", "-c", "3",
            "-n", f"paas-{s.instance}@%h", "--without-gossip", "--without-mingle",
        ]
    if name == "beat":
        return [
            _bin("celery"), "-A", "paas.tasks.worker", "beat", "-l", "info",
            "-s", str(s.run_dir / "beat-schedule"), "--pidfile=",
        ]
    if name in ("monitor", "agent"):
        return [_bin("paas-platform"), name]
    if name == "router":
        conf = s.nginx_dir / "nginx.conf"
        return ["nginx", "-c", str(conf), "-p", str(s.nginx_dir), "-g", "daemon off;"]
    if name == "sshd":
        return [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f",
                str(s.ssh_dir / "sshd_config")]
    raise PlatformError(f"Unknown platform process {name!r}.")


def process_user(settings: Settings, name: str) -> pwd.struct_passwd | None:
    """The user a platform process started by root runs as: the platform's user for the API
    and dashboard, which ask the agent for what needs root; None keeps root."""
    if name not in UNPRIVILEGED or os.geteuid() != 0:
        return None
    return pwd.getpwnam(settings.ssh_user)


def user_env(env: Mapping[str, str], user: pwd.struct_passwd | None) -> dict[str, str]:
    """``env`` for a process that runs as ``user``: its own HOME (git reads ~/.gitconfig)."""
    if user is None:
        return dict(env)
    return {**env, "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name}


# --- preparing the root --------------------------------------------------------------------


def ensure_ssh_user(name: str, home: Path) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _run(["useradd", "--system", "--home-dir", str(home), "--no-create-home",
              "--shell", "/bin/sh", name])
        entry = pwd.getpwnam(name)
    # sshd without PAM refuses locked accounts ("!"): "*" means no password, not locked.
    _run(["usermod", "-p", "*", name])
    return entry.pw_uid, entry.pw_gid


def prepare(settings: Settings, out: Callable[[str], None] = print) -> None:
    """Directories, user, configs and bridge. Idempotent; needs root."""
    if os.geteuid() != 0:
        raise PlatformError("The platform drives runc, netns and mounts: run it as root.")
    s = settings
    for path in (s.root, s.layers_dir, s.images_dir, s.stacks_dir, s.containers_dir,
                 s.cache_dir, s.network_dir, s.nginx_dir, s.ssh_dir, s.redis_dir, s.tmp_dir):
        path.mkdir(parents=True, exist_ok=True)
    uid, gid = ensure_ssh_user(s.ssh_user, s.root)
    s.run_dir.mkdir(parents=True, exist_ok=True)
    os.chown(s.run_dir, 0, gid)
    s.run_dir.chmod(0o750)
    s.repos_dir.mkdir(exist_ok=True)
    os.chown(s.repos_dir, uid, gid)
    s.root.chmod(0o755)
    settings_text = "".join(f"{k}={v}\n" for k, v in sorted(s.to_env().items()))
    _write(s.settings_file, settings_text, 0o640, gid=gid)
    (s.redis_dir / "redis.conf").write_text(render_redis_conf(s))
    from paas.wiring import network, router

    router(s).write_main()
    host_keys = ensure_host_keys(s.ssh_dir)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    authorized = s.ssh_dir / "authorized_keys"
    if not authorized.exists():
        _write(authorized, "", 0o644)
    sshd_config = render_sshd_config(
        port=s.ssh_port,
        listen_address=s.bind,
        host_keys=host_keys,
        authorized_keys_file=authorized,
        pid_file=s.run_dir / "sshd.pid",
        ssh_user=s.ssh_user,
    )
    _write(s.ssh_dir / "sshd_config", sshd_config, 0o644)
    network(s).ensure_bridge()
    out(f"Platform root {s.root} is ready.")


def ensure_token(settings: Settings) -> str:
    from paas.wiring import services

    store = services(settings).store
    path = settings.token_file
    if path.exists():
        token = path.read_text().strip()
    else:
        token = secrets.token_urlsafe(32)
        _write(path, token + "\n", 0o600)
    if store.token_owner(token) is None:
        store.add_token("admin", token)
    store.describe_token(token, "CLI (api-token file)")
    # SSH commands run as the SSH user and reach the API with a token of their own.
    relay = settings.ssh_token_file
    if not relay.exists():
        gid = pwd.getpwnam(settings.ssh_user).pw_gid
        _write(relay, secrets.token_urlsafe(32) + "\n", 0o640, gid=gid)
    relay_token = relay.read_text().strip()
    if store.token_owner(relay_token) is None:
        store.add_token("ssh", relay_token)
    store.describe_token(relay_token, "SSH commands")
    return token


def ensure_admin(settings: Settings, out: Callable[[str], None] = print) -> None:
    """The dashboard's session key file (0600) and admin account: the password comes from
    PAAS_ADMIN_PASSWORD, or is generated and printed once, when there is no account yet."""
    from paas.web.auth import (
        ensure_secret_key,
        generate_password,
        secret_key_path,
        set_admin_password,
    )
    from paas.wiring import services

    key = secret_key_path(settings)
    ensure_secret_key(key)
    entry = pwd.getpwnam(settings.ssh_user)
    os.chown(key, entry.pw_uid, entry.pw_gid)  # the API's user signs the sessions
    store = services(settings).store
    if store.admin_password_hash() is not None:
        return
    password = os.environ.get("PAAS_ADMIN_PASSWORD") or generate_password()
    set_admin_password(store, password)
    if "PAAS_ADMIN_PASSWORD" in os.environ:
        out("Dashboard: user admin, with the password of PAAS_ADMIN_PASSWORD.")
    else:
        out(f"Dashboard: user admin, password {password} (shown once; change it with "
            "paas-platform admin:password)")


def reset_admin_password(settings: Settings) -> int:
    """``paas-platform admin:password``: a new admin password, typed (twice) at a terminal,
    read from standard input, or generated and printed when none is given. Ends every open
    dashboard session."""
    import getpass

    from paas.web.auth import generate_password, set_admin_password
    from paas.wiring import services

    if sys.stdin.isatty():
        password = getpass.getpass("New admin password (empty: generate one): ")
        if password and getpass.getpass("Again: ") != password:
            raise InvalidInput("The two passwords differ; nothing changed.")
    else:
        password = sys.stdin.readline().rstrip("\n")
    generated = not password
    password = password or generate_password()
    set_admin_password(services(settings).store, password)
    print(f"New admin password: {password}" if generated else "Admin password changed.")
    return 0


def ensure_stack(settings: Settings, out: Callable[[str], None] = print) -> None:
    from paas.wiring import worker_services

    worker = worker_services(settings).worker
    assert worker is not None
    worker.stacks.ensure(settings.stack, out)


def fail_interrupted_builds(settings: Settings, out: Callable[[str], None] = print) -> None:
    """Before the worker takes a task: fail the builds that a stopped worker left running
    (``Deploys.fail_interrupted_builds``). The worker starts whatever happens here."""
    from paas.wiring import services

    try:
        wait_for_redis(settings, None, timeout=10.0)
        failed = services(settings).fail_interrupted_builds()
    except (PaasError, RedisError) as exc:
        out(f"paas-platform: could not look for interrupted builds: {exc}")
        return
    for build_id in failed:
        out(f"paas-platform: build {build_id} was cut short by a stop of the worker: failed it")


def initialize(settings: Settings, out: Callable[[str], None] = print) -> None:
    """What needs Redis up: the API tokens, the dashboard's admin account and the default
    stack. Idempotent; prints only what it creates."""
    ensure_token(settings)
    ensure_admin(settings, out)
    ensure_stack(settings, out)


def uninstall(settings: Settings) -> None:
    """Stop and remove every container, network namespace, veth, the bridge, the router's
    app files and runc's state of this platform. Data (repos, layers, Redis) stays."""
    from paas.wiring import network, router, runtime

    rt = runtime(settings)
    for info in rt.list():
        rt.stop(info.id, settings.stop_timeout)
    network(settings).destroy()
    r = router(settings)
    for app in r.apps():
        r.remove_app(app)
    rt.prune_cgroups()
    shutil.rmtree(settings.runc_root.parent, ignore_errors=True)


# --- running -----------------------------------------------------------------------------


class ProcessGroup:
    """The platform's processes: started in order, stopped together (TERM, grace, KILL)."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        user: pwd.struct_passwd | None,
        output: BinaryIO | None = None,
    ) -> None:
        """Start ``argv`` as ``user`` (None: as we are), its output to ``output`` (None: ours)."""
        ids: dict[str, Any] = {}
        if user is not None:
            ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.procs[name] = subprocess.Popen(
            list(argv), env=user_env(env, user), start_new_session=True, stdout=output,
            stderr=None if output is None else subprocess.STDOUT, **ids,
        )  # fmt: skip

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def wait_for_redis(
    settings: Settings, group: ProcessGroup | None, timeout: float = 20.0
) -> None:
    """Until Redis answers; ``group``: stop waiting as soon as one of its processes exits."""
    from paas.wiring import redis_client

    client = redis_client(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group is not None and group.exited():
            break
        try:
            if client.ping():
                return
        except Exception:  # redis-py raises several kinds while the server starts
            time.sleep(0.1)
    raise PlatformError(f"Redis did not come up at {settings.effective_redis_url}.")


def run(settings: Settings) -> int:
    prepare(settings)
    env = {**os.environ, **settings.to_env(), "PAAS_SETTINGS_FILE": str(settings.settings_file)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    processes = parse_procfile((PROJECT_DIR / "Procfile").read_text())
    group = ProcessGroup()
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if settings.embedded_redis:
            group.start("redis", process_argv(settings, "redis"), env, None)
        wait_for_redis(settings, group)
        initialize(settings)
        fail_interrupted_builds(settings)  # before the worker starts
        for name in processes:
            if name != "redis":
                process = _subcommand(processes[name])
                argv = process_argv(settings, process)
                group.start(name, argv, env, process_user(settings, process))
        from paas.tasks.celery_app import CeleryQueue, create_celery

        CeleryQueue(create_celery(settings)).enqueue_reconcile_all()
        _banner(settings)
        while not stopping:
            died = group.exited()
            if died:
                print(f"paas: process {died[0]} exited with {died[1]}; stopping.", flush=True)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        group.stop()


def run_monitor(settings: Settings) -> int:
    """The monitor loop, until TERM or INT."""
    from paas.wiring import monitor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s monitor %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    monitor(settings).run(stop)
    return 0


def run_agent(settings: Settings) -> int:
    """The agent (``paas.agent``), until TERM or INT."""
    from paas.wiring import agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(message)s")
    entry = pwd.getpwnam(settings.ssh_user)
    server = agent(settings, entry.pw_uid, entry.pw_gid)
    server.host.write_authorized_keys()  # the keys in the store are the truth

    def _stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        settings.agent_socket.unlink(missing_ok=True)
    return 0


def _subcommand(command: str) -> str:
    """``paas-platform web`` -> ``web``."""
    parts = command.split()
    if len(parts) != 2 or parts[0] != "paas-platform":
        raise PlatformError(f"Procfile lines must be 'paas-platform PROCESS', got {command!r}.")
    return parts[1]


def _banner(settings: Settings) -> None:
    s = settings
    host = "127.0.0.1" if s.bind in ("0.0.0.0", "") else s.bind
    print(
        f"\npaas is running.\n"
        f"  Dashboard: {s.api_url}/   (user admin)\n"
        f"  API:      {s.api_url}/api/v1   (token: paas auth:token)\n"
        f"  Router:   http://{host}:{s.http_port}/  (apps at http://APP.{s.domain})\n"
        f"  Git/SSH:  git remote add paas ssh://{s.ssh_user}@{host}:{s.ssh_port}/APP\n"
        f"  Git/HTTP: git remote add paas http://{host}:{s.api_port}/git/APP.git\n"
        f"  SSH keys: paas ssh-keys:add NAME < ~/.ssh/id_ed25519.pub\n"
        f"Stop with Ctrl-C.\n",
        flush=True,
    )


def _write(path: Path, text: str, mode: int, gid: int | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    if gid is not None:
        os.chown(tmp, 0, gid)
    os.replace(tmp, path)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise PlatformError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paas-platform", description=__doc__)
    parser.add_argument(
        "command",
        choices=["run", "prepare", "init", "uninstall", "monitor", "agent", "admin:password",
                 "redis", "web", "worker", "beat", "router", "sshd"],
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
        if args.command == "run":
            return run(settings)
        if args.command == "prepare":
            prepare(settings)
            return 0
        if args.command == "init":
            initialize(settings)
            return 0
        if args.command == "uninstall":
            uninstall(settings)
            return 0
        if args.command == "monitor":
            return run_monitor(settings)
        if args.command == "agent":
            return run_agent(settings)
        if args.command == "admin:password":
            return reset_admin_password(settings)
        if args.command == "worker":
            fail_interrupted_builds(settings)
        argv_ = process_argv(settings, args.command)
        user = process_user(settings, args.command)
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        os.execvpe(argv_[0], argv_, user_env(os.environ, user))
    except PaasError as exc:
        print(f"paas-platform: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0

