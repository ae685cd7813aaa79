"""YAML with line numbers: read `features/**/*.yaml` and `conf/<env>.yaml` into located values.

Every mapping becomes a `YMap` (a dict that remembers the line of each key) and every list a
`YList` (a list that remembers the line of each item), so later stages can say `file:line`.
`${name}` (a conf variable) and `${env:NAME}` (an environment variable) are resolved in string
values as they are read; anything that cannot be read or resolved becomes a `Problem`, and
reading goes on so that every problem is reported at once. In definitions, `${env:NAME}` is
resolved only in a source's `path:` or `table:` (SPEC: environment values never reach an
expression, a description or any other value that is printed, rendered or published).

Reading is bounded: nesting deeper than `MAX_DEPTH`, aliases (`*name`) that expand a file
to more than `MAX_VALUES` values, or an alias inside the very thing it names, is a problem at
the line where it happens, never a `RecursionError` or an allocation without end.

YAML merge keys are supported: `<<: *name` (or `<<: [*a, *b]`) copies the keys of the
anchored mapping(s) into this one, and keys written in the mapping itself win (then earlier
merged mappings over later ones), as YAML 1.1 defines them. Why support rather than refuse:
a shared block (`- &sum {function: sum, windows: [7d, 30d]}` then `- {<<: *sum, name: ...}`)
is how YAML users avoid copy-paste, every YAML tool reads it the same way, and it costs
nothing new here (merged values are counted against `MAX_VALUES` like any alias and keep the
lines they were written on, so a problem in one still points at its text).
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
MAX_DEPTH = 100  # nested mappings and lists in one document
MAX_VALUES = 100_000  # values one file may expand to, aliases included
LOCATION_KEYS = ("path", "table")  # the only definition keys where ${env:NAME} is resolved
MERGE_TAG = "tag:yaml.org,2002:merge"  # the `<<` key of a YAML merge


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

    def __init__(self, variables: Mapping[str, str], environ: Mapping[str, str], conf_file: str,
                 env_keys: tuple[str, ...] | None = None) -> None:
        self.variables = dict(variables)
        self.environ = environ
        self.conf_file = conf_file
        self.env_keys = env_keys  # top-level keys where ${env:...} may appear; None = anywhere (conf)

    def for_definitions(self) -> Resolver:
        """The same variables, with `${env:NAME}` resolved only in a source's path or table."""
        return Resolver(self.variables, self.environ, self.conf_file, LOCATION_KEYS)

    def resolve(self, text: str, file: str, line: int, problems: list[Problem], key: str | None = None,
                top_level: bool = True) -> str:
        """`text` with every `${...}` replaced; an unknown or unset one is a problem.

        `key` is the key the text is (in) the value of, `top_level` whether that key is a
        document's own; with `env_keys` set, `${env:...}` anywhere but under a top-level key
        of `env_keys` is a problem and is left unreplaced (so no secret reaches the value).
        """

        secret = False
        refused = ("but environment values may appear only in conf and in a source's path: or table: (anywhere "
                   "else they can be published, printed or stored); remove it from the definition")
        located = self.env_keys is None or (top_level and key in self.env_keys)
        where = f"{key}:" if key else "a list"

        def substitute(match: re.Match[str]) -> str:
            nonlocal secret
            name = match.group(1).strip()
            if name.startswith("env:"):
                env_name = name[4:].strip()
                if not located:
                    problems.append(Problem(file, line, f"${{env:{env_name}}} is used in {where}, {refused}"))
                    return match.group(0)
                if env_name in self.environ:
                    secret = True
                    return self.environ[env_name]
                problems.append(
                    Problem(file, line, f"environment variable {env_name} is not set; export it, or stop using ${{env:{env_name}}}")
                )
                return match.group(0)
            if name in self.variables:
                value = self.variables[name]
                if isinstance(value, EnvText) and not located:
                    problems.append(Problem(file, line, f"${{{name}}} is used in {where}, and its value comes from "
                                                        f"${{env:...}} in {self.conf_file}, {refused}"))
                    return match.group(0)
                secret = secret or isinstance(value, EnvText)
                return value
            hint = did_you_mean(name, self.variables)
            problems.append(
                Problem(file, line, f"unknown variable ${{{name}}}{hint} (define it under `variables:` in {self.conf_file})")
            )
            return match.group(0)

        resolved = VARIABLE.sub(substitute, text)
        return EnvText(resolved) if secret else resolved


