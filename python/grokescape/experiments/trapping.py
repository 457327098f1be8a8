"""Trapping and escape (the paper's Fig. 1a), separated by escape mechanism.

Traps are prepared by the paper's checkpoint protocol (train to convergence at beta = 0,
then at 0.361 for the rank-1 trap or 0.43 for the rank-0 trap) and then run at beta
(0.32 in the paper's text, 0.03 in its caption) with lr 0.08 and B = 64. Each escape
mechanism is an explicit setting:

- ``pure SGD``: the prepared state as it is. The protocol leaves the unlearned directions
  at rounding level, and a bias-free linear network keeps every layer's rank under SGD
  (physics.md section 5), so nothing can escape.
- ``residual``: a random perturbation of Frobenius norm `residual` added to every layer.
- ``noise``: additive Langevin noise at temperature `temperature`.
- ``biases``: networks with biases (PyTorch's default initialisation, uniform in
  +-1/sqrt(fan_in)) prepared by the same protocol.

An escape is the next singular value of the end-to-end map passing the theory's midpoint
between saddle and learned minimum of that mode at the run's beta (for the rank-0 trap both
stages are measured: the first and the second mode).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from grokescape import theory, traps
from grokescape.data import Dataset
from grokescape.ensemble import Ensemble
from grokescape.escape import ModeThreshold
from grokescape.experiments.common import (
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    Computed,
    Report,
    checkpoint_ensemble,
    copy_ensemble,
    fmt,
    markdown_table,
    paper_data,
)
from grokescape.experiments.escape_sweep import EscapePoint, escape_sweep
from grokescape.stats_plots import plot_survival

NAME = "trapping"
MECHANISMS = ("pure SGD", "residual", "noise", "biases")
#: Mechanisms drawn in the test-MSE panel (biases are in the survival panel only).
CURVE_MECHANISMS = ("noise", "residual", "pure SGD")

#: (trap_beta, with biases) -> the prepared ensemble and its protocol report.
Prepared = dict[tuple[float, bool], tuple[Ensemble, pd.DataFrame]]


def random_init_convergence(
    data: Any, config: dict[str, Any], n_threads: int | None = None
) -> pd.DataFrame:
    """How fast random initialisations converge at each beta: epochs (median, 90th
    percentile) to 90% of the test-MSE drop over 100 epochs, final test MSE, and how many
    members diverged (they are left out of the other columns)."""
    per_epoch = data.n_train // config["batch_size"]
    conv_rows = []
    for beta in config["betas"]:
        ens = Ensemble(config["widths"], int(config["members"]))
        ens.init_random(seed=config["seed"])
        hist = ens.train(
            data,
            100 * per_epoch,
            config["lr"],
            beta,
            batch_size=config["batch_size"],
            record_every=per_epoch,
            seed=config["seed"] + 3,
            n_threads=n_threads,
        )
        finite = ~hist.diverged  # a member that diverged has no convergence time
        mse = hist.test_mse[:, finite]
        drop = mse[0] - mse[-1]
        reached = np.argmax(mse <= mse[-1][None, :] + 0.1 * drop[None, :], axis=0)
        conv_rows.append(
            {
                "beta": beta,
                "epochs_to_90pct_median": float(np.median(reached)),
                "epochs_to_90pct_q90": float(np.percentile(reached, 90)),
                "final_test_mse": float(np.mean(mse[-1])),
                "diverged": int(np.sum(~finite)),
            }
        )
    return pd.DataFrame(conv_rows)


def _trap_rank(protocol_report: pd.DataFrame) -> int:
    """The rank most members of a prepared trap sit in."""
    return int(round(protocol_report["rank"].median()))


def _preparation_table(prepared: Prepared) -> pd.DataFrame:
    rows = []
    for (trap_beta, bias), (_, rep) in prepared.items():
        res_cols = [c for c in rep.columns if c.startswith("residual_layer")]
        rows.append(
            {
                "trap_beta": trap_beta,
                "biases": bias,
                "rank_fractions": rep["rank"].value_counts(normalize=True).round(3).to_dict(),
                "converged": float(rep["converged_trap"].mean()),
                "epochs": int(rep["epochs_beta0"].max() + rep["epochs_trap"].max()),
                "max_layer_residual": float(rep[res_cols].to_numpy().max()),
            }
        )
    return pd.DataFrame(rows)


def _with_mechanism(
    prepared: Prepared, trap_beta: float, mechanism: str, config: dict[str, Any]
) -> Ensemble:
    """A copy of the prepared trap with the mechanism's residual or biases."""
    ens = copy_ensemble(prepared[(trap_beta, mechanism == "biases")][0])
    if mechanism == "residual":
        traps.add_random_residual(ens, float(config["residual"]), seed=config["seed"] + 5)
    return ens


