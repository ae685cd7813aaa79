"""A test seam: kill the process at a named point of a run, to prove a kill anywhere is safe.

`fault_point(name)` does nothing unless `$FEATUREBANK_FAULT` names that point, in which case
the process dies at once with SIGKILL (no cleanup, no `finally`, no run-log row), exactly as a
lost container or an OOM kill would. tests/test_run_faults.py runs the CLI with it set.
Points: `before_compute`, `gate`, `publish` (before the Delta commit), `after_commit`,
`runlog` (before the final run-log row).
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "FEATUREBANK_FAULT"


def fault_point(name: str) -> None:
    """Die with SIGKILL here when `$FEATUREBANK_FAULT` equals `name`; otherwise do nothing."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
