"""How `featurebank run` reads on the console: progress on stderr, the result on stdout.

`RunConsole` is the runner's progress callback (`runner.ProgressEvent`) and a context manager:
- on stderr, a rich progress bar while work goes on when stderr is a terminal; otherwise (CI,
  Glue/EMR logs, `| tee`) one plain line per phase: computing, gating N checks, gate passed,
  publishing N rows, published version V (or the failure);
- on stdout, when the block ends (after a failure too, so the chunks that were published are
  said), one result line per finished run, each warn failure named under it.
Durations are the run log's (`RunOutcome.seconds`), the number `featurebank history` shows.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from featurebank.console import is_terminal, progress_console, result_console

if TYPE_CHECKING:
    from featurebank.runner import ProgressEvent

STEPS = ("gating", "gated", "done")  # the stages that complete a third of one run's work on the bar


def head(event: ProgressEvent, dates: bool = True) -> str:
    """`group [k/n] start..end`: which run an event is about (the chunk only when there are several)."""
    chunk = f" [{event.chunk}/{event.chunks}]" if event.chunks > 1 else ""
    return f"{event.group}{chunk} {event.start}..{event.end}" if dates else f"{event.group}{chunk}"


def phase_line(event: ProgressEvent, dates: bool = True) -> str:
    """One plain line for one phase of a run (stderr when it is not a terminal; the bar's
    label, without the dates, when it is)."""
    where = head(event, dates)
    if event.stage == "computing":
        return f"{where}: computing (reading the source)"
    if event.stage == "gating":
        return f"{where}: computed; gating {event.checks} checks"
    if event.stage == "gated":
        return f"{where}: gate passed, {event.message}"
    if event.stage == "publishing":
        return f"{where}: publishing {event.rows} rows"
    if event.stage == "done":
        if event.version is None:
            return f"{where}: dry run, nothing written ({event.rows} rows, {event.seconds:.1f}s)"
        return f"{where}: published version {event.version} ({event.rows} rows, {event.seconds:.1f}s)"
    return f"{where}: {event.status} after {event.seconds:.1f}s, run {event.run_id}"  # the error line says why


def result_lines(event: ProgressEvent) -> list[str]:
    """The result of one finished run (a `done` event): one line, then each warn failure named."""
    where = f", version {event.version}" if event.version is not None else " (dry run: nothing written)"
    line = (f"{head(event)}: {event.status} {event.rows} rows{where}, {event.message}, "
            f"{event.seconds:.1f}s, run {event.run_id}")
    return [line, *(f"  {detail}" for detail in event.details)]


class RunConsole:
    """The progress callback of one `featurebank run`; prints the results when the block ends."""

    def __init__(self, results: bool = True) -> None:
        self.results = results  # False: the caller prints the result (`run --json`)
        self.finished: list[ProgressEvent] = []
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RunConsole:
        if is_terminal(sys.stderr):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            # stdout stays the result's: the bar neither captures nor redirects it
            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=progress_console(), transient=True,
                                 redirect_stdout=False, redirect_stderr=False)
            self._bar.start()
        return self

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "done":
            self.finished.append(event)
        if self._bar is None:
            progress_console().print(phase_line(event), markup=False)
            return
        task = self._tasks.get(event.group)
        if task is None:
            task = self._tasks[event.group] = self._bar.add_task(event.group, total=len(STEPS) * event.chunks)
        self._bar.update(task, description=phase_line(event, dates=False), advance=1 if event.stage in STEPS else 0)
        if event.stage == "failed":
            self._bar.console.print(phase_line(event), markup=False, style="red")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
        if not self.results:
            return
        console = result_console()
        for event in self.finished:
            first, *warned = result_lines(event)
            console.print(first, markup=False, style="green")
            for line in warned:
                console.print(line, markup=False, style="yellow")
