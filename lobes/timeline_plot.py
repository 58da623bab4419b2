"""`python -m lobes.timeline_plot`: see :mod:`lobes.experiments.timeline_plot`."""

import sys

from lobes.experiments.timeline_plot import main

if __name__ == "__main__":
    sys.exit(main())
