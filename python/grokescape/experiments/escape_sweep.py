"""The measurement the escape experiments share: for each point of a sweep (a learning
rate, a temperature, a depth, a residual...), run an ensemble that starts in a trap until
its members escape, and reduce the trajectories to one row of escape statistics."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from grokescape import stats
from grokescape.data import Dataset
from grokescape.ensemble import Ensemble
from grokescape.escape import ModeThreshold, TestMSEThreshold

__all__ = ["RATE_COLUMNS", "EscapePoint", "EscapeSweep", "escape_sweep", "points_runner"]

#: Columns of a rate row after the point's labels and row columns.
RATE_COLUMNS = (
    "n",
    "escaped",
    "escaped_fraction",
    "median_escape_epoch",
    "escape_epoch_q10",
    "escape_epoch_q90",
    "tau",
    "tau_lower",
    "tau_upper",
    "max_steps",
)


@dataclass
class EscapePoint:
    """One point of an escape sweep: the trapped start, the run's settings and its labels.

    Attributes
    ----------
    labels : dict
        Columns that name the point (e.g. ``{"depth": 4}``): set on each of its
        trajectories and put first in its rate row.
    ensemble : Ensemble
        The start, in its trap; the run leaves it in its final state.
    data, criterion, max_steps, lr, beta, batch_size, temperature, seed, refill
        The arguments of :meth:`~grokescape.ensemble.Ensemble.run_until_escape`.
    row : dict
        Further columns of the rate row only (after the labels), e.g. the theory's
        barrier at the point.
    """

    labels: dict[str, Any]
    ensemble: Ensemble
    data: Dataset
    criterion: ModeThreshold | TestMSEThreshold
    max_steps: int
    lr: float
    beta: float
    batch_size: int | None = None
    temperature: float = 0.0
    seed: int = 0
    refill: bool = False
    row: dict[str, Any] = field(default_factory=dict)


@dataclass
class EscapeSweep:
    """The result of :func:`escape_sweep`."""

    #: One row per point: its labels, its row columns, then :data:`RATE_COLUMNS`.
    rates: pd.DataFrame
    #: One row per trajectory (:class:`~grokescape.escape.EscapeResult` tables with the
    #: point's labels), the points one after the other.
    trajectories: pd.DataFrame


#: Runs a list of points and returns one escape table per point, in order (see
#: :func:`points_runner`); None: escape_sweep runs them itself, one after the other.
RunPoints = Callable[[Sequence[EscapePoint]], list[pd.DataFrame]]
_RUNNER: ContextVar[RunPoints | None] = ContextVar("escape_sweep_runner", default=None)


@contextlib.contextmanager
def points_runner(run_points: RunPoints) -> Iterator[None]:
    """Within the block, :func:`escape_sweep` hands all its points to `run_points` at once
    instead of running them here: ``grokescape reproduce`` passes
    :class:`grokescape.sweep.points.PointsRunner`, which runs them as tasks on an executor
    with durable, resumable results. `run_points` must return, for each point, the table
    that ``point.ensemble.run_until_escape(...)`` would return."""
    token = _RUNNER.set(run_points)
    try:
        yield
    finally:
        _RUNNER.reset(token)


def escape_sweep(
    points: Iterable[EscapePoint],
    *,
    time: str = "time_epochs",
    n_threads: int | None = None,
    progress: bool = False,
) -> EscapeSweep:
    """Run each point's ensemble until escape and summarise each point in one row.

    Parameters
    ----------
    points : iterable of EscapePoint
        Consumed one at a time, so a generator builds each start only when it runs.
    time : str
        Trajectory time column of the escape rate: "time_epochs", "time_continuous"
        (lr x steps) or "time" (steps).
    n_threads : int or None
    progress : bool
        As in :meth:`~grokescape.ensemble.Ensemble.run_until_escape`.

    Returns
    -------
    EscapeSweep
        Rate rows: n trajectories, escaped (count and fraction), the median and the 10th
        and 90th percentiles of the escaped trajectories' escape epochs (NaN without
        escapes), tau: the censoring-aware mean escape time (time at risk / escapes,
        :func:`grokescape.stats.escape_rate`) in units of `time` with its exact Poisson 95%
        interval, and the step budget max_steps.
    """
    run_points = _RUNNER.get()
    if run_points is not None:
        listed = list(points)
        rows, frames = [], []
        for p, table in zip(listed, run_points(listed), strict=True):
            t = table.assign(**p.labels)
            frames.append(t)
            rows.append({**p.labels, **p.row, **_rate_row(t, time, p.max_steps)})
        return EscapeSweep(pd.DataFrame(rows), pd.concat(frames, ignore_index=True))
    rows, frames = [], []
    for p in points:
        out = p.ensemble.run_until_escape(
            p.data,
            p.criterion,
            p.max_steps,
            p.lr,
            p.beta,
            batch_size=p.batch_size,
            temperature=p.temperature,
            seed=p.seed,
            refill=p.refill,
            n_threads=n_threads,
            progress=progress,
        )
        t = out.table.assign(**p.labels)
        frames.append(t)
        rows.append({**p.labels, **p.row, **_rate_row(t, time, p.max_steps)})
    return EscapeSweep(pd.DataFrame(rows), pd.concat(frames, ignore_index=True))


def _rate_row(t: pd.DataFrame, time: str, max_steps: int) -> dict[str, Any]:
    rate = stats.escape_rate(t, time=time)
    esc = t[t.escaped].escape_epoch
    return {
        "n": len(t),
        "escaped": int(t.escaped.sum()),
        "escaped_fraction": float(t.escaped.mean()),
        "median_escape_epoch": float(esc.median()) if len(esc) else np.nan,
        "escape_epoch_q10": float(esc.quantile(0.1)) if len(esc) else np.nan,
        "escape_epoch_q90": float(esc.quantile(0.9)) if len(esc) else np.nan,
        "tau": rate.tau,
        "tau_lower": rate.tau_lower,
        "tau_upper": rate.tau_upper,
        "max_steps": int(max_steps),
    }
