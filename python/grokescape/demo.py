"""A first look: an ensemble of the paper's [2, 10, 10, 2] network trained at several L2
strengths at once (one beta per member), summarised per beta."""

from __future__ import annotations

import numpy as np
import pandas as pd

from grokescape.data import teacher_data
from grokescape.ensemble import Ensemble

__all__ = ["demo"]


def demo(
    n_members: int = 1000,
    betas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.38, 0.45),
    epochs: int = 400,
    seed: int = 0,
    n_threads: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train the paper's network from random initialisation at several beta and tabulate.

    Data: Gaussian teacher with eta = (0.9, 0.8), 512 training and 512 test samples.
    Training: lr 0.08, batch size 64, `epochs` epochs; members are split evenly over
    `betas`. The rank of a member is the number of singular values of its end-to-end map
    above 0.05.

    Returns
    -------
    DataFrame
        One row per beta: members, mean and spread of the test MSE, mean per-mode
        amplitudes, and the fraction of members at rank 0, 1 and 2.
    """
    data = teacher_data([0.9, 0.8], 512, 512, seed=seed)
    betas_arr = np.asarray(betas, dtype=float)
    beta = np.resize(betas_arr, n_members)  # member k gets betas[k % len(betas)]
    ens = Ensemble([2, 10, 10, 2], n_members)
    ens.init_random(seed=seed)
    steps = epochs * (data.n_train // 64)
    hist = ens.train(
        data,
        steps,
        lr=0.08,
        beta=beta,
        batch_size=64,
        seed=seed,
        n_threads=n_threads,
        progress=progress,
    )
    final = hist.final()
    final["beta"] = beta
    final["rank"] = (hist.singular_values[-1] > 0.05).sum(axis=1)
    rows = []
    for b, group in final.groupby("beta"):
        rows.append(
            {
                "beta": b,
                "members": len(group),
                "test_mse": group["test_mse"].mean(),
                "test_mse_std": group["test_mse"].std(),
                "lambda_0": group["lambda_0"].mean(),
                "lambda_1": group["lambda_1"].mean(),
                **{f"rank{r}": float((group["rank"] == r).mean()) for r in (0, 1, 2)},
            }
        )
    return pd.DataFrame(rows)
