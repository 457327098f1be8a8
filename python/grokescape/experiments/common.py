"""Shared pieces of the experiments: results and how an experiment composes them, report
rows, data, the checkpoint-trap start, formatting.

Every experiment module has three steps, composed by its ``run`` through
:func:`run_experiment`:

- ``compute(config, *, n_threads, progress) -> Computed``: the simulations and the theory;
  the tables written as data files and the values the figures and the report need;
- ``plot(computed, config) -> dict[str, Figure]``: the figures, by file name;
- ``report(computed, config) -> Report``: the rows of the report's table of the paper's
  claims and the experiment's markdown section.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from grokescape import traps
from grokescape.data import Dataset, teacher_data
from grokescape.ensemble import Ensemble

__all__ = [
    "Claim",
    "Computed",
    "ExperimentResult",
    "Report",
    "checkpoint_ensemble",
    "copy_ensemble",
    "fmt",
    "markdown_table",
    "paper_data",
    "run_experiment",
    "verdict_within",
    "widths_label",
]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_WELL_DEFINED = "not well defined"
CONFIRMED = "confirmed"
REFUTED = "refuted"


@dataclass
class Claim:
    """One row of the report's table: a number the paper states, ours beside it."""

    experiment: str
    quantity: str
    paper: str
    ours: str
    n: str
    verdict: str
    note: str = ""


@dataclass
class ExperimentResult:
    """What an experiment returns: data, figures, report rows and a markdown section."""

    name: str
    config: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    markdown: str = ""
    seconds: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)  # the compute step's values


@dataclass
class Computed:
    """What an experiment's compute step returns."""

    #: Tables written as data files, in the order they are listed.
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: Numbers, arrays and tables that the figures and the report need (kept in
    #: :attr:`ExperimentResult.values`, not written).
    values: dict[str, Any] = field(default_factory=dict)


class Compute(Protocol):
    """The signature of an experiment's compute step."""

    def __call__(
        self, config: dict[str, Any], *, n_threads: int | None = ..., progress: bool = ...
    ) -> Computed: ...


@dataclass
class Report:
    """What an experiment's report step returns: its rows of the claims table and its
    markdown section."""

    claims: list[Claim]
    markdown: str


def run_experiment(
    experiment: ModuleType,
    config: dict[str, Any],
    *,
    n_threads: int | None = None,
    progress: bool = False,
) -> ExperimentResult:
    """Compute, plot and report one experiment.

    Parameters
    ----------
    experiment : module
        An experiment module of :mod:`grokescape.experiments`: its ``NAME`` and its three
        steps ``compute``, ``plot`` and ``report`` (see the package's docstring).
    config : dict
        Its configuration (echoed in the result).
    n_threads : int or None
    progress : bool
        Passed to ``compute``.

    Returns
    -------
    ExperimentResult
        The computed tables and values, the figures, the claims and markdown, and the
        wall time of all three steps.
    """
    tic = time.perf_counter()
    computed = experiment.compute(config, n_threads=n_threads, progress=progress)
    figures = experiment.plot(computed, config)
    rep = experiment.report(computed, config)
    return ExperimentResult(
        experiment.NAME,
        config,
        tables=dict(computed.tables),
        figures=figures,
        claims=rep.claims,
        markdown=rep.markdown,
        seconds=time.perf_counter() - tic,
        values=dict(computed.values),
    )


def paper_data(config: dict[str, Any], *, exact_moments: bool = False) -> Dataset:
    """The paper's teacher data set from a config (eta, n_train, n_test, data_seed)."""
    return teacher_data(
        config["eta"],
        config["n_train"],
        config["n_test"],
        seed=config["data_seed"],
        exact_moments=exact_moments,
    )


def copy_ensemble(ens: Ensemble) -> Ensemble:
    """A new ensemble with the same widths, biases and parameters (step counters at 0)."""
    out = Ensemble(ens.widths, ens.n_members, bias=ens.bias)
    out.set_params(ens.params)
    return out


def checkpoint_ensemble(
    data: Dataset,
    config: dict[str, Any],
    trap_beta: float,
    *,
    bias: bool = False,
    n_threads: int | None = None,
    progress: bool = False,
) -> tuple[Ensemble, pd.DataFrame]:
    """Random networks brought into a trap by the paper's checkpoint protocol.

    Parameters
    ----------
    data : Dataset
    config : dict
        Reads members, widths, seed, lr, batch_size, prep_block_epochs and prep_max_epochs.
    trap_beta : float
        The protocol's second stage (0.361: the rank-1 trap, 0.43: the rank-0 trap).
    bias : bool
        Networks with biases, initialised as PyTorch does (uniform in +-1/sqrt(fan_in)).
    n_threads, progress
        As in :func:`grokescape.traps.checkpoint_trap`.

    Returns
    -------
    Ensemble
        The prepared members.
    DataFrame
        The protocol's per-member report (:func:`grokescape.traps.checkpoint_trap`).
    """
    m = int(config["members"])
    widths = config["widths"]
    ens = Ensemble(widths, m, bias=bias)
    ens.init_random(seed=config["seed"])
    if bias:
        rng = np.random.default_rng(config["seed"] + 17)
        w = [np.asarray(x) for x in ens.weights]
        b = [
            rng.uniform(-1, 1, size=(m, widths[l + 1])) / np.sqrt(widths[l]) for l in range(len(w))
        ]
        ens.set_weights(w, b)
    report = traps.checkpoint_trap(
        ens,
        data,
        trap_beta,
        lr=config["lr"],
        batch_size=config["batch_size"],
        block_epochs=config["prep_block_epochs"],
        max_epochs=config["prep_max_epochs"],
        seed=config["seed"] + 2,
        n_threads=n_threads,
        progress=progress,
    )
    return ens, report


def fmt(x: float, digits: int = 3) -> str:
    """A number with `digits` significant digits ('nan' for NaN)."""
    if x is None or not np.isfinite(x):
        return "nan" if x is None or np.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}"


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a GitHub markdown table, floats with `digits` significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return fmt(float(v), digits)
        return str(v)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def widths_label(widths: Sequence[int]) -> str:
    """Network widths as the report names them, e.g. '[2,10,10,2]'."""
    return "[" + ",".join(str(w) for w in widths) + "]"


def verdict_within(ours: float, paper: float, tolerance: float) -> str:
    """'reproduced' when |ours - paper| <= tolerance, else 'not reproduced'."""
    return REPRODUCED if abs(ours - paper) <= tolerance else NOT_REPRODUCED
