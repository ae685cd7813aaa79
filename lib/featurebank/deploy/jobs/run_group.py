"""spark-submit entry: run one feature group (what `featurebank run GROUP ...` does).

    spark-submit [--py-files featurebank-<version>+<hash>-py3-none-any.whl] run_group.py \
        --group G (--date D | --start S --end E) [--project DIR|BUNDLE.zip|s3://.../BUNDLE.zip] [--env NAME]

No logic here: the arguments go to `featurebank.cli.main` (see featurebank.deploy.entry).
"""

import sys

from featurebank.deploy.entry import run_group

if __name__ == "__main__":
    sys.exit(run_group(sys.argv[1:]))