def _temperature(mechanism: str, config: dict[str, Any]) -> float:
    return float(config["temperature"]) if mechanism == "noise" else 0.0


def _escape_points(
    data: Dataset, config: dict[str, Any], prepared: Prepared
) -> Iterator[EscapePoint]:
    """Every (beta, trap, mechanism, mode still to escape) of the experiment."""
    depth = len(config["widths"]) - 1
    per_epoch = data.n_train // config["batch_size"]
    for beta in config["betas"]:
        for trap_beta in config["trap_betas"]:
            rank = _trap_rank(prepared[(trap_beta, False)][1])
            for mechanism in MECHANISMS:
                ens = _with_mechanism(prepared, trap_beta, mechanism, config)
                # the paper's budget for noise and for the main pure-SGD run; the other
                # mechanisms cannot escape at these betas and get a short budget
                main = mechanism == "pure SGD" and beta == config["betas"][0] and rank == 1
                long = mechanism == "noise" or main
                epochs = int(config["epochs"] if long else config["epochs_short"])
                for stage in range(rank, data.n_modes):
                    thr = float(theory.mode_thresholds(data.eta_hat[stage], beta, depth).lam)
                    if not np.isfinite(thr):
                        continue
                    yield EscapePoint(
                        labels={
                            "beta": beta,
                            "trap": f"rank-{rank}",
                            "mechanism": mechanism,
                            "stage": f"sv_{stage}",
                        },
                        row={"escape_of": f"mode {stage}"},
                        ensemble=copy_ensemble(ens),
                        data=data,
                        criterion=ModeThreshold(stage, value=thr, on="sv", check_every=per_epoch),
                        max_steps=epochs * per_epoch,
                        lr=float(config["lr"]),
                        beta=beta,
                        batch_size=config["batch_size"],
                        temperature=_temperature(mechanism, config),
                        seed=config["seed"] + 7,
                    )


def _test_mse_curves(
    data: Dataset, config: dict[str, Any], prepared: Prepared, n_threads: int | None
) -> dict[tuple[float | None, str], pd.DataFrame]:
    """Test MSE at log-spaced epochs at the paper's beta, from random initialisation (key
    (None, "random init")) and from each trap with each of CURVE_MECHANISMS (key
    (trap_beta, mechanism)): median and 10th and 90th percentiles over the members."""
    beta = config["betas"][0]
    n_curve = int(config["curve_members"])
    per_epoch = data.n_train // config["batch_size"]
    marks = np.unique(np.round(np.geomspace(1, config["epochs"], 60)).astype(int)) * per_epoch
    lengths = np.diff(np.r_[0, marks])

    def curve(ens: Ensemble, temperature: float) -> pd.DataFrame:
        sched = [(int(n), config["lr"], beta, temperature) for n in lengths]
        h = ens.train_schedule(
            data,
            sched,
            batch_size=config["batch_size"],
            seed=config["seed"] + 9,
            n_threads=n_threads,
        )
        q10, q90 = np.percentile(h.test_mse[1:], [10, 90], axis=1)
        return pd.DataFrame(
            {
                "epoch": h.epoch[1:],
                "median": np.median(h.test_mse[1:], axis=1),
                "q10": q10,
                "q90": q90,
            }
        )

    ens = Ensemble(config["widths"], n_curve)
    ens.init_random(seed=config["seed"])
    curves: dict[tuple[float | None, str], pd.DataFrame] = {(None, "random init"): curve(ens, 0.0)}
    for trap_beta in config["trap_betas"]:
        base = prepared[(trap_beta, False)][0]
        for mechanism in CURVE_MECHANISMS:
            ens = Ensemble(config["widths"], n_curve)
            ens.set_params(base.params[:n_curve])
            if mechanism == "residual":
                traps.add_random_residual(ens, float(config["residual"]), seed=config["seed"] + 5)
            curves[(trap_beta, mechanism)] = curve(ens, _temperature(mechanism, config))
    return curves


