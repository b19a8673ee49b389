"""The screens, in the order ``screen_table`` runs them.

Each entry is a :class:`~screening.screens.base.Screen` defined by its own module; a new
screen is one new module and one line here.
"""

from .activation_clustering import SCREEN as ACTIVATION_CLUSTER
from .backdoor import SCREEN as BACKDOOR
from .base import ProbeOutputs, Screen, ScreenOutput
from .influence import SCREEN as INFLUENCE
from .label_noise import SCREEN as LABEL_NOISE
from .spectral import SCREEN as SPECTRAL

#: Registry: run in this order. A screen that reads ``poison_rate`` (the verdict's
#: estimate) runs after the verdict; the label and backdoor screens come first because,
#: without a trusted reference, the verdict reads their flags.
SCREENS: tuple[Screen, ...] = (LABEL_NOISE, BACKDOOR, SPECTRAL, INFLUENCE, ACTIVATION_CLUSTER)

__all__ = ["SCREENS", "ProbeOutputs", "Screen", "ScreenOutput"]
