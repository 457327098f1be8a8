"""Trapping delay against depth (the paper predicts that deeper means longer).

For depth L = 3, 4, 5 ([2, 10, ..., 10, 2]), the network starts in the aligned rank-1 trap
at beta and escapes the second mode under additive Langevin noise at one temperature; the
escape rate is measured with censoring and set beside the per-mode barrier of each depth.
"""

from __future__ import annotations

import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from grokescape import stats, theory, traps
from grokescape.ensemble import Ensemble
from grokescape.escape import ModeThreshold
from grokescape.experiments.common import (
    CONFIRMED,
    REFUTED,
    Claim,
    ExperimentResult,
    fmt,
    markdown_table,
    paper_data,
)

NAME = "depth"


def run(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> ExperimentResult:
    tic = time.perf_counter()
    res = ExperimentResult(NAME, config)
    data = paper_data(config)
    beta, temp, lr = float(config["beta"]), float(config["temperature"]), float(config["lr"])
    per_epoch = data.n_train // int(config["batch_size"])
    rows, frames = [], []
    for depth in config["depths"]:
        widths = [2] + [10] * (int(depth) - 1) + [2]
        m = int(config["members"])
        ens = Ensemble(widths, m)
        ens.set_weights(traps.aligned_weights(data, widths, 1, beta, n_members=m))
        thr = float(theory.mode_thresholds(data.eta_hat[1], beta, depth).lam)
        out = ens.run_until_escape(
            data,
            ModeThreshold(1, value=thr, on="sv"),
            int(config["epochs"]) * per_epoch,
            lr,
            beta,
            batch_size=config["batch_size"],
            temperature=temp,
            seed=config["seed"] + depth,
            n_threads=n_threads,
            progress=progress,
        )
        t = out.table.assign(depth=depth)
        frames.append(t)
        rate = stats.escape_rate(t, time="time_epochs")
        rows.append(
            {
                "depth": depth,
                "barrier": float(theory.barrier(data.eta_hat[1], beta, depth)),
                "beta_c": float(theory.spinodal_beta(data.eta_hat[1], depth)),
                "n": len(t),
                "escaped": int(t.escaped.sum()),
                "tau_epochs": rate.tau,
                "tau_lower": rate.tau_lower,
                "tau_upper": rate.tau_upper,
            }
        )
    table = pd.DataFrame(rows)
    res.tables["depth"] = table
    res.tables["trajectories"] = pd.concat(frames, ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    from grokescape.stats_plots import plot_survival

    plot_survival(
        {
            f"depth {d} (dE = {b:.4f})": (g.time_epochs.to_numpy(), g.escaped.to_numpy())
            for (d, g), b in zip(
                res.tables["trajectories"].groupby("depth"), table.barrier, strict=True
            )
        },
        ax=ax,
        log=True,
    )
    ax.set(xlabel="epoch", title=rf"rank-1 trap, $\beta$ = {beta}, T = {temp}, lr {lr}")
    res.figures["depth"] = fig
    longer = bool(np.all(np.diff(table.tau_epochs) > 0))
    res.claims.append(
        Claim(
            NAME,
            "deeper networks stay trapped longer",
            "predicted",
            "; ".join(
                f"L={r.depth}: tau = {fmt(r.tau_epochs)} epochs (dE {r.barrier:.4f})"
                for r in table.itertuples()
            ),
            f"{config['members']} per depth",
            CONFIRMED if longer else REFUTED,
            "at fixed beta and T; the per-mode barrier grows with depth",
        )
    )
    res.values = {"table": table}
    res.markdown = markdown_table(table)
    res.seconds = time.perf_counter() - tic
    return res
