"""The theory of grokescape's networks under weight decay and Langevin noise.

- :mod:`grokescape.theory.modes`: the exact per-mode theory (physics.md section 4): the
  energy of one mode, its stationary points, barriers, critical betas, the data-set
  observables of aligned states, and the Kramers-Langer escape time of the width-1 chain
  (section 5).
- :mod:`grokescape.theory.wide`: escape from the rank-r trap of networks wider than one
  (section 8): the hidden-unit symmetry and its zero modes, the exact reduction of the
  escaping mode's subsystem to a free energy, the entropic barrier collapse, and escape
  times by several methods (:func:`wide_escape_time`).

Every public name of both is available here, as ``grokescape.theory.<name>``.
"""

from grokescape.theory.modes import *  # noqa: F403
from grokescape.theory.modes import __all__ as _modes_all
from grokescape.theory.wide import *  # noqa: F403
from grokescape.theory.wide import __all__ as _wide_all

__all__ = [*_modes_all, *_wide_all]
