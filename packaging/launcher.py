"""Entry point of the frozen app: the same as the `annotator` console script."""

import sys

from annotator.cli import main

if __name__ == "__main__":
    sys.exit(main())
