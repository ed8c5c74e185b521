"""Compatibility alias: the build tool lives in :mod:`vaemi.tooling.book` (``python -m vaemi.book`` still works)."""
from .tooling.book import *  # noqa: F401,F403
from .tooling.book import main, notebooks  # noqa: F401

if __name__ == "__main__":
    main()
