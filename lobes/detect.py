"""`python -m lobes.detect`: see :mod:`lobes.inference.cli`."""

import sys

from lobes.inference.cli import main

if __name__ == "__main__":
    sys.exit(main())
