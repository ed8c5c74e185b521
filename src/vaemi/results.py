"""Compatibility alias: this module lives in :mod:`vaemi.tooling.results`."""
from .tooling.results import *  # noqa: F401,F403
from .tooling.results import __all__  # noqa: F401
