"""The paper's experiments (physics.md section 6) and the ones that go past it.

Each experiment is a module with three steps, ``compute`` (simulations and theory: tables
and values), ``plot`` (figures from them) and ``report`` (the rows it contributes to the
report's table of the paper's claims, and a markdown section), composed into an
:class:`~grokescape.experiments.common.ExperimentResult` by
:func:`~grokescape.experiments.common.run_experiment` (module, config). The escape
experiments measure through :func:`~grokescape.experiments.escape_sweep.escape_sweep`.
:func:`grokescape.reproduce.reproduce` runs them and writes the outputs.
"""

from grokescape.experiments import (
    arrhenius,
    depth,
    landscape,
    nonlinear,
    phase_diagram,
    rare_escapes,
    sparse,
    trapping,
    wide_escapes,
)
from grokescape.experiments.common import Claim, ExperimentResult

#: Experiment name -> module, in the order of the report.
EXPERIMENTS = {
    "landscape": landscape,
    "phase-diagram": phase_diagram,
    "trapping": trapping,
    "arrhenius": arrhenius,
    "wide-escapes": wide_escapes,
    "rare-escapes": rare_escapes,
    "sparse-grokking": sparse,
    "depth": depth,
    "nonlinear": nonlinear,
}

__all__ = ["EXPERIMENTS", "Claim", "ExperimentResult"]
