"""The two consoles every command prints through: results on stdout, progress on stderr.

stdout carries a command's result and nothing else (`featurebank list --json | python -m
json.tool` works); progress, notes and warnings go to stderr. A console writes to whatever
`sys.stdout`/`sys.stderr` is when it prints (the CLI's redacting streams, a test's capture).

On a terminal rich lays output out for the window as usual. Anywhere else (a pipe, CI, Glue
and EMR logs, `| tee`) nothing is wrapped, folded or cut: the console is as wide as its
longest line (`UNLIMITED`), so a table row or a path is written whole, on one line, without
colour codes, and the reader (grep, a log viewer) sees exactly the text.

This is the one place that makes a `rich.console.Console`: grep `console.` before adding one.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

UNLIMITED = 1_000_000  # columns of a console that is not a terminal: no line is ever that long


def is_terminal(stream: IO[str] | Any) -> bool:
    """True when `stream` is an interactive terminal (a pipe, a file or a capture is not)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def result_console() -> Console:
    """The console for a command's result, on stdout; never wraps or cuts off a terminal."""
    return _console(stderr=False)


def progress_console() -> Console:
    """The console for progress, notes and warnings, on stderr; never wraps or cuts off a terminal."""
    return _console(stderr=True)


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    terminal = is_terminal(sys.stderr if stderr else sys.stdout)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=None if terminal else UNLIMITED)
