"""YAML with line numbers: read `features/**/*.yaml` and `conf/<env>.yaml` into located values.

Every mapping becomes a `YMap` (a dict that remembers the line of each key) and every list a
`YList` (a list that remembers the line of each item), so later stages can say `file:line`.
`${name}` (a conf variable) and `${env:NAME}` (an environment variable) are resolved in string
values as they are read; anything that cannot be read or resolved becomes a `Problem`, and
reading goes on so that every problem is reported at once.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from featurebank.errors import Problem

VARIABLE = re.compile(r"\$\{([^}]*)\}")


class YMap(dict[str, Any]):
    """A YAML mapping that remembers where it and each of its keys were written."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """Line of `key` if present, else the line of the mapping itself."""
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    """A YAML sequence that remembers where it and each of its items were written."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


@dataclass(frozen=True)
class Document:
    """One YAML document of a definitions file: its relative path, first line and content."""

    file: str
    line: int
    data: Any


def did_you_mean(word: str, candidates: Any) -> str:
    """`; did you mean 'x'?` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def guess_or(word: str, candidates: Any, fix: str) -> str:
    """`; did you mean 'x'?` when a candidate is close (that is the fix), else `; <fix>`."""
    return did_you_mean(word, candidates) or f"; {fix}"


class Resolver:
    """Resolves `${name}` from conf variables and `${env:NAME}` from the environment."""

    def __init__(self, variables: Mapping[str, str], environ: Mapping[str, str], conf_file: str) -> None:
        self.variables = dict(variables)
        self.environ = environ
        self.conf_file = conf_file

    def resolve(self, text: str, file: str, line: int, problems: list[Problem]) -> str:
        """`text` with every `${...}` replaced; an unknown or unset one is a problem."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("env:"):
                env_name = name[4:].strip()
                if env_name in self.environ:
                    return self.environ[env_name]
                problems.append(
                    Problem(file, line, f"environment variable {env_name} is not set; export it, or stop using ${{env:{env_name}}}")
                )
                return match.group(0)
            if name in self.variables:
                return self.variables[name]
            hint = did_you_mean(name, self.variables)
            problems.append(
                Problem(file, line, f"unknown variable ${{{name}}}{hint} (define it under `variables:` in {self.conf_file})")
            )
            return match.group(0)

        return VARIABLE.sub(substitute, text)


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _to_value(node: yaml.Node, file: str, problems: list[Problem], resolver: Resolver | None) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = YMap(line)
        for key_node, value_node in node.value:
            key = _to_value(key_node, file, problems, None)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                problems.append(Problem(file, key_line, f"key {key!r} is not a name; write keys as lower_snake_case words"))
                key = str(key)
            if key in result:
                problems.append(
                    Problem(file, key_line, f"key '{key}' appears twice in this mapping (first on line {result.key_lines[key]}); keep one")
                )
                continue
            result[key] = _to_value(value_node, file, problems, resolver)
            result.key_lines[key] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        items = YList(line)
        for item in node.value:
            items.append(_to_value(item, file, problems, resolver))
            items.item_lines.append(item.start_mark.line + 1)
        return items
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    if isinstance(value, str) and resolver is not None and "${" in value:
        value = resolver.resolve(value, file, line, problems)
    return value


def read_yaml(path: Path, rel: str, problems: list[Problem], resolver: Resolver | None) -> list[Document]:
    """Every non-empty document of one YAML file; a syntax error becomes a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(rel, 0, f"cannot read the file ({error}); make it a readable UTF-8 text file"))
        return []
    documents: list[Document] = []
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is None:
                continue
            documents.append(Document(rel, node.start_mark.line + 1, _to_value(node, rel, problems, resolver)))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = error.problem or "invalid YAML"
        if error.context and error.context_mark is not None and error.problem_mark is not None \
                and error.context_mark.line != error.problem_mark.line:
            what += f" ({error.context} on line {error.context_mark.line + 1})"
        problems.append(Problem(rel, line, f"YAML syntax error: {what}; fix the indentation, brackets or quoting"))
    return documents


def definition_files(root: Path) -> list[Path]:
    """`features/**/*.yaml` (and `.yml`) under a project root, in a stable order."""
    features = root / "features"
    files = [*features.rglob("*.yaml"), *features.rglob("*.yml")]
    return sorted(f for f in files if f.is_file())


def relative(path: Path, root: Path) -> str:
    """`path` relative to the project root, with forward slashes (as messages show it)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_definitions(root: Path, resolver: Resolver, problems: list[Problem]) -> list[Document]:
    """Every document of every definitions file of the project, variables resolved."""
    documents: list[Document] = []
    for path in definition_files(root):
        documents.extend(read_yaml(path, relative(path, root), problems, resolver))
    return documents
