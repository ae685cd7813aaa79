"""A run killed (SIGKILL) at every phase: the table is the old or the new version, never a mix;
`history` tells the truth; training-set coverage matches the table; a rerun succeeds.

Each case runs the real CLI in a subprocess with `$FEATUREBANK_FAULT` naming the point it dies
at (`featurebank.faults.fault_point`), on a tiny copy of the example project.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from test_runner import D1, GROUP, _table, _transactions, _write_sources

from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.faults import FAULT_ENV
from featurebank.io.fingerprints import read_fingerprint
from featurebank.io.spark import get_spark
from featurebank.io.tables import table_version
from featurebank.io.runlog import published_dates, read_runs
from featurebank.runner import run_group

REPO = Path(__file__).resolve().parent.parent
D2 = D1 + timedelta(days=1)

# phase -> did the run's commit land before the kill?
PHASES = {"before_compute": False, "gate": False, "publish": False, "after_commit": True, "runlog": True}


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_run_killed_at_any_phase_leaves_table_log_and_coverage_consistent(spark, example_project, phase, capsys):
    _write_sources(example_project, _transactions())
    project = load_project(example_project, "local")
    get_spark(project.config)  # the session the CLI below builds: conf's retention, so no run adds a properties commit
    run_group(project, GROUP, D1, D2, spark=spark)
    old = _table(spark, project)
    _write_sources(example_project, _transactions(null_amounts_for="c2"))  # the next run publishes other values

    env = dict(os.environ, **{FAULT_ENV: phase, "FEATUREBANK_SPARK_MASTER": "local[1]",
                              "PYTHONPATH": str(REPO / "lib")})
    proc = subprocess.run([sys.executable, "-m", "featurebank", "run", GROUP, "--project", str(example_project),
                           "--start", str(D1), "--end", str(D2)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed at the fault point, not finished or failed

    committed = PHASES[phase]
    assert table_version(spark, project.table_path(GROUP)) == (1 if committed else 0)
    table_now = _table(spark, project)
    if not committed:
        pd.testing.assert_frame_equal(old, table_now)
    killed = read_runs(spark, project.config.feature_root, GROUP)[0]
    if committed:
        assert (killed.status, killed.delta_version, killed.repaired) == ("published", 1, True)
        assert killed.rows_written == len(table_now)
        # its source's fingerprint was stored before its commit: `run --restate` knows what it read
        assert read_fingerprint(project.config.feature_root, GROUP, killed.run_id) is not None
    else:
        assert (killed.status, killed.delta_version) == ("incomplete", None)
    assert published_dates(spark, project.config.feature_root, GROUP) == set(table_now.feature_date)
    assert main(["history", GROUP, "--project", str(example_project)]) == 0
    shown = capsys.readouterr().out
    assert ("published (repaired)" if committed else "incomplete") in shown and killed.run_id[:10] in shown

    [rerun] = run_group(project, GROUP, D1, D2, spark=spark)
    assert rerun.status == "published"
    after = _table(spark, project)
    if committed:  # the killed run's commit was the whole new version
        pd.testing.assert_frame_equal(table_now, after)
    else:
        assert not old.equals(after)
    statuses = [r.status for r in read_runs(spark, project.config.feature_root, GROUP)]
    assert statuses == ["published", "published" if committed else "incomplete", "published"]
