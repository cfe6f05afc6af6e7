"""The Dockerfile parser, Docker's word processing and .dockerignore matching (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.build.dockerfile import (
    DockerIgnore,
    Instruction,
    expand_word,
    expand_words,
    key_values,
    match_regex,
    parse_dockerfile,
)
from paas.errors import BuildFailed

# --- instructions ---------------------------------------------------------------------------


def test_instructions_carry_their_line_numbers() -> None:
    text = (
        "# a comment\n"
        "\n"
        "FROM bookworm\n"
        "run echo hi\n"
        "  # indented comment\n"
        'CMD ["python3", "app.py"]\n'
    )
    parsed = parse_dockerfile(text)
    assert [(i.line, i.keyword) for i in parsed] == [(3, "FROM"), (4, "RUN"), (6, "CMD")]
    assert parsed[1].text == "echo hi"
    assert parsed[1].argv == ("/bin/sh", "-c", "echo hi")
    assert parsed[2].exec_form == ("python3", "app.py")
    assert parsed[2].argv == ("python3", "app.py")


def test_continuation_lines_join_and_skip_comments_and_blanks() -> None:
    text = (
        "FROM bookworm\nRUN apt-get update && \\\n# a comment\n\n"
        "    apt-get install -y curl\nENV A=1\n"
    )
    parsed = parse_dockerfile(text)
    assert parsed[1].line == 2
    assert parsed[1].text == "apt-get update &&     apt-get install -y curl"
    assert parsed[2].line == 6


def test_escape_directive_changes_the_continuation_character() -> None:
    parsed = parse_dockerfile("# escape=`\nFROM bookworm\nRUN echo a `\n  b\nCOPY c:\\dir /x\n")
    assert parsed[1].text == "echo a   b"
    assert parsed[2].escape == "`"
    assert expand_words(parsed[2].text, {}, 5, parsed[2].escape) == ["c:\\dir", "/x"]


def test_flags_are_split_off() -> None:
    (_, copy) = parse_dockerfile("FROM bookworm\nCOPY --chown=app:app --chmod=755 a b /dst/\n")
    assert copy.flags == {"chown": "app:app", "chmod": "755"}
    assert copy.text == "a b /dst/"
    assert str(copy) == "COPY --chown=app:app --chmod=755 a b /dst/"


def test_copy_takes_a_json_form() -> None:
    (_, copy) = parse_dockerfile('FROM bookworm\nCOPY ["a file", "/dst/"]\n')
    assert copy.exec_form == ("a file", "/dst/")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "FROM bookworm\nRUNN echo\n",
            2,
            "unknown instruction 'RUNN'. Supported instructions: FROM",
        ),
        ("FROM bookworm\n\nHEALTHCHECK CMD true\n", 3, "HEALTHCHECK is not supported"),
        ("FROM bookworm\nVOLUME /data\n", 2, "VOLUME is not supported"),
        ("FROM bookworm\nRUN\n", 2, "RUN needs arguments"),
        ('FROM bookworm\nCMD ["python3" "app.py"]\n', 2, "not a JSON array of strings"),
        ("FROM bookworm\nCMD [1, 2]\n", 2, "not a JSON array of strings"),
        ("FROM bookworm\nCMD []\n", 2, "at least one element"),
        ("FROM bookworm\nCOPY --from=build /a /b\n", 2, "multi-stage builds"),
        ("FROM bookworm\nCOPY --link a /b\n", 2, "does not take the option '--link'"),
        ("FROM --platform=linux/amd64 bookworm\n", 1, "FROM does not take the option"),
        ("FROM bookworm\nRUN echo \\\n", 2, "continues past the end of the file"),
        ("# escape=x\nFROM bookworm\n", 1, "invalid escape character"),
    ],
)
def test_syntax_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(BuildFailed) as failure:
        parse_dockerfile(text)
    assert failure.value.message.startswith(f"Dockerfile line {line}: ")
    assert fragment in failure.value.message


def test_an_empty_dockerfile_is_rejected() -> None:
    with pytest.raises(BuildFailed, match="no instructions"):
        parse_dockerfile("# nothing\n\n")


# --- words and variables --------------------------------------------------------------------

ENV = {"NAME": "world", "EMPTY": "", "DIR": "/srv/app"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a b  c", ["a", "b", "c"]),
        ("$NAME ${NAME}x $DIR/bin", ["world", "worldx", "/srv/app/bin"]),
        ("\"hello $NAME\" '$NAME'", ["hello world", "$NAME"]),
        ("a\\ b \\$NAME", ["a b", "$NAME"]),
        ('"a\\"b" "c\\d"', ['a"b', "c\\d"]),
        ('"" x', ["", "x"]),
        (
            "${MISSING:-fallback} ${EMPTY:-e} ${EMPTY-e} ${NAME:+set} ${MISSING:+set}",
            ["fallback", "e", "", "set", ""],
        ),
        ("${MISSING:-${NAME}}", ["world"]),
        ("$ $1 a$", ["$", "$1", "a$"]),
        ("$MISSING", [""]),
    ],
)
def test_expand_words(text: str, words: list[str]) -> None:
    assert expand_words(text, ENV, 1) == words


def test_expand_word_keeps_blanks() -> None:
    assert expand_word("/srv/$NAME  dir", ENV, 1) == "/srv/world  dir"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('"open', 'unterminated " quote'),
        ("'open", "unterminated ' quote"),
        ("${NAME", "missing '}'"),
        ("${NAME?err}", "unsupported modifier"),
        ("${:-x}", "a name must come first"),
    ],
)
def test_bad_words_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(BuildFailed) as failure:
        expand_words(text, ENV, 7)
    assert failure.value.message.startswith("Dockerfile line 7: ")
    assert fragment in failure.value.message


def _ins(keyword: str, text: str) -> Instruction:
    return Instruction(line=3, keyword=keyword, text=text)


def test_key_values_of_env_and_label() -> None:
    assert key_values(_ins("ENV", 'A=1 B="two words" C=$NAME'), ENV) == [
        ("A", "1"), ("B", "two words"), ("C", "world")
    ]  # fmt: skip
    assert key_values(_ins("ENV", "GREETING hello  $NAME"), ENV) == [("GREETING", "hello  world")]
    assert key_values(_ins("LABEL", 'org.example.v="1.0"'), ENV) == [("org.example.v", "1.0")]


def test_env_values_see_the_variables_from_before_the_instruction() -> None:
    assert key_values(_ins("ENV", "NAME=new OTHER=$NAME"), ENV) == [
        ("NAME", "new"), ("OTHER", "world")
    ]  # fmt: skip


@pytest.mark.parametrize("text", ["JUSTAKEY", "A=1 =2", "A=1 B"])
def test_bad_key_values_name_the_line(text: str) -> None:
    with pytest.raises(BuildFailed, match=r"^Dockerfile line 3: ENV"):
        key_values(_ins("ENV", text), ENV)


# --- .dockerignore --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.pyc", "a.pyc", True),
        ("*.pyc", "dir/a.pyc", False),
        ("**/*.pyc", "dir/sub/a.pyc", True),
        ("**/*.pyc", "a.pyc", True),
        ("dir/**", "dir/a/b", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[a-c]x", "bx", True),
        ("[!a-c]x", "bx", False),
        ("[!a-c]x", "dx", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a.txt", "a_txt", False),
    ],
)
def test_match_regex(pattern: str, path: str, matches: bool) -> None:
    assert bool(match_regex(pattern).match(path)) is matches


def test_dockerignore_rules() -> None:
    ignore = DockerIgnore.parse(
        "# comment\n\n*.log\n/build\n./tmp/\ndocs\n!docs/README.md\n**/__pycache__\n"
    )
    assert ignore.ignored("app.log")
    assert not ignore.ignored("src/app.log")  # * stays in one path element
    assert ignore.ignored("build") and ignore.ignored("build/out/x.o")
    assert ignore.ignored("tmp/a")
    assert ignore.ignored("docs/index.md")
    assert not ignore.ignored("docs/README.md")  # the exception, though docs/ is excluded
    assert ignore.ignored("src/pkg/__pycache__/m.pyc")
    assert not ignore.ignored("app.py")


def test_dockerignore_last_match_wins() -> None:
    ignore = DockerIgnore.parse("*.md\n!README.md\nREADME.md\n")
    assert ignore.ignored("README.md")
    assert DockerIgnore.parse("*\n!src\n").ignored("other")
    assert not DockerIgnore.parse("*\n!src\n").ignored("src/app.py")


def test_dockerignore_read_from_the_context(tmp_path: Path) -> None:
    assert DockerIgnore.read(tmp_path).rules == ()
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    assert DockerIgnore.read(tmp_path).ignored("secret.txt")
