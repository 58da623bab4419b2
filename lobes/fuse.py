"""`python -m lobes.fuse`: see :mod:`lobes.evaluation.score_fusion`."""

import sys

from lobes.evaluation.score_fusion import main

if __name__ == "__main__":
    sys.exit(main())
