import sys

from lobes.serving.segment_rttm import main

if __name__ == "__main__":
    sys.exit(main())
