"""The screens, in the order ``screen_table`` runs them.

Each entry is a :class:`~screening.screens.base.Screen` defined by its own module; a new
screen is one new module and one line here. The helpers below are the only lists of
screen names: everything else derives from :data:`SCREENS` through them.
"""

from .activation_cluster import SCREEN as ACTIVATION_CLUSTER
from .backdoor import SCREEN as BACKDOOR
from .base import ProbeOutputs, Screen, ScreenOutput
from .influence import SCREEN as INFLUENCE
from .label_noise import SCREEN as LABEL_NOISE
from .spectral import SCREEN as SPECTRAL

#: Registry: run in this order. A screen that reads ``poison_rate`` (the verdict's
#: estimate) runs after the verdict; the label and backdoor screens come first because,
#: without a trusted reference, the verdict reads their flags.
SCREENS: tuple[Screen, ...] = (LABEL_NOISE, BACKDOOR, SPECTRAL, INFLUENCE, ACTIVATION_CLUSTER)



def by_name() -> dict[str, Screen]:
    return {s.name: s for s in SCREENS}


def report_order() -> tuple[str, ...]:
    """Every screen's name in the report's order."""
    return tuple(s.name for s in sorted(SCREENS, key=lambda s: s.report_order))


def canary_screens() -> tuple[str, ...]:
    """The screens whose score the canary self-test measures, in the report's order."""
    return tuple(s.name for s in sorted(SCREENS, key=lambda s: s.report_order) if s.canary)


def contract_columns() -> tuple[str, ...]:
    """The screens whose score columns lead ``scores.parquet`` (after ``row_id``), in order."""
    placed = [(s.contract_column, s.name) for s in SCREENS if s.contract_column is not None]
    return tuple(name for _, name in sorted(placed))


def evidence_of(kind: str) -> frozenset[str]:
    """The screens the compliance mapping may cite as evidence of ``kind``."""
    return frozenset(s.name for s in SCREENS if kind in s.evidence)


def verdict_inputs() -> dict[str, str]:
    """{name: what its flags mean} for the screens the verdict reads without a reference."""
    return {s.name: s.finds for s in SCREENS if s.verdict_reads}


__all__ = ["SCREENS", "ProbeOutputs", "Screen", "ScreenOutput", "by_name", "canary_screens", "contract_columns",
           "evidence_of", "report_order", "verdict_inputs"]
