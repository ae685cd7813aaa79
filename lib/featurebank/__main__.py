import sys

from featurebank.cli import main

sys.exit(main())