def compute(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> Computed:
    """Prepare the traps, run every mechanism until escape, and record the curves.

    Returns tables ``random_init`` (:func:`random_init_convergence`), ``preparation`` (per
    trap: rank fractions, convergence, epochs, largest layer residual), ``escapes`` (per
    beta, trap, mechanism and mode: escapes and tau in epochs within the budget) and
    ``trajectories``; values ``summary`` (the escapes table), ``trap_ranks`` (trap_beta ->
    rank), ``curves`` (:func:`_test_mse_curves`) and ``mse_levels`` (the theory's test MSE
    of each rank at the paper's beta).
    """
    data = paper_data(config)
    depth = len(config["widths"]) - 1
    per_epoch = data.n_train // config["batch_size"]
    random_init = random_init_convergence(data, config, n_threads)
    prepared: Prepared = {}
    for trap_beta in config["trap_betas"]:
        for bias in (False, True):
            prepared[(trap_beta, bias)] = checkpoint_ensemble(
                data, config, trap_beta, bias=bias, n_threads=n_threads, progress=progress
            )
    sweep = escape_sweep(
        _escape_points(data, config, prepared), n_threads=n_threads, progress=progress
    )
    summary = sweep.rates.assign(budget_epochs=sweep.rates.max_steps // per_epoch).rename(
        columns={"tau": "mean_tau_epochs"}
    )[
        [
            "beta",
            "trap",
            "mechanism",
            "escape_of",
            "n",
            "escaped",
            "escaped_fraction",
            "median_escape_epoch",
            "mean_tau_epochs",
            "tau_lower",
            "tau_upper",
            "budget_epochs",
        ]
    ]
    levels = theory.phase_diagram(data.eta_hat, [config["betas"][0]], depth, dataset=data)
    mse_levels = [
        float(levels[f"test_mse_rank{r}"].iloc[0])
        for r in range(data.n_modes + 1)
        if f"test_mse_rank{r}" in levels
    ]
    return Computed(
        tables={
            "random_init": random_init,
            "preparation": _preparation_table(prepared),
            "escapes": summary,
            "trajectories": sweep.trajectories,
        },
        values={
            "summary": summary,
            "trap_ranks": {tb: _trap_rank(prepared[(tb, False)][1]) for tb in config["trap_betas"]},
            "curves": _test_mse_curves(data, config, prepared, n_threads),
            "mse_levels": mse_levels,
        },
    )


def plot(computed: Computed, config: dict[str, Any]) -> dict[str, Figure]:
    """Test MSE against epoch from each start and mechanism, and survival in the traps,
    at the paper's beta."""
    beta = config["betas"][0]
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.2), constrained_layout=True)
    ax = axes[0]
    styles = {"noise": "-", "residual": "-.", "pure SGD": "--"}
    for (trap_beta, mechanism), c in computed.values["curves"].items():
        if trap_beta is None:
            ax.plot(c.epoch, c["median"], color="k", label=mechanism)
            continue
        color = f"C{config['trap_betas'].index(trap_beta)}"
        rank = computed.values["trap_ranks"][trap_beta]
        ax.plot(
            c.epoch,
            c["median"],
            styles[mechanism],
            color=color,
            label=f"rank-{rank} trap (from beta={trap_beta}), {mechanism}",
        )
        if mechanism == "noise":
            ax.fill_between(c.epoch, c.q10, c.q90, color=color, alpha=0.2, lw=0)
    for level in computed.values["mse_levels"]:
        ax.axhline(level, color="0.7", lw=0.7, ls=":")
    ax.set(
        xscale="log",
        xlabel="epoch",
        ylabel="test MSE",
        title=rf"test MSE at $\beta$ = {beta} (median, 10-90% band), noise T = "
        f"{config['temperature']}, residual {config['residual']}",
    )
    ax.legend(fontsize=7, frameon=False)
    ax = axes[1]
    trajectories = computed.tables["trajectories"]
    sub = trajectories[trajectories.beta == beta]
    curves = {
        f"{trap}, {mech}, escape of {stage}": (g.time_epochs.to_numpy(), g.escaped.to_numpy())
        for (trap, mech, stage), g in sub.groupby(["trap", "mechanism", "stage"])
    }
    plot_survival(curves, ax=ax, log=False)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, config["epochs"])
    ax.set(
        xlabel="epoch",
        title=rf"survival in the trap, $\beta$ = {beta} (Kaplan-Meier; flat = no escape)",
    )
    ax.legend(fontsize=6, frameon=False, ncol=2)
    return {"trapping": fig}


