"""Dockerfiles and ``.dockerignore`` files, read the way Docker reads them (a pure module).

``parse_dockerfile`` turns the text into ``Instruction`` values, each with the line it starts
on: parser directives (``# escape=``), comments, continuation lines (the escape character at
the end of a line; comment and blank lines inside a continued instruction are dropped),
leading ``--flag=value`` options and the JSON (exec) form. An unknown instruction, one this
platform does not support, a missing argument or a malformed JSON form raises ``BuildFailed``
naming the line.

``expand_words`` and ``expand_word`` do Docker's word processing for the instructions that
take variables (FROM, COPY, ADD, ENV, ARG, WORKDIR, USER, EXPOSE, LABEL): single and double
quotes, the escape character, and ``$NAME``, ``${NAME}``, ``${NAME:-default}``,
``${NAME-default}``, ``${NAME:+alternative}`` and ``${NAME+alternative}``. RUN, CMD and
ENTRYPOINT are not expanded: their shell does it, with ARG and ENV values in its environment.

``DockerIgnore`` answers whether a path of the build context is excluded, with Docker's rules:
patterns are cleaned paths relative to the context, ``*``, ``?`` and ``[...]`` stay within one
path element, ``**`` matches any number of them, a pattern that matches a directory excludes
everything in it, ``!pattern`` re-includes, and the last matching line wins.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paas.errors import BuildFailed

SUPPORTED = (
    "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "CMD",
    "ENTRYPOINT", "LABEL",
)  # fmt: skip
# Docker instructions this platform knows but does not carry out.
UNSUPPORTED = ("HEALTHCHECK", "VOLUME", "ONBUILD", "STOPSIGNAL", "SHELL", "MAINTAINER")
FLAGS = {"COPY": ("chown", "chmod"), "ADD": ("chown", "chmod")}
EXEC_FORM = ("RUN", "CMD", "ENTRYPOINT", "COPY", "ADD")  # take a JSON array
SHELL = ("/bin/sh", "-c")
_DIRECTIVE_RE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_INSTRUCTION_RE = re.compile(r"^\s*(\S+)(?:\s+(.*))?$", re.DOTALL)
_FLAG_RE = re.compile(r"^--([a-z][a-z-]*)(?:=(.*))?$")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUPPORTED_TEXT = ", ".join(SUPPORTED)


def fail(line: int, message: str) -> BuildFailed:
    """The error of a Dockerfile problem at ``line`` (1-based)."""
    return BuildFailed(f"Dockerfile line {line}: {message}")


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, 1-based
    keyword: str  # upper case, one of SUPPORTED
    text: str  # the arguments after the flags, continuation lines joined
    flags: Mapping[str, str] = field(default_factory=dict)
    exec_form: tuple[str, ...] | None = None  # the JSON array form, when used
    escape: str = "\\"  # the file's escape character (the ``# escape=`` directive)

    @property
    def argv(self) -> tuple[str, ...]:
        """The command of RUN, CMD or ENTRYPOINT: the exec form, or the shell form under sh."""
        return self.exec_form if self.exec_form is not None else (*SHELL, self.text)

    def __str__(self) -> str:
        flags = "".join(f"--{name}={value} " for name, value in self.flags.items())
        return f"{self.keyword} {flags}{self.text}"


# --- the Dockerfile -------------------------------------------------------------------------


def parse_dockerfile(text: str) -> tuple[Instruction, ...]:
    """The instructions of a Dockerfile; ``BuildFailed`` names the first bad line."""
    lines = text.splitlines()
    escape, first = _directives(lines)
    instructions: list[Instruction] = []
    index = first
    while index < len(lines):
        start = index
        raw = lines[index]
        index += 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [raw]
        while parts[-1].rstrip().endswith(escape):
            parts[-1] = parts[-1].rstrip()[: -len(escape)]
            while index < len(lines) and (
                not lines[index].strip() or lines[index].lstrip().startswith("#")
            ):
                index += 1
            if index == len(lines):
                raise fail(start + 1, "the instruction continues past the end of the file.")
            parts.append(lines[index])
            index += 1
        instructions.append(_instruction(start + 1, "".join(parts), escape))
    if not instructions:
        raise BuildFailed("The Dockerfile has no instructions: start it with FROM bookworm.")
    return tuple(instructions)


def _directives(lines: Sequence[str]) -> tuple[str, int]:
    """The escape character and the index of the first line after the parser directives."""
    escape = "\\"
    for index, line in enumerate(lines):
        match = _DIRECTIVE_RE.match(line)
        if not match:
            return escape, index
        name, value = match.group(1).lower(), match.group(2)
        if name == "escape":
            if value not in ("\\", "`"):
                raise fail(index + 1, f"invalid escape character {value!r}: use \\ or `.")
            escape = value
    return escape, len(lines)


def _instruction(line: int, text: str, escape: str) -> Instruction:
    match = _INSTRUCTION_RE.match(text)
    assert match is not None  # the line is not blank
    keyword, rest = match.group(1).upper(), (match.group(2) or "").strip()
    if keyword in UNSUPPORTED:
        raise fail(line, f"{keyword} is not supported. Supported instructions: {_SUPPORTED_TEXT}.")
    if keyword not in SUPPORTED:
        raise fail(
            line,
            f"unknown instruction {match.group(1)!r}. Supported instructions: {_SUPPORTED_TEXT}.",
        )
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.strip()
        flag = _FLAG_RE.match(word)
        allowed = FLAGS.get(keyword, ())
        if flag is None or flag.group(1) not in allowed or flag.group(2) is None:
            if word.startswith("--from"):
                raise fail(
                    line,
                    f"{keyword} --from needs multi-stage builds, which are not "
                    "supported: copy from the build context.",
                )
            takes = f"takes {', '.join(f'--{a}=...' for a in allowed)}" if allowed else "takes none"
            raise fail(line, f"{keyword} does not take the option {word!r} (it {takes}).")
        flags[flag.group(1)] = flag.group(2)
    if not rest:
        raise fail(line, f"{keyword} needs arguments.")
    exec_form = _exec_form(line, keyword, rest) if keyword in EXEC_FORM else None
    return Instruction(line, keyword, rest, flags, exec_form, escape)


def _exec_form(line: int, keyword: str, text: str) -> tuple[str, ...] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise fail(
            line,
            f"{keyword} {text} is not a JSON array of strings: write "
            f'{keyword} ["program", "argument"] with double quotes, or drop the brackets '
            "for the shell form.",
        )
    if not value:
        raise fail(line, f"{keyword} needs at least one element in its JSON array.")
    return tuple(value)


# --- words and variables --------------------------------------------------------------------


def expand_words(text: str, env: Mapping[str, str], line: int, escape: str = "\\") -> list[str]:
    """``text`` split into words at unquoted blanks, with quotes, escapes and variables done."""
    return _Lexer(text, env, line, escape).words(split=True)


def expand_word(text: str, env: Mapping[str, str], line: int, escape: str = "\\") -> str:
    """``text`` as one word (blanks kept), with quotes, escapes and variables done."""
    return "".join(_Lexer(text, env, line, escape).words(split=False))


def key_values(ins: Instruction, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The ``KEY=VALUE`` pairs of ENV or LABEL, or the legacy ``KEY VALUE...`` form."""
    line, keyword, escape = ins.line, ins.keyword, ins.escape
    head = ins.text.split(None, 1)
    if "=" not in head[0]:
        if len(head) < 2:
            raise fail(line, f"{keyword} {ins.text} has no value: write {keyword} {head[0]}=VALUE.")
        return [(expand_word(head[0], env, line, escape), expand_word(head[1], env, line, escape))]
    pairs = []
    for word in expand_words(ins.text, env, line, escape):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise fail(line, f"{keyword} takes KEY=VALUE pairs; {word!r} is not one.")
        pairs.append((key, value))
    return pairs


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], line: int, escape: str) -> None:
        self.text, self.env, self.line, self.escape = text, env, line, escape
        self.pos = 0

    def words(self, split: bool) -> list[str]:
        words: list[str] = []
        current: list[str] = []
        started = False
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if split and char.isspace():
                if started:
                    words.append("".join(current))
                    current, started = [], False
                continue
            started = True
            if char == self.escape:
                if self.pos < len(self.text):
                    current.append(self.text[self.pos])
                    self.pos += 1
            elif char == "'":
                current.append(self._until("'"))
            elif char == '"':
                current.append(self._double_quoted())
            elif char == "$":
                current.append(self._variable())
            else:
                current.append(char)
        if started or not split:
            words.append("".join(current))
        return words

    def _until(self, quote: str) -> str:
        end = self.text.find(quote, self.pos)
        if end < 0:
            raise fail(self.line, f"unterminated {quote} quote in {self.text!r}.")
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def _double_quoted(self) -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == self.escape and self.text[self.pos : self.pos + 1] in ('"', "$", char):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == "$":
                out.append(self._variable())
            else:
                out.append(char)
        raise fail(self.line, f'unterminated " quote in {self.text!r}.')

    def _variable(self) -> str:
        if self.text.startswith("{", self.pos):
            return self._braced()
        match = _NAME_RE.match(self.text, self.pos)
        if match is None:
            return "$"
        self.pos = match.end()
        return self.env.get(match.group(), "")

    def _braced(self) -> str:
        start = self.pos + 1
        depth, end = 1, start
        while depth:
            if end >= len(self.text):
                raise fail(self.line, f"missing '}}' in {self.text!r}.")
            if self.text.startswith("${", end):
                depth, end = depth + 1, end + 2
                continue
            depth -= self.text[end] == "}"
            end += 1
        body = self.text[start : end - 1]
        self.pos = end
        match = _NAME_RE.match(body)
        if match is None:
            raise fail(self.line, f"bad variable ${{{body}}}: a name must come first.")
        name, modifier = match.group(), body[match.end() :]
        value = self.env.get(name)
        if not modifier:
            return value or ""
        operator = modifier[:2] if modifier.startswith(":") else modifier[:1]
        word = modifier[len(operator) :]
        present = bool(value) if operator.startswith(":") else value is not None
        if operator in (":-", "-"):
            return (value or "") if present else expand_word(word, self.env, self.line, self.escape)
        if operator in (":+", "+"):
            return expand_word(word, self.env, self.line, self.escape) if present else ""
        raise fail(
            self.line,
            f"unsupported modifier in ${{{body}}}: use ${{{name}:-default}} or "
            f"${{{name}:+alternative}}.",
        )


