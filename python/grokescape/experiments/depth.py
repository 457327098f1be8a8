"""Trapping delay against depth (the paper predicts that deeper means longer).

For depth L = 3 ... 6 ([2, 10, ..., 10, 2]), the network starts in the aligned rank-1 trap
at beta and escapes the second mode under additive Langevin noise at one temperature; the
escape rate is measured with censoring and set beside the per-mode barrier of each depth.
Where brute force sees fewer than ``min_escapes`` escapes in its budget (the per-mode
barrier over T grows from ~2 at L = 3 to ~70 at L = 6), the mean escape time comes from
the two-stage splitting estimate (grokescape.splitting) on the mode amplitude lambda_1 with
the same threshold, so that every depth has a measured rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from grokescape import splitting, theory, traps
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
    ].copy()
    table["method"] = "brute force"
    table["member_steps"] = [
        float(g["time"].sum()) for _, g in sweep.trajectories.groupby("depth", sort=False)
    ]
    for i, row in table.iterrows():
        if row["escaped"] >= int(config["min_escapes"]):
            continue
        depth = int(row["depth"])
        widths = [d_in] + [hidden] * (depth - 1) + [d_out]
        trap = Ensemble(widths, int(config["trap_members"]))
        trap.set_weights(traps.aligned_weights(data, widths, 1, beta, n_members=trap.n_members))
        thr = float(theory.mode_thresholds(data.eta_hat[1], beta, depth).lam)
        est = splitting.mean_escape_time(
            data, trap, ModeThreshold(1, value=thr), lr=lr, beta=beta, temperature=temp,
            batch_size=config["batch_size"], loop_steps=int(config["loop_steps"]),
            n=int(config["n"]), k=int(config["k"]), runs=int(config["runs"]),
            seed=config["seed"] + depth, n_threads=n_threads, progress=progress,
        )  # fmt: skip
        table.loc[i, ["tau_epochs", "tau_lower", "tau_upper"]] = (
            est.tau / per_epoch,
            est.interval[0] / per_epoch,
            est.interval[1] / per_epoch,
        )
        table.loc[i, ["method", "member_steps"]] = ("splitting", est.member_steps)
    return Computed(
        tables={"depth": table, "trajectories": sweep.trajectories}, values={"table": table}
    )


def plot(computed: Computed, config: dict[str, Any]) -> dict[str, Figure]:
    """Survival in the trap at the depths brute force measured (Kaplan-Meier), and tau
    against depth with the splitting estimates."""
    table, trajectories = computed.tables["depth"], computed.tables["trajectories"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    brute = set(table.loc[table.method == "brute force", "depth"])
    curves = {
        f"depth {d} (dE = {b:.4f})": (g.time_epochs.to_numpy(), g.escaped.to_numpy())
        for (d, g), b in zip(trajectories.groupby("depth"), table.barrier, strict=True)
        if d in brute
    }
    if curves:
        plot_survival(curves, ax=ax, log=True)
    else:  # small ensembles: every depth went to splitting
        ax.text(0.5, 0.5, "no depth with enough brute-force escapes", ha="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set(
        xlabel="epoch",
        title=rf"rank-1 trap, $\beta$ = {config['beta']}, T = {config['temperature']}, "
        f"lr {config['lr']}",
    )
    for method, marker in (("brute force", "o"), ("splitting", "s")):
        h = table[table.method == method]
        if len(h):
            err = np.vstack([h.tau_epochs - h.tau_lower, h.tau_upper - h.tau_epochs])
            bx.errorbar(h.depth, h.tau_epochs, yerr=err, fmt=marker, capsize=3, label=method)
    bx.set_yscale("log")
    bx.set(xlabel="depth L", ylabel=r"mean escape time $\tau$ (epochs)",
           xticks=list(table.depth), title="every depth measured")  # fmt: skip
    bx.legend()
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
            f"L={r.depth}: tau = {fmt(r.tau_epochs)} epochs (dE {r.barrier:.4f}, {r.method})"
            for r in table.itertuples()
        ),
        f"{config['members']} per depth (splitting: {config['runs']} runs of {config['n']})",
        CONFIRMED if longer else REFUTED,
        "at fixed beta and T; the per-mode barrier grows with depth",
    )
    return Report([claim], markdown_table(table))
