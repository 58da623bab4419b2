"""`python -m lobes.stats`: see :mod:`lobes.evaluation.score_stats`."""

import sys

from lobes.evaluation.score_stats import main

if __name__ == "__main__":
    sys.exit(main())
