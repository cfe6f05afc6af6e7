"""sshd_config and authorized_keys rendering, public key and key name validation."""

from __future__ import annotations

import base64
import struct
import subprocess
from pathlib import Path

import pytest

from paas.errors import InvalidInput
from paas.gitserver.sshd import (
    authorized_keys_line,
    ensure_host_keys,
    parse_public_key,
    render_sshd_config,
    validate_key_name,
)


def make_key_line(key_type: str = "ssh-ed25519", comment: str = "me@host") -> str:
    blob = struct.pack(">I", len(key_type)) + key_type.encode() + struct.pack(">I", 32) + b"k" * 32
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}"


@pytest.fixture(scope="module")
def real_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A key made by ssh-keygen and its fingerprint as ssh-keygen -l prints it."""
    path = tmp_path_factory.mktemp("key") / "id"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(path)],
        check=True,
        timeout=30,
    )
    listing = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{path}.pub"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return Path(f"{path}.pub").read_text(), listing.split()[1]


def test_parse_a_real_key_and_its_fingerprint(real_key: tuple[str, str]) -> None:
    line, fingerprint = real_key
    key = parse_public_key(line)
    assert key.type == "ssh-ed25519"
    assert key.base64 == line.split()[1]
    assert key.fingerprint == fingerprint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected 'TYPE BASE64"),
        ("garbage", "expected 'TYPE BASE64"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "Unsupported SSH key type"),
        ("ssh-ed25519 not*base64", "corrupt"),
        ("ssh-ed25519 AAAA", "truncated"),
        (make_key_line("ssh-rsa").replace("ssh-rsa", "ssh-ed25519", 1), "does not match"),
        ('command="sh" ' + make_key_line(), "Unsupported SSH key type"),
        (make_key_line() + "\nssh-ed25519 AAAA", "single line"),
        (make_key_line(comment='x" command="sh'), None),
    ],
)
def test_garbage_and_injection_attempts(text: str, message: str | None) -> None:
    if message is None:  # a quote in the comment is harmless: the comment is dropped
        key = parse_public_key(text)
        line = authorized_keys_line(key, "alice", Path("/s.env"), Path("/venv"))
        assert line.count('"') == 2
        return
    with pytest.raises(InvalidInput, match=message):
        parse_public_key(text)


@pytest.mark.parametrize("name", ["alice", "alice@laptop", "ci-bot_2.0", "a"])
def test_valid_key_names(name: str) -> None:
    assert validate_key_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", 'a"b', "a\nb", "alice\n", "a;rm", "x" * 65, "é"])
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_key_name(name)


def test_authorized_keys_line_forces_the_command_and_drops_the_comment() -> None:
    key = parse_public_key(make_key_line(comment="evil comment"))
    line = authorized_keys_line(
        key, "alice@laptop", Path("/var/lib/paas/settings.env"), Path("/opt/paas/.venv")
    )
    assert line == (
        'restrict,pty,command="env PAAS_SETTINGS_FILE=/var/lib/paas/settings.env '
        '/opt/paas/.venv/bin/paas-ssh alice@laptop" '
        f"ssh-ed25519 {key.base64} alice@laptop\n"
    )
    assert line.count("\n") == 1


def test_authorized_keys_line_refuses_unsafe_names_and_paths() -> None:
    key = parse_public_key(make_key_line())
    with pytest.raises(InvalidInput):
        authorized_keys_line(key, 'a" b', Path("/s.env"), Path("/venv"))
    with pytest.raises(InvalidInput):
        authorized_keys_line(key, "alice", Path('/tmp/x"y'), Path("/venv"))
    with pytest.raises(InvalidInput):
        authorized_keys_line(key, "alice", Path("/s.env"), Path("/my venv"))


def test_sshd_config() -> None:
    text = render_sshd_config(
        port=2222,
        listen_address="127.0.0.1",
        host_keys=[Path("/r/ssh/ssh_host_ed25519_key")],
        authorized_keys_file=Path("/r/ssh/authorized_keys"),
        pid_file=Path("/r/run/sshd.pid"),
        ssh_user="paas",
    )
    lines = set(text.splitlines())
    for expected in [
        "Port 2222",
        "ListenAddress 127.0.0.1:2222",
        "HostKey /r/ssh/ssh_host_ed25519_key",
        "AuthorizedKeysFile /r/ssh/authorized_keys",
        "PidFile /r/run/sshd.pid",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin no",
        "AllowUsers paas",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        "PermitUserEnvironment no",
        "LogLevel INFO",
    ]:
        assert expected in lines, expected
    v6 = render_sshd_config(
        port=22,
        listen_address="::1",
        host_keys=[],
        authorized_keys_file=Path("/a"),
        pid_file=Path("/p"),
        ssh_user="git",
    )
    assert "ListenAddress [::1]:22" in v6.splitlines()
    with pytest.raises(InvalidInput):
        render_sshd_config(
            port=22,
            listen_address="::1",
            host_keys=[],
            authorized_keys_file=Path("/a"),
            pid_file=Path("/p"),
            ssh_user="root\nPermitRootLogin yes",
        )


def test_ensure_host_keys_is_idempotent(tmp_path: Path) -> None:
    keys = ensure_host_keys(tmp_path / "ssh")
    assert keys == [tmp_path / "ssh" / "ssh_host_ed25519_key"]
    before = keys[0].read_bytes()
    assert ensure_host_keys(tmp_path / "ssh") == keys
    assert keys[0].read_bytes() == before
    assert keys[0].with_suffix(".pub").exists()
