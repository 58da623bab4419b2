"""`python -m lobes.paper`: see :mod:`lobes.experiments.paper`."""

import sys

from lobes.experiments.paper import main

if __name__ == "__main__":
    sys.exit(main())
