"""Piecewise-constant schedules of (lr, beta, temperature), run in one call into the core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from grokescape import _checks

__all__ = ["beta_sweep", "resolve_stages"]


def beta_sweep(
    betas: ArrayLike, steps_per_stage: int, lr: float, temperature: float = 0.0
) -> list[tuple[int, float, float, float]]:
    """Stages that retrain for `steps_per_stage` steps at each beta in turn.

    For a hysteresis loop pass the betas up and then down, e.g.
    ``np.r_[np.arange(0, 0.5, 0.01), np.arange(0.5, -1e-9, -0.01)]``.
    """
    betas_arr = _checks.finite_array(betas, "betas", ndim=1)
    steps_per_stage = _checks.integer(steps_per_stage, "steps_per_stage", minimum=1)
    return [(steps_per_stage, float(lr), float(b), float(temperature)) for b in betas_arr]


def resolve_stages(
    schedule: Sequence[Any], n_members: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(stage ends, lr, beta, temperature as (S, M) arrays) from a list of stages."""
    if isinstance(schedule, (str, bytes)) or not isinstance(schedule, Sequence) or not schedule:
        raise ValueError("schedule: expected a non-empty list of stages")
    ends, lrs, betas, temps = [], [], [], []
    total = 0
    for k, stage in enumerate(schedule):
        if isinstance(stage, dict):
            unknown = set(stage) - {"steps", "lr", "beta", "temperature"}
            if unknown:
                raise ValueError(f"schedule[{k}]: unknown keys {sorted(unknown)}")
            steps, lr, beta = stage["steps"], stage["lr"], stage["beta"]
            temperature = stage.get("temperature", 0.0)
        else:
            if len(stage) not in (3, 4):
                raise ValueError(
                    f"schedule[{k}]: expected (steps, lr, beta[, temperature]), got {stage!r}"
                )
            steps, lr, beta = stage[:3]
            temperature = stage[3] if len(stage) == 4 else 0.0
        total += _checks.integer(steps, f"schedule[{k}].steps", minimum=1)
        ends.append(total)
        lrs.append(
            _checks.per_member(lr, f"schedule[{k}].lr", n_members, low=0.0, low_inclusive=False)
        )
        betas.append(
            _checks.per_member(beta, f"schedule[{k}].beta", n_members, low=0.0, low_inclusive=True)
        )
        temps.append(
            _checks.per_member(
                temperature, f"schedule[{k}].temperature", n_members, low=0.0, low_inclusive=True
            )
        )
    return (
        np.asarray(ends, dtype=np.int64),
        np.ascontiguousarray(lrs),
        np.ascontiguousarray(betas),
        np.ascontiguousarray(temps),
    )
