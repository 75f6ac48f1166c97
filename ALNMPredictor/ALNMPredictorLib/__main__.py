"""`python -m ALNMPredictorLib` runs the `alnm` command line."""

import sys

from ALNMPredictorLib.cli import main

sys.exit(main())
