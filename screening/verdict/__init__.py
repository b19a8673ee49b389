"""The per-row verdict: conformal p-values (``conformal.py``), the class-excess test and
its power (``excess.py``), the trigger expansion (``expansion.py``) and the rules that
combine them into a :class:`Verdict` (``rules.py``). docs/verdict.md derives them."""

from .conformal import (
                        calibrated_level,
                        clean_rate_upper_bound,
                        conformal_lower_pvalues,
                        cross_conformal_pvalues,
                        judged_reference_rows,
                        reference_fold_pvalues,
)
from .excess import class_excess, detectable_attack, excess_tests
from .expansion import trigger_expansion
from .rules import Statistic, Verdict, decide, with_attack_screens

__all__ = ["Statistic", "Verdict", "calibrated_level", "class_excess", "clean_rate_upper_bound",
           "conformal_lower_pvalues", "cross_conformal_pvalues", "decide", "detectable_attack", "excess_tests",
           "judged_reference_rows", "reference_fold_pvalues", "trigger_expansion", "with_attack_screens"]
