"""`python -m lobes.aggregate`: see :mod:`lobes.experiments.aggregate`."""

import sys

from lobes.experiments.aggregate import main

if __name__ == "__main__":
    sys.exit(main())
