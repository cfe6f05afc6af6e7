"""The Debian mirror for debootstrap, read from the host's apt sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.errors import PlatformError
from paas.images.stack import debian_mirror

ARCHIVE = "http://archive.example/debian"
SECURITY = "http://archive.example/debian-security"

DEB822 = f"""\
Types: deb
# a comment
URIs: {ARCHIVE}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {SECURITY}
Suites: bookworm-security
Components: main
"""


def _apt(tmp_path: Path, sources_list: str | None = None, **parts: str) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (apt / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (apt / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return apt


def test_deb822_sources(tmp_path: Path) -> None:
    assert debian_mirror("bookworm", {}, _apt(tmp_path, debian_sources=DEB822)) == ARCHIVE


def test_security_archive_first_is_skipped(tmp_path: Path) -> None:
    text = f"Types: deb\nURIs: {SECURITY}\nSuites: bookworm-security\nComponents: main\n\n"
    apt = _apt(tmp_path, debian_sources=text + DEB822)
    assert debian_mirror("bookworm", {}, apt) == ARCHIVE


def test_one_line_sources_list(tmp_path: Path) -> None:
    text = (
        "# deb http://old.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        f"deb http://security.example/debian-security bookworm-security main\n"
        f"deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] {ARCHIVE} bookworm main contrib\n"
    )
    assert debian_mirror("bookworm", {}, _apt(tmp_path, text)) == ARCHIVE


def test_sources_list_comes_before_parts_and_disabled_files_are_ignored(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        f"deb {ARCHIVE} bookworm main\n",
        a_sources="Types: deb\nURIs: http://other.example/debian\nSuites: bookworm\n"
        "Components: main\n",
        b_list_disabled="deb http://disabled.example/debian bookworm main\n",
    )
    assert debian_mirror("bookworm", {}, apt) == ARCHIVE


def test_a_source_listing_the_suite_is_preferred(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        f"deb http://third-party.example/repo nodistro main\ndeb {ARCHIVE} bookworm main\n",
    )
    assert debian_mirror("bookworm", {}, apt) == ARCHIVE


def test_disabled_and_non_main_entries_are_skipped(tmp_path: Path) -> None:
    text = (
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n"
        "Enabled: no\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://contrib.example/debian\nSuites: bookworm\n"
        "Components: contrib\n\n" + DEB822
    )
    assert debian_mirror("bookworm", {}, _apt(tmp_path, debian_sources=text)) == ARCHIVE


def test_override_wins(tmp_path: Path) -> None:
    apt = _apt(tmp_path, debian_sources=DEB822)
    env = {"PAAS_DEBIAN_MIRROR": "http://mine.example/debian"}
    assert debian_mirror("bookworm", env, apt) == "http://mine.example/debian"


def test_no_mirror_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="PAAS_DEBIAN_MIRROR"):
        debian_mirror("bookworm", {}, _apt(tmp_path))