class EnvText(str):
    """Text that holds an environment value (`${env:NAME}`, directly or through a conf variable)."""


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class _TooLarge(Exception):
    """Reading stopped: the document expands past `MAX_VALUES` (the line where it did)."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _to_value(node: yaml.Node, file: str, problems: list[Problem], resolver: Resolver | None,
              budget: list[int], key: str | None = None, depth: int = 0, inside: frozenset[int] = frozenset()) -> Any:
    line = node.start_mark.line + 1
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(line)
    top_level = depth == 1  # a value of a document's own key (a source's path: or table:)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in inside:  # `&a {b: *a}`: the alias names a mapping or list it is part of
            problems.append(Problem(file, line, "an alias (*name) here repeats a mapping or list it is itself inside, "
                                                "which never ends; write the values out instead of the alias"))
            return None
        inside = inside | {id(node)}
    if isinstance(node, yaml.MappingNode):
        result = YMap(line)
        merged: list[YMap] = []
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == MERGE_TAG:
                merged += _merged(value_node, key_line, file, problems, resolver, budget, key, depth, inside)
                continue
            key = _to_value(key_node, file, problems, None, budget)
            if not isinstance(key, str):
                problems.append(Problem(file, key_line, f"key {key!r} is not a name; write keys as lower_snake_case words"))
                key = str(key)
            if key in result:
                problems.append(
                    Problem(file, key_line, f"key '{key}' appears twice in this mapping (first on line {result.key_lines[key]}); keep one")
                )
                continue
            result[key] = _to_value(value_node, file, problems, resolver, budget, key, depth + 1, inside)
            result.key_lines[key] = key_line
        for mapping in merged:  # keys written here win, then earlier merged mappings (YAML 1.1)
            for name, value in mapping.items():
                if name not in result:
                    result[name] = value
                    result.key_lines[name] = mapping.key_lines[name]
        return result
    if isinstance(node, yaml.SequenceNode):
        items = YList(line)
        for item in node.value:
            items.append(_to_value(item, file, problems, resolver, budget, key, depth + 1, inside))
            items.item_lines.append(item.start_mark.line + 1)
        return items
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    if isinstance(value, str) and resolver is not None and "${" in value:
        value = resolver.resolve(value, file, line, problems, key, top_level)
    return value


def _merged(node: yaml.Node, line: int, file: str, problems: list[Problem], resolver: Resolver | None,
            budget: list[int], key: str | None, depth: int, inside: frozenset[int]) -> list[YMap]:
    """The mappings a merge key `<<:` names (one, or a list of them), read like the mapping it is in."""
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    mappings = []
    for source in sources:
        if not isinstance(source, yaml.MappingNode):
            problems.append(Problem(file, line, "'<<:' merges the keys of a mapping into this one, but it is given "
                                                f"{'a list' if isinstance(source, yaml.SequenceNode) else repr(source.value)}; "
                                                "write <<: *name, where &name marks a mapping ({...} or key: lines)"))
            continue
        value = _to_value(source, file, problems, resolver, budget, key, depth, inside)
        if isinstance(value, YMap):
            mappings.append(value)
    return mappings


def _too_deep(text: str) -> int | None:
    """The line where nesting first passes `MAX_DEPTH`, or None (read from events: no recursion)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1 if event.start_mark is not None else 0
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None  # composing reports the syntax error with its line
    return None


def read_yaml(path: Path, rel: str, problems: list[Problem], resolver: Resolver | None) -> list[Document]:
    """Every non-empty document of one YAML file; a syntax error becomes a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(rel, 0, f"cannot read the file ({error}); make it a readable UTF-8 text file"))
        return []
    documents: list[Document] = []
    deep = _too_deep(text)
    if deep is not None:
        problems.append(Problem(rel, deep, f"the YAML nests more than {MAX_DEPTH} levels deep here; "
                                           "definitions need a few levels, so flatten it"))
        return documents
    budget = [MAX_VALUES]
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is None:
                continue
            documents.append(Document(rel, node.start_mark.line + 1, _to_value(node, rel, problems, resolver, budget)))
    except _TooLarge as error:
        problems.append(Problem(rel, error.line, f"the YAML expands to more than {MAX_VALUES:,} values (its aliases "
                                                 "*name repeat whole parts of it); write the values out, or use fewer aliases"))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = error.problem or "invalid YAML"
        if error.context and error.context_mark is not None and error.problem_mark is not None \
                and error.context_mark.line != error.problem_mark.line:
            what += f" ({error.context} on line {error.context_mark.line + 1})"
        problems.append(Problem(rel, line, f"YAML syntax error: {what}; fix the indentation, brackets or quoting"))
    return documents


def freeze(value: Any) -> Any:
    """Mappings → tuples of pairs, lists → tuples, recursively (hashable, comparable)."""
    if isinstance(value, Mapping):
        return tuple((str(k), freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def resolve_path(text: str, root: Path) -> str:
    """A URI (`s3://...`) or absolute path as is; a relative path against the project root."""
    if "://" in text or os.path.isabs(text):
        return text
    return os.path.normpath(str(root / text))


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
        documents.extend(read_yaml(path, relative(path, root), problems, resolver.for_definitions()))
    return documents
