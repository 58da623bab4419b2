"""`python -m lobes.compare`: see :mod:`lobes.evaluation.compare`."""

import sys

from lobes.evaluation.compare import main

if __name__ == "__main__":
    sys.exit(main())
