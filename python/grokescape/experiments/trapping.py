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

import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from grokescape import stats, theory, traps
from grokescape._native import core
from grokescape.ensemble import Ensemble
from grokescape.escape import ModeThreshold
from grokescape.experiments.common import (
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    ExperimentResult,
    fmt,
    markdown_table,
    paper_data,
)

NAME = "trapping"
MECHANISMS = ("pure SGD", "residual", "noise", "biases")


def _prepared(
    data: Any,
    config: dict[str, Any],
    trap_beta: float,
    bias: bool,
    n_threads: int | None,
    progress: bool,
) -> tuple[Ensemble, pd.DataFrame]:
    m = int(config["members"])
    ens = Ensemble(config["widths"], m, bias=bias)
    ens.init_random(seed=config["seed"])
    if bias:
        rng = np.random.default_rng(config["seed"] + 17)
        w = [np.asarray(x) for x in ens.weights]
        b = [
            rng.uniform(-1, 1, size=(m, config["widths"][l + 1])) / np.sqrt(config["widths"][l])
            for l in range(len(w))
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


def _add_residual(ens: Ensemble, size: float, seed: int) -> None:
    """Add to every layer of every member a Gaussian matrix of Frobenius norm `size`."""
    draws = np.empty((ens.n_members, ens.n_params))
    core.standard_normal(
        seed,
        np.arange(ens.n_members, dtype=np.uint64),
        0,
        core.Purpose.residual,
        draws,
        int(core.default_threads()),
    )
    params = np.array(ens.params, dtype=float)
    lay = ens._layout
    for l in range(ens.depth):
        a, n = lay.w_offset[l], ens.widths[l + 1] * ens.widths[l]
        block = draws[:, a : a + n]
        params[:, a : a + n] += size * block / np.linalg.norm(block, axis=1, keepdims=True)
    ens.set_params(params)


def _copy(ens: Ensemble) -> Ensemble:
    out = Ensemble(ens.widths, ens.n_members, bias=ens.bias)
    out.set_params(ens.params)
    return out


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


def run(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> ExperimentResult:
    tic = time.perf_counter()
    data = paper_data(config)
    depth = len(config["widths"]) - 1
    per_epoch = data.n_train // config["batch_size"]
    budget = int(config["epochs"]) * per_epoch
    short = int(config["epochs_short"]) * per_epoch
    res = ExperimentResult(NAME, config)

    res.tables["random_init"] = random_init_convergence(data, config, n_threads)

    prepared: dict[tuple[float, bool], tuple[Ensemble, pd.DataFrame]] = {}
    for trap_beta in config["trap_betas"]:
        for bias in (False, True):
            prepared[(trap_beta, bias)] = _prepared(
                data, config, trap_beta, bias, n_threads, progress
            )
    prep_rows = []
    for (trap_beta, bias), (_, rep) in prepared.items():
        res_cols = [c for c in rep.columns if c.startswith("residual_layer")]
        prep_rows.append(
            {
                "trap_beta": trap_beta,
                "biases": bias,
                "rank_fractions": rep["rank"].value_counts(normalize=True).round(3).to_dict(),
                "converged": float(rep["converged_trap"].mean()),
                "epochs": int(rep["epochs_beta0"].max() + rep["epochs_trap"].max()),
                "max_layer_residual": float(rep[res_cols].to_numpy().max()),
            }
        )
    res.tables["preparation"] = pd.DataFrame(prep_rows)

    rows, frames = [], []
    for beta in config["betas"]:
        for trap_beta in config["trap_betas"]:
            base, rep = prepared[(trap_beta, False)]
            rank = int(round(rep["rank"].median()))
            for mechanism in MECHANISMS:
                if mechanism == "biases":
                    ens = _copy(prepared[(trap_beta, True)][0])
                else:
                    ens = _copy(base)
                if mechanism == "residual":
                    _add_residual(ens, float(config["residual"]), config["seed"] + 5)
                temperature = float(config["temperature"]) if mechanism == "noise" else 0.0
                for stage in range(rank, data.n_modes):
                    thr = float(theory.mode_thresholds(data.eta_hat[stage], beta, depth).lam)
                    if not np.isfinite(thr):
                        continue
                    run_ens = _copy(ens)
                    # the paper's budget for noise and for the main pure-SGD run; the other
                    # mechanisms cannot escape at these betas and get a short budget
                    main = mechanism == "pure SGD" and beta == config["betas"][0] and rank == 1
                    steps = budget if mechanism == "noise" or main else short
                    out = run_ens.run_until_escape(
                        data,
                        ModeThreshold(stage, value=thr, on="sv", check_every=per_epoch),
                        steps,
                        config["lr"],
                        beta,
                        batch_size=config["batch_size"],
                        temperature=temperature,
                        seed=config["seed"] + 7,
                        n_threads=n_threads,
                        progress=progress,
                    )
                    t = out.table.assign(
                        beta=beta, trap=f"rank-{rank}", mechanism=mechanism, stage=f"sv_{stage}"
                    )
                    frames.append(t)
                    rate = stats.escape_rate(t, time="time_epochs")
                    esc = t[t.escaped]
                    rows.append(
                        {
                            "beta": beta,
                            "trap": f"rank-{rank}",
                            "mechanism": mechanism,
                            "escape_of": f"mode {stage}",
                            "n": len(t),
                            "escaped": int(t.escaped.sum()),
                            "escaped_fraction": float(t.escaped.mean()),
                            "median_escape_epoch": float(esc.escape_epoch.median())
                            if len(esc)
                            else np.nan,
                            "mean_tau_epochs": rate.tau,
                            "tau_lower": rate.tau_lower,
                            "tau_upper": rate.tau_upper,
                            "budget_epochs": steps // per_epoch,
                        }
                    )
    summary = pd.DataFrame(rows)
    trajectories = pd.concat(frames, ignore_index=True)
    res.tables["escapes"] = summary
    res.tables["trajectories"] = trajectories

    # Fig. 1a-like curves at the paper's beta, recorded at log-spaced epochs
    beta = config["betas"][0]
    n_curve = int(config["curve_members"])
    marks = np.unique(np.round(np.geomspace(1, config["epochs"], 60)).astype(int)) * per_epoch
    lengths = np.diff(np.r_[0, marks])

    def curve(ens: Ensemble, temperature: float) -> Any:
        sched = [(int(n), config["lr"], beta, temperature) for n in lengths]
        return ens.train_schedule(
            data,
            sched,
            batch_size=config["batch_size"],
            seed=config["seed"] + 9,
            n_threads=n_threads,
        )

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.2), constrained_layout=True)
    ax = axes[0]
    ens = Ensemble(config["widths"], n_curve)
    ens.init_random(seed=config["seed"])
    h = curve(ens, 0.0)
    ax.plot(h.epoch[1:], np.median(h.test_mse[1:], axis=1), color="k", label="random init")
    for k, trap_beta in enumerate(config["trap_betas"]):
        base = prepared[(trap_beta, False)][0]
        for mech, ls in (("noise", "-"), ("residual", "-."), ("pure SGD", "--")):
            ens = Ensemble(config["widths"], n_curve)
            ens.set_params(base.params[:n_curve])
            if mech == "residual":
                _add_residual(ens, float(config["residual"]), config["seed"] + 5)
            temp = float(config["temperature"]) if mech == "noise" else 0.0
            h = curve(ens, temp)
            c = f"C{k}"
            ax.plot(
                h.epoch[1:],
                np.median(h.test_mse[1:], axis=1),
                ls,
                color=c,
                label=f"{'rank-1' if k == 0 else 'rank-0'} trap (from beta={trap_beta}), {mech}",
            )
            if mech == "noise":
                ax.fill_between(
                    h.epoch[1:],
                    *np.percentile(h.test_mse[1:], [10, 90], axis=1),
                    color=c,
                    alpha=0.2,
                    lw=0,
                )
    levels = theory.phase_diagram(data.eta_hat, [beta], depth, dataset=data)
    for r in range(data.n_modes + 1):
        col = f"test_mse_rank{r}"
        if col in levels:
            ax.axhline(float(levels[col].iloc[0]), color="0.7", lw=0.7, ls=":")
    ax.set(
        xscale="log",
        xlabel="epoch",
        ylabel="test MSE",
        title=rf"test MSE at $\beta$ = {beta} (median, 10-90% band), noise T = "
        f"{config['temperature']}, residual {config['residual']}",
    )
    ax.legend(fontsize=7, frameon=False)
    ax = axes[1]
    sub = trajectories[(trajectories.beta == beta)]
    curves = {}
    for (trap, mech, stage), g in sub.groupby(["trap", "mechanism", "stage"]):
        curves[f"{trap}, {mech}, escape of {stage}"] = (
            g.time_epochs.to_numpy(),
            g.escaped.to_numpy(),
        )
    from grokescape.stats_plots import plot_survival

    plot_survival(curves, ax=ax, log=False)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, config["epochs"])
    ax.set(
        xlabel="epoch",
        title=rf"survival in the trap, $\beta$ = {beta} (Kaplan-Meier; flat = no escape)",
    )
    ax.legend(fontsize=6, frameon=False, ncol=2)
    res.figures["trapping"] = fig

    # claims
    conv = res.tables["random_init"]
    res.claims.append(
        Claim(
            NAME,
            "random init converges",
            "~10 epochs",
            f"{fmt(conv.epochs_to_90pct_median.iloc[0])} epochs (median to 90% of the MSE drop)",
            f"{config['members']} members",
            REPRODUCED if conv.epochs_to_90pct_median.iloc[0] <= 20 else NOT_REPRODUCED,
        )
    )
    main = summary[(summary.beta == config["betas"][0]) & (summary.trap == "rank-1")]
    pure = main[main.mechanism == "pure SGD"]
    if len(pure):
        p = pure.iloc[0]
        others = "; ".join(
            f"{r.mechanism}: {r.escaped}/{r.n} escaped, tau = {fmt(r.mean_tau_epochs)} epochs"
            for r in main.itertuples()
            if r.mechanism != "pure SGD"
        )
        res.claims.append(
            Claim(
                NAME,
                "rank-1 trap escapes (beta 0.32, lr 0.08, B 64)",
                "after ~5500 epochs",
                f"pure SGD: {p.escaped}/{p.n} escaped in {config['epochs']} epochs. {others} "
                f"(budgets in the table)",
                f"{p.n} per mechanism",
                NOT_REPRODUCED if p.escaped == 0 else REPRODUCED,
                "pure SGD cannot leave the exact trap the protocol prepares; the paper's escape "
                "source is unstated (physics.md 7.6)",
            )
        )
    r0 = summary[(summary.beta == config["betas"][0]) & (summary.trap == "rank-0")]
    if len(r0):
        txt = "; ".join(
            f"{r.mechanism} ({r.escape_of}): {r.escaped}/{r.n}, tau = {fmt(r.mean_tau_epochs)}"
            for r in r0.itertuples()
        )
        pure0 = r0[r0.mechanism == "pure SGD"]
        res.claims.append(
            Claim(
                NAME,
                "rank-0 trap: staged escape",
                "> 7000 then > 10,000 epochs",
                txt,
                f"{config['members']} per mechanism",
                NOT_REPRODUCED if len(pure0) and pure0.escaped.sum() == 0 else REPRODUCED,
            )
        )
    res.values = {"summary": summary}
    res.markdown = (
        "Trap preparation (checkpoint protocol; residual = largest singular value of each layer "
        "beyond the trap's rank):\n\n"
        + markdown_table(res.tables["preparation"])
        + "\n\nEscapes within the budget (tau: censoring-aware mean escape time in epochs, "
        "events / time at risk, with its exact Poisson 95% interval):\n\n"
        + markdown_table(summary)
        + "\n\nRandom initialisation:\n\n"
        + markdown_table(res.tables["random_init"])
    )
    res.seconds = time.perf_counter() - tic
    return res
