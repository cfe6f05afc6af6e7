"""Config vars in the CLI: K=V parsing and `config --shell` output that a shell's eval turns
back into the exact values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paas.cli.config import parse_config_vars, shell_exports
from paas.errors import InvalidInput

TRICKY = "a b 'single' \"double\" $HOME `id` \\ = x=y; $(id)\nsecond line\n\ttab é ✓\n"


def test_parse_splits_at_the_first_equals_sign() -> None:
    assert parse_config_vars(["K=V", "EMPTY=", "URL=postgres://u:p@h/db?a=b", "K=later"]) == {
        "K": "later",
        "EMPTY": "",
        "URL": "postgres://u:p@h/db?a=b",
    }
    assert parse_config_vars([f"K={TRICKY}"]) == {"K": TRICKY}


NOT_UTF8 = b"K=\xff".decode(errors="surrogateescape")  # as Python decodes such an argument


@pytest.mark.parametrize("word", ["K", "=V", "1K=V", "K-X=V", "K X=V", "ké=V", NOT_UTF8])
def test_parse_refuses_what_is_not_a_valid_assignment(word: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_config_vars([word])
    assert exc.value.exit_code == 2


def test_shell_exports_are_sorted_export_lines() -> None:
    assert shell_exports({"B": "two words", "A": "1"}) == "export A=1\nexport B='two words'\n"
    assert shell_exports({}) == ""


def shell_value(tmp_path: Path, config: dict[str, str], key: str) -> str:
    script = tmp_path / "config.sh"
    script.write_text(shell_exports(config), encoding="utf-8")
    result = subprocess.run(
        ["sh", "-c", f'eval "$(cat {script})"; printf %s "${key}"'],
        capture_output=True,
        timeout=10,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    return result.stdout.decode("utf-8")


def test_eval_of_shell_exports_gives_back_the_exact_values(tmp_path: Path) -> None:
    config = {"K": TRICKY, "EMPTY": "", "QUOTE": "'", "TRAILING": "x\n\n", "OTHER": "plain"}
    for key, value in config.items():
        assert shell_value(tmp_path, config, key) == value


@settings(max_examples=60, deadline=None)
@given(
    value=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40
    )
)
def test_eval_round_trips_any_text(tmp_path_factory: pytest.TempPathFactory, value: str) -> None:
    assert shell_value(tmp_path_factory.mktemp("sh"), {"K": value}, "K") == value
