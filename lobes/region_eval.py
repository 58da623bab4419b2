"""`python -m lobes.region_eval`: see :mod:`lobes.evaluation.region_metrics`."""

import sys

from lobes.evaluation.region_metrics import main

if __name__ == "__main__":
    sys.exit(main())
