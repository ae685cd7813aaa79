"""spark-submit entry: build a training set (what `featurebank training-set ...` does).

    spark-submit [--py-files featurebank-<...>.whl] training_set.py NAME --spine PATH --out PATH \
        [--project DIR|BUNDLE.zip|s3://.../BUNDLE.zip] [--env NAME] [...the CLI's other options]

No logic here: the arguments go to `featurebank.cli.main` (see featurebank.deploy.entry).
"""

import sys

from featurebank.deploy.entry import training_set

if __name__ == "__main__":
    sys.exit(training_set(sys.argv[1:]))
