"""Dataward's screening engine: a probe model and poisoning / label-noise screens.

Public surface::

    from screening import screen_table, ScreenConfig, ScreenResult, ScreeningInputError

The array-level screens live in ``screening.spectral``, ``screening.label_noise``,
``screening.influence`` and ``screening.activation_clustering``. Importing this package
is cheap: torch, cleanlab and pandas load on first use of ``screen_table``.
"""

from .config import ScreenConfig
from .errors import ScreeningInputError

__all__ = ["screen_table", "ScreenConfig", "ScreenResult", "ScreeningInputError"]


def __getattr__(name):
    if name in ("screen_table", "ScreenResult"):
        from . import table

        return getattr(table, name)
    raise AttributeError(f"module 'screening' has no attribute {name!r}")
