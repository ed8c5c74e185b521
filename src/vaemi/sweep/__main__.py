"""``python -m vaemi.sweep``: see :mod:`vaemi.sweep.cli`."""
import sys

from vaemi.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
