"""What the entry scripts (`featurebank/deploy/jobs/*.py`) call: their arguments, translated into one CLI call.

`spark-submit run_group.py --group G --date D --project P` and the Glue script run
exactly what `featurebank run G --date D --project P` runs, through `featurebank.cli.main`,
so exit codes, messages and behaviour are the CLI's. `--project` (or Glue's
`--project_bundle`) may name a project directory, a bundle zip, or a bundle zip on S3; a
bundle is extracted first (`package.open_bundle`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from featurebank.deploy.package import open_bundle


def run_group_argv(argv: Sequence[str]) -> list[str]:
    """`--group G [--project DIR|ZIP|s3://ZIP] rest...` -> `["run", G, "--project", DIR, *rest]`."""
    parser = argparse.ArgumentParser(prog="run_group.py", add_help=False)
    parser.add_argument("--group")
    parser.add_argument("--project")
    known, rest = parser.parse_known_args(list(argv))
    args = ["run"]
    if known.group:
        args.append(known.group)
    if known.project:
        args += ["--project", str(open_bundle(known.project))]
    return args + rest


def training_set_argv(argv: Sequence[str]) -> list[str]:
    """The CLI's training-set arguments, with a bundle `--project` extracted first."""
    parser = argparse.ArgumentParser(prog="training_set.py", add_help=False)
    parser.add_argument("--project")
    known, rest = parser.parse_known_args(list(argv))
    args = ["training-set", *rest]
    if known.project:
        args += ["--project", str(open_bundle(known.project))]
    return args


def glue_argv(options: Mapping[str, str | None]) -> list[str]:
    """Glue job options (`group`, `env`, `project_bundle`, optional `date`/`start`/`end`)
    -> the `featurebank run` arguments."""
    argv = ["--group", str(options["group"]), "--env", str(options["env"]), "--project", str(options["project_bundle"])]
    for name in ("date", "start", "end"):
        if options.get(name):
            argv += [f"--{name}", str(options[name])]
    return run_group_argv(argv)


def run_group(argv: Sequence[str]) -> int:
    """Entry of `run_group.py`; returns the CLI's exit code."""
    return main(run_group_argv(argv))


def training_set(argv: Sequence[str]) -> int:
    """Entry of `training_set.py`; returns the CLI's exit code."""
    return main(training_set_argv(argv))


def glue_run_group(options: Mapping[str, str | None]) -> int:
    """Entry of `glue_run_group.py` once it has resolved the Glue job options."""
    return main(glue_argv(options))


def unzip_library() -> str | None:
    """If `featurebank` was imported from a zip (a wheel on `spark-submit --py-files`),
    extract it to a temporary directory, put that first on `sys.path` and forget the
    zipped modules, so code that reads package data as files works; return the directory.

    Returns None when the package is already on disk (pip-installed, Glue, a checkout).
    """
    import featurebank

    loader: Any = getattr(featurebank.__spec__, "loader", None)
    archive = getattr(loader, "archive", None)  # zipimport.zipimporter
    if not archive or not zipfile.is_zipfile(archive):
        return None
    target = tempfile.mkdtemp(prefix="featurebank-lib-")
    with zipfile.ZipFile(archive) as wheel:
        wheel.extractall(target)
    sys.path.insert(0, target)
    for name in [m for m in sys.modules if m == "featurebank" or m.startswith("featurebank.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    return target


def main(argv: Sequence[str]) -> int:
    """Run the featurebank CLI from a job: unzip a zipped library first (`unzip_library`)."""
    unzip_library()
    cli = importlib.import_module("featurebank.cli")
    return int(cli.main(list(argv)))
