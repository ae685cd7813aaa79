"""AWS Glue script: run one feature group (what `featurebank run GROUP ...` does).

Job parameters: --group G --env E --project_bundle s3://.../featurebank-project-<hash>.zip,
optionally --date D or --start S --end E (default: today in the project time zone).
Read with Glue's getResolvedOptions; where awsglue is absent (tests, local runs) the same
names are read with argparse. No logic here: see featurebank.deploy.entry.
"""

import argparse
import sys

from featurebank.deploy.entry import glue_run_group

REQUIRED = ["group", "env", "project_bundle"]
OPTIONAL = ["date", "start", "end"]


def resolve_options(argv: list[str]) -> dict[str, str | None]:
    present = [name for name in OPTIONAL if f"--{name}" in argv]
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        parser = argparse.ArgumentParser(prog="glue_run_group.py")
        for name in REQUIRED:
            parser.add_argument(f"--{name}", required=True)
        for name in OPTIONAL:
            parser.add_argument(f"--{name}")
        return vars(parser.parse_known_args(argv[1:])[0])
    return dict(getResolvedOptions(argv, REQUIRED + present))


if __name__ == "__main__":
    code = glue_run_group(resolve_options(sys.argv))
    if code:
        sys.exit(code)
