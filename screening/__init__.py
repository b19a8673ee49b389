"""Dataward's screening engine: a probe model and poisoning / label-noise screens.

Public surface::

    from screening import screen_table, ScreenConfig, ScreenResult, ScreeningInputError

Inside: featurising (``inputs``, ``encoding``, ``featurizers``), the probe models
(``probe/``), the screens and their registry (``screens/``), the verdict
(``verdict/``) and ``screen_table`` (``table``), which joins them. Importing this package
is cheap: torch, cleanlab and pandas load on first use of ``screen_table``.
"""

import os as _os

# OpenMP's default active wait makes idle torch threads spin for a core; on a shared,
# contended CPU that turns seconds into minutes. Passive waiting costs nothing
# measurable here. Only effective when screening is imported before torch, and never
# overrides a value the operator set.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import ScreenConfig, VerdictConfig  # noqa: E402
from .errors import ScreeningInputError, ScreeningNotApplicable  # noqa: E402

__all__ = ["screen_table", "ScreenConfig", "VerdictConfig", "ScreenResult", "ScreeningInputError",
           "ScreeningNotApplicable"]


def __getattr__(name):
    if name in ("screen_table", "ScreenResult"):
        from . import table

        return getattr(table, name)
    raise AttributeError(f"module 'screening' has no attribute {name!r}")
