import sys

from lobes.experiments.timeline_plot import main

if __name__ == "__main__":
    sys.exit(main())
