"""Compatibility alias: this module lives in :mod:`vaemi.tooling.params`."""
from .tooling.params import *  # noqa: F401,F403
from .tooling.params import __all__  # noqa: F401
