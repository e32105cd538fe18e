"""``python -m tinynet``: the same command line as ``tinynet``."""
import sys

from tinynet.cli import main

if __name__ == "__main__":
    sys.exit(main())