# --- .dockerignore --------------------------------------------------------------------------


def match_regex(pattern: str) -> re.Pattern[str]:
    """Go ``filepath.Match`` syntax (plus ``**``) as an anchored regex over ``/`` paths."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            if pattern.startswith("*", index):
                index += 1
                if pattern.startswith("/", index):
                    index += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                out.append(re.escape(char))
                continue
            body = pattern[index:end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]")
            index = end + 1
        elif char == "\\" and index < len(pattern):
            out.append(re.escape(pattern[index]))
            index += 1
        else:
            out.append(re.escape(char))
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    include: bool  # a "!pattern" line


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[_Rule, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = line[1:].strip() if include else line
            pattern = posixpath.normpath(pattern).lstrip("/")
            if pattern in ("", "."):
                continue
            rules.append(_Rule(match_regex(pattern), include))
        return cls(tuple(rules))

    @classmethod
    def read(cls, context: Path) -> DockerIgnore:
        """The rules of ``context/.dockerignore``, none if there is no such file."""
        path = context / ".dockerignore"
        return cls.parse(path.read_text(errors="replace")) if path.is_file() else cls()

    def ignored(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is excluded."""
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for rule in self.rules:
            if rule.include != excluded:
                continue  # cannot change the outcome
            if any(rule.regex.match(prefix) for prefix in prefixes):
                excluded = not rule.include
        return excluded
