"""The size of minibatch gradient noise, and the effective temperatures built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from grokescape import _checks

if TYPE_CHECKING:
    from grokescape.data import Dataset
    from grokescape.ensemble import Ensemble

__all__ = ["gradient_noise_scale"]


def gradient_noise_scale(
    ensemble: Ensemble,
    dataset: Dataset,
    batch_size: int,
    lr: float | None = None,
    *,
    n_threads: int | None = None,
) -> pd.DataFrame:
    """Trace of the per-sample gradient covariance at each member's current state.

    C = tr Cov_i(g_i), g_i the gradient (all parameters) of the data term
    1/2 ||y_i - f(x_i)||^2 of training sample i; the L2 term adds no noise. A minibatch of
    B samples drawn with replacement has gradient covariance Cov/B (epoch sampling without
    replacement multiplies this by (n - B)/(n - 1)).

    Returns
    -------
    DataFrame, one row per member
        ``C_total`` (the trace), ``C_per_weight`` (C / number of parameters), ``n_params``,
        ``batch_size``, and with `lr` given:
        ``T_eff_paper_total = lr / (B C_total)`` and ``T_eff_paper_per_weight =
        lr / (B C_per_weight)`` (the paper's T_eff = lr / (B C); it does not say which C),
        and ``T_langevin = lr C_per_weight / (2 B)``, the temperature of additive Langevin
        noise with the same mean per-parameter variance per step
        (2 lr T = lr^2 C_per_weight / B).
    """
    batch_size = _checks.integer(batch_size, "batch_size", minimum=1)
    mean_sq, sq_mean = ensemble.per_sample_gradient_moments(dataset, n_threads=n_threads)
    c_total = mean_sq - sq_mean
    p = ensemble.n_params
    out = pd.DataFrame(
        {"C_total": c_total, "C_per_weight": c_total / p, "n_params": p, "batch_size": batch_size}
    )
    if lr is not None:
        lr = float(_checks.finite_array(lr, "lr"))
        if lr <= 0:
            raise ValueError(f"lr: expected > 0, got {lr}")
        out["T_eff_paper_total"] = lr / (batch_size * out["C_total"])
        out["T_eff_paper_per_weight"] = lr / (batch_size * out["C_per_weight"])
        out["T_langevin"] = lr * out["C_per_weight"] / (2 * batch_size)
    return out
