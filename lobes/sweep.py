"""`python -m lobes.sweep`: see :mod:`lobes.experiments.sweep`."""

import sys

from lobes.experiments.sweep import main

if __name__ == "__main__":
    sys.exit(main())
