import pytest

from paas.errors import InvalidInput
from paas.procfile import parse_procfile


def test_parses_types_in_order_and_skips_comments() -> None:
    text = "# the app\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n\nworker:python w.py\n"
    assert parse_procfile(text) == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT",
        "worker": "python w.py",
    }


def test_command_may_contain_colons() -> None:
    assert parse_procfile("web: echo a:b:c") == {"web": "echo a:b:c"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("web gunicorn", "line 1: expected 'name: command'"),
        ("web:", "has no command"),
        ("we b: x", "expected 'name: command'"),
        ("w$b: x", "Invalid process type"),
        ("web: a\nweb: b", "line 2: process type 'web' is defined twice"),
    ],
)
def test_bad_lines_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_procfile(text)
    assert needle in err.value.message
