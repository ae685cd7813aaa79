"""Secrets stay secret: every `${env:NAME}` value is masked wherever text leaves the process.

Conf and definitions may read the environment with `${env:NAME}`; the value is used as is
(a source path containing it still reads the real path), but it must never appear in what
featurebank prints, renders or stores (SPEC, "Expressions are data"). The resolver records
each value it reads from the environment here (`remember`), and every edge where text
leaves the process calls `redact`: the CLI's stdout/stderr and error printer, `plan`
rendering, the docs site, Delta column comments and table properties, and the run log.

The record is process-wide on purpose: an error printed by the CLI may come from anywhere
(a Spark message quoting a path), long after the project that read the value was loaded.
Masking a value of another project loaded earlier in the same process is harmless.

Values shorter than `MIN_SECRET` characters are not recorded: masking every `1` of a
`${env:DEBUG}` would make the output unreadable, and such a value protects nothing.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

MASK = "***"
MIN_SECRET = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_spellings: tuple[str, ...] = ()  # every spelling of every secret, longest first


def _spellings_of(value: str) -> set[str]:
    """The ways a value may be written out: as is, URL-quoted (Hadoop paths), JSON- and HTML-escaped."""
    forms = {value, quote(value), quote(value, safe=""), json.dumps(value)[1:-1], html.escape(value),
             html.escape(value, quote=False)}
    return {f for f in forms if len(f) >= MIN_SECRET}


def remember(values: Iterable[str]) -> None:
    """Record values read from the environment as secrets (short ones are ignored)."""
    global _spellings
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET} - _secrets
    if not fresh:
        return
    with _lock:
        _secrets.update(fresh)
        spellings: set[str] = set()
        for value in _secrets:
            spellings |= _spellings_of(value)
        _spellings = tuple(sorted(spellings, key=lambda s: (-len(s), s)))


def known_secrets() -> frozenset[str]:
    """Every value recorded so far (for tests and for callers that must check, not print)."""
    return frozenset(_secrets)


def redact(text: str) -> str:
    """`text` with every recorded secret (in any of its spellings) replaced by `***`."""
    if not _spellings or not text:
        return text
    for spelling in _spellings:
        if spelling in text:
            text = text.replace(spelling, MASK)
    return text


def redact_any(value: Any) -> Any:
    """`redact` applied to a string, or to every string inside lists, tuples and dicts."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_any(k): redact_any(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_any(v) for v in value)
    return value


class RedactingStream:
    """A text stream that masks secrets in everything written through it (sys.stdout/stderr)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
