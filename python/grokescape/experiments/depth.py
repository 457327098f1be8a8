"""Trapping delay against depth (the paper predicts that deeper means longer).

For depth L = 3, 4, 5 ([2, 10, ..., 10, 2]), the network starts in the aligned rank-1 trap
at beta and escapes the second mode under additive Langevin noise at one temperature; the
escape rate is measured with censoring and set beside the per-mode barrier of each depth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from grokescape import theory, traps
from grokescape.ensemble import Ensemble
from grokescape.escape import ModeThreshold
from grokescape.experiments.common import (
    CONFIRMED,
    REFUTED,
    Claim,
    Computed,
    Report,
    fmt,
    markdown_table,
    paper_data,
)
from grokescape.experiments.escape_sweep import EscapePoint, escape_sweep
from grokescape.stats_plots import plot_survival

NAME = "depth"


def compute(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> Computed:
    """Escape rate of the second mode from the rank-1 trap at each depth.

    Returns tables ``depth`` (per depth: barrier, beta_c, n, escaped, tau in epochs with
    its interval) and ``trajectories``.
    """
    data = paper_data(config)
    beta, temp, lr = float(config["beta"]), float(config["temperature"]), float(config["lr"])
    m = int(config["members"])
    per_epoch = data.n_train // int(config["batch_size"])
    d_in, hidden, d_out = config["widths"][0], config["widths"][1], config["widths"][-1]

    def points() -> Iterator[EscapePoint]:
        for depth in config["depths"]:
            widths = [d_in] + [hidden] * (int(depth) - 1) + [d_out]
            ens = Ensemble(widths, m)
            ens.set_weights(traps.aligned_weights(data, widths, 1, beta, n_members=m))
            thr = float(theory.mode_thresholds(data.eta_hat[1], beta, depth).lam)
            yield EscapePoint(
                labels={"depth": depth},
                row={
                    "barrier": float(theory.barrier(data.eta_hat[1], beta, depth)),
                    "beta_c": float(theory.spinodal_beta(data.eta_hat[1], depth)),
                },
                ensemble=ens,
                data=data,
                criterion=ModeThreshold(1, value=thr, on="sv"),
                max_steps=int(config["epochs"]) * per_epoch,
                lr=lr,
                beta=beta,
                batch_size=config["batch_size"],
                temperature=temp,
                seed=config["seed"] + depth,
            )

    sweep = escape_sweep(points(), n_threads=n_threads, progress=progress)
    table = sweep.rates.rename(columns={"tau": "tau_epochs"})[
        ["depth", "barrier", "beta_c", "n", "escaped", "tau_epochs", "tau_lower", "tau_upper"]
    ]
    return Computed(
        tables={"depth": table, "trajectories": sweep.trajectories}, values={"table": table}
    )


def plot(computed: Computed, config: dict[str, Any]) -> dict[str, Figure]:
    """Survival in the trap at each depth (Kaplan-Meier)."""
    table, trajectories = computed.tables["depth"], computed.tables["trajectories"]
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    plot_survival(
        {
            f"depth {d} (dE = {b:.4f})": (g.time_epochs.to_numpy(), g.escaped.to_numpy())
            for (d, g), b in zip(trajectories.groupby("depth"), table.barrier, strict=True)
        },
        ax=ax,
        log=True,
    )
    ax.set(
        xlabel="epoch",
        title=rf"rank-1 trap, $\beta$ = {config['beta']}, T = {config['temperature']}, "
        f"lr {config['lr']}",
    )
    return {"depth": fig}


def report(computed: Computed, config: dict[str, Any]) -> Report:
    """Whether tau grows with depth, and the table."""
    table = computed.tables["depth"]
    longer = bool(np.all(np.diff(table.tau_epochs) > 0))
    claim = Claim(
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
    return Report([claim], markdown_table(table))
