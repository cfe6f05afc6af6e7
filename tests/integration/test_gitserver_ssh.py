"""git over a private sshd whose authorized_keys force ``paas-ssh KEYNAME``, as an unprivileged
throwaway system user, the way the platform runs it."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paas.gitserver.repos import RepoStore
from paas.gitserver.sshd import (
    PRIVSEP_DIR,
    authorized_keys_line,
    ensure_host_keys,
    ensure_privsep_dir,
    parse_public_key,
    render_sshd_config,
)

pytestmark = pytest.mark.root

VENV = Path(sys.executable).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=True)


def remove_user(user: str) -> None:
    """userdel refuses while a process of the user lives (an sshd session ending late)."""
    uid = pwd.getpwnam(user).pw_uid
    deadline = time.monotonic() + 10
    while True:
        result = subprocess.run(
            ["userdel", user], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, f"could not remove user {user}: {result.stderr}"
            return
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                if proc.name.isdigit() and proc.stat().st_uid == uid:
                    os.kill(int(proc.name), signal.SIGKILL)
        time.sleep(0.1)


@dataclass
class SshServer:
    root: Path
    port: int
    user: str
    repos: RepoStore
    key: Path
    env: dict[str, str]

    def url(self, app: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{app}"

    def set_hook(self, body: str) -> None:
        hook = self.root / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        hook.chmod(0o755)

    def ssh_command(self, key: Path) -> str:
        return (
            f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
        )

    def git(
        self, cwd: Path, *args: str, key: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "GIT_SSH_COMMAND": self.ssh_command(key or self.key)}
        return subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )


@pytest.fixture(scope="module")
def server() -> Iterator[SshServer]:
    if os.geteuid() != 0:
        pytest.skip("needs root (sshd, a system user)")
    created_privsep = not PRIVSEP_DIR.exists()
    user = f"paast{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp(prefix="paas-ssh-"))
    proc: subprocess.Popen[bytes] | None = None
    user_added = False
    try:
        root.chmod(0o755)
        run(
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            str(root),
            "--shell",
            "/bin/sh",
            user,
        )
        user_added = True
        run("usermod", "-p", "*", user)  # "!" (locked) is refused by sshd without PAM
        entry = pwd.getpwnam(user)
        owner = (entry.pw_uid, entry.pw_gid)

        (root / "hooks").mkdir()
        platform = root / "platform"
        (platform / "repos").mkdir(parents=True)
        os.chown(platform / "repos", *owner)
        settings = root / "settings.env"
        settings.write_text(f"PAAS_ROOT={platform}\n")
        # A paas-ssh that is main() with the test's hooks dir instead of the project's.
        fake_venv = root / "venv"
        (fake_venv / "bin").mkdir(parents=True)
        entry_point = fake_venv / "bin" / "paas-ssh"
        entry_point.write_text(
            f"#!{sys.executable}\nimport sys\nfrom pathlib import Path\n"
            "from paas.gitserver.ssh import main\n"
            f"sys.exit(main(hook_source=Path({str(root / 'hooks')!r})))\n"
        )
        entry_point.chmod(0o755)

        client = root / "client"
        client.mkdir()
        for name in ("alice", "bob"):
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client / name))
        alice = parse_public_key((client / "alice.pub").read_text())
        bob = parse_public_key((client / "bob.pub").read_text())
        ssh_dir = root / "ssh"
        (ssh_dir).mkdir()
        (ssh_dir / "authorized_keys").write_text(
            authorized_keys_line(alice, "alice", settings, fake_venv)
            + authorized_keys_line(bob, "bob", settings, VENV)  # the real console script
        )
        port = free_port()
        (ssh_dir / "sshd_config").write_text(
            render_sshd_config(
                port=port,
                listen_address="127.0.0.1",
                host_keys=ensure_host_keys(ssh_dir),
                authorized_keys_file=ssh_dir / "authorized_keys",
                pid_file=ssh_dir / "sshd.pid",
                ssh_user=user,
            )
        )
        ensure_privsep_dir()
        log = open(ssh_dir / "sshd.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(ssh_dir / "sshd_config")],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (ssh_dir / "sshd.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.05)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(client),
            "LANG": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e.com",
        }
        repos = RepoStore(platform / "repos", root / "hooks", owner=owner)
        srv = SshServer(root, port, user, repos, client / "alice", env)
        srv.set_hook("exit 0\n")
        yield srv
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if user_added:
            remove_user(user)
        shutil.rmtree(root, ignore_errors=True)
        if created_privsep:
            shutil.rmtree(PRIVSEP_DIR, ignore_errors=True)


@pytest.fixture
def work(server: SshServer, tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    server.git(tmp_path, "init", "-q", "-b", "master", str(repo))
    (repo / "app.py").write_text("print('hi')\n")
    server.git(repo, "add", ".")
    server.git(repo, "commit", "-q", "-m", "first")
    return repo


def rev(server: SshServer, repo: Path) -> str:
    return server.git(repo, "rev-parse", "HEAD").stdout.strip()


def test_push_streams_hook_output_live_and_moves_the_ref(server: SshServer, work: Path) -> None:
    server.repos.ensure("hello")
    server.set_hook(
        """\
        read old new ref
        echo "step 1 app=$PAAS_APP pusher=$PAAS_PUSHER $(git cat-file -t "$new")"
        sleep 1
        echo "step 2" >&2
        sleep 1
        echo "step 3"
        """
    )
    env = {**server.env, "GIT_SSH_COMMAND": server.ssh_command(server.key)}
    start = time.monotonic()
    proc = subprocess.Popen(
        ["git", "push", server.url("hello"), "master"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    arrivals: dict[str, float] = {}
    output = []
    for raw in iter(proc.stderr.readline, b""):
        line = raw.decode(errors="replace")
        output.append(line)
        for step in ("step 1", "step 2", "step 3"):
            if f"remote: {step}" in line:
                arrivals[step] = time.monotonic() - start
    assert proc.wait(timeout=30) == 0, "".join(output)
    end = time.monotonic() - start
    assert "remote: step 1 app=hello pusher=alice commit" in "".join(output)
    assert set(arrivals) == {"step 1", "step 2", "step 3"}
    assert arrivals["step 1"] < end - 1.5, (arrivals, end)
    assert server.repos.head("hello") == rev(server, work)
    uid = pwd.getpwnam(server.user).pw_uid
    assert all(p.lstat().st_uid == uid for p in server.repos.path("hello").rglob("*"))


def test_declined_push_over_ssh(server: SshServer, work: Path) -> None:
    server.repos.ensure("nope")
    server.set_hook('echo "-----> Build failed"; exit 1\n')
    result = server.git(work, "push", server.url("nope.git"), "master")
    assert result.returncode != 0
    assert "remote: -----> Build failed" in result.stderr
    assert "[remote rejected] master -> master (pre-receive hook declined)" in result.stderr
    assert server.repos.head("nope") is None


def test_push_to_missing_app_is_refused_until_wired(server: SshServer, work: Path) -> None:
    result = server.git(work, "push", server.url("ghost"), "master")
    assert result.returncode != 0
    assert "App 'ghost' does not exist: create it with `paas apps:create ghost`" in result.stderr
    assert not server.repos.exists("ghost")


def test_clone_over_ssh(server: SshServer, work: Path, tmp_path: Path) -> None:
    server.repos.ensure("cloned")
    server.set_hook("exit 0\n")
    assert server.git(work, "push", server.url("cloned"), "master").returncode == 0
    result = server.git(tmp_path, "clone", "-q", server.url("cloned.git"), "copy")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "copy" / "app.py").read_text() == "print('hi')\n"


def test_the_real_console_script_needs_the_relay_token_for_commands(
    server: SshServer, tmp_path: Path
) -> None:
    """Non-git commands go to the CLI through the API; without the platform's relay token
    (this test runs no platform) they are refused with a message, never run."""
    bob = server.root / "client" / "bob"
    ssh = [*server.ssh_command(bob).split(), "-p", str(server.port), f"{server.user}@127.0.0.1"]
    result = subprocess.run([*ssh, "id"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "commands over SSH are not enabled here" in result.stderr
    result = subprocess.run(
        ssh, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert result.returncode != 0
    clone = server.git(tmp_path, "clone", server.url("absent"), "x", key=bob)
    assert clone.returncode != 0
    assert "App 'absent' does not exist." in clone.stderr


def test_push_latency(server: SshServer, work: Path) -> None:
    server.repos.ensure("timed")
    server.set_hook("exit 0\n")
    times = []
    for i in range(5):
        (work / "n").write_text(str(i))
        server.git(work, "add", "n")
        server.git(work, "commit", "-q", "-m", str(i))
        start = time.monotonic()
        assert server.git(work, "push", "-q", server.url("timed"), "master").returncode == 0
        times.append(time.monotonic() - start)
    print(f"ssh push: median {sorted(times)[2] * 1000:.0f} ms")