def report(computed: Computed, config: dict[str, Any]) -> Report:
    """Random-init convergence, and the rank-1 and rank-0 escapes beside the paper's."""
    summary, conv = computed.values["summary"], computed.tables["random_init"]
    beta = config["betas"][0]
    claims = [
        Claim(
            NAME,
            "random init converges",
            "~10 epochs",
            f"{fmt(conv.epochs_to_90pct_median.iloc[0])} epochs (median to 90% of the MSE drop)",
            f"{config['members']} members",
            REPRODUCED if conv.epochs_to_90pct_median.iloc[0] <= 20 else NOT_REPRODUCED,
        )
    ]
    main = summary[(summary.beta == beta) & (summary.trap == "rank-1")]
    pure = main[main.mechanism == "pure SGD"]
    if len(pure):
        p = pure.iloc[0]
        others = "; ".join(
            f"{r.mechanism}: {r.escaped}/{r.n} escaped, tau = {fmt(r.mean_tau_epochs)} epochs"
            for r in main.itertuples()
            if r.mechanism != "pure SGD"
        )
        claims.append(
            Claim(
                NAME,
                f"rank-1 trap escapes (beta {beta}, lr {config['lr']}, B {config['batch_size']})",
                "after ~5500 epochs",
                f"pure SGD: {p.escaped}/{p.n} escaped in {config['epochs']} epochs. {others} "
                f"(budgets in the table)",
                f"{p.n} per mechanism",
                NOT_REPRODUCED if p.escaped == 0 else REPRODUCED,
                "pure SGD cannot leave the exact trap the protocol prepares; the paper's escape "
                "source is unstated (physics.md 7.6)",
            )
        )
    r0 = summary[(summary.beta == beta) & (summary.trap == "rank-0")]
    if len(r0):
        txt = "; ".join(
            f"{r.mechanism} ({r.escape_of}): {r.escaped}/{r.n}, tau = {fmt(r.mean_tau_epochs)}"
            for r in r0.itertuples()
        )
        pure0 = r0[r0.mechanism == "pure SGD"]
        claims.append(
            Claim(
                NAME,
                "rank-0 trap: staged escape",
                "> 7000 then > 10,000 epochs",
                txt,
                f"{config['members']} per mechanism",
                NOT_REPRODUCED if len(pure0) and pure0.escaped.sum() == 0 else REPRODUCED,
            )
        )
    markdown = (
        "Trap preparation (checkpoint protocol; residual = largest singular value of each layer "
        "beyond the trap's rank):\n\n"
        + markdown_table(computed.tables["preparation"])
        + "\n\nEscapes within the budget (tau: censoring-aware mean escape time in epochs, "
        "events / time at risk, with its exact Poisson 95% interval):\n\n"
        + markdown_table(summary)
        + "\n\nRandom initialisation:\n\n"
        + markdown_table(conv)
    )
    return Report(claims, markdown)
