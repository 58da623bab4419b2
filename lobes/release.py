"""`python -m lobes.release`: see :mod:`lobes.inference.release`."""

import sys

from lobes.inference.release import main

if __name__ == "__main__":
    sys.exit(main())
