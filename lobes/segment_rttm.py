"""`python -m lobes.segment_rttm`: see :mod:`lobes.inference.segment_rttm`."""

import sys

from lobes.inference.segment_rttm import main

if __name__ == "__main__":
    sys.exit(main())
