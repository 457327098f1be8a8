"""The sparse grokking curve (the paper's Fig. 1b): 25 training samples drawn from a pool
of 5000, 10,000 test samples, beta = 0.0025, lr = 0.1, started in a rank-1 trap; escape
when the second singular value of the end-to-end map exceeds 1e-3.

With n = 25 < B = 64 every step is a full-batch step (physics.md 7.7): there is no
minibatch noise, the dynamics is deterministic, and an exact trap never escapes. The delay
is set by the residual left in the unlearned directions, so it is measured as a function of
the residual's size (random off-manifold residuals, one direction per member).
"""

from __future__ import annotations

import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from grokescape import traps
from grokescape.data import teacher_data
from grokescape.ensemble import Ensemble
from grokescape.escape import ModeThreshold
from grokescape.experiments.common import (
    CONFIRMED,
    NOT_WELL_DEFINED,
    REFUTED,
    Claim,
    ExperimentResult,
    fmt,
    markdown_table,
)

NAME = "sparse-grokking"


def run(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> ExperimentResult:
    tic = time.perf_counter()
    res = ExperimentResult(NAME, config)
    data = teacher_data(
        config["eta"],
        config["n_train"],
        config["n_test"],
        seed=config["data_seed"],
        pool=config["pool"],
    )
    widths, beta, lr, m = (
        config["widths"],
        float(config["beta"]),
        float(config["lr"]),
        int(config["members"]),
    )
    epochs = int(config["epochs"])
    b = int(config["batch_size"])
    full_batch = b >= data.n_train
    per_epoch = 1 if full_batch else data.n_train // b
    rows, frames = [], []
    for r in [0.0, *config["residuals"]]:
        ens = Ensemble(widths, m)
        ens.set_weights(
            traps.aligned_weights(
                data,
                widths,
                1,
                beta,
                residual=r,
                residual_kind="random",
                n_members=m,
                seed=config["seed"],
            )
        )
        out = ens.run_until_escape(
            data,
            ModeThreshold(1, value=1e-3, on="sv"),
            epochs * per_epoch,
            lr,
            beta,
            batch_size=b,
            seed=config["seed"] + 1,
            n_threads=n_threads,
            progress=progress,
        )
        t = out.table.assign(residual=r)
        frames.append(t)
        esc = t[t.escaped]
        rows.append(
            {
                "residual": r,
                "n": len(t),
                "escaped": int(t.escaped.sum()),
                "median_escape_epoch": float(esc.escape_epoch.median()) if len(esc) else np.nan,
                "q10": float(esc.escape_epoch.quantile(0.1)) if len(esc) else np.nan,
                "q90": float(esc.escape_epoch.quantile(0.9)) if len(esc) else np.nan,
            }
        )
    delays = pd.DataFrame(rows)
    res.tables["delay_vs_residual"] = delays
    res.tables["trajectories"] = pd.concat(frames, ignore_index=True)

    # determinism: different seeds give the same trajectory (full batch)
    same = []
    for sd in (1, 2):
        e = Ensemble(widths, 2)
        e.set_weights(
            traps.aligned_weights(
                data, widths, 1, beta, residual=1e-2, residual_kind="random", n_members=2, seed=3
            )
        )
        e.train(data, 200, lr, beta, batch_size=b, seed=sd)
        same.append(e.params.copy())
    deterministic = bool(np.array_equal(same[0], same[1]))

    # curves
    n_curve = int(config["curve_members"])
    ens = Ensemble(widths, n_curve)
    ens.set_weights(
        traps.aligned_weights(
            data,
            widths,
            1,
            beta,
            residual=float(config["curve_residual"]),
            residual_kind="random",
            n_members=n_curve,
            seed=config["seed"],
        )
    )
    marks = np.unique(np.round(np.geomspace(1, epochs, 80)).astype(int)) * per_epoch
    sched = [(int(n), lr, beta) for n in np.diff(np.r_[0, marks])]
    hist = ens.train_schedule(data, sched, batch_size=b, n_threads=n_threads, progress=progress)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    ax = axes[0]
    for name, arr, c in (("train", hist.train_mse, "C0"), ("test", hist.test_mse, "C3")):
        ax.plot(hist.epoch[1:], np.median(arr[1:], axis=1), color=c, label=f"{name} MSE (median)")
        ax.fill_between(
            hist.epoch[1:], *np.percentile(arr[1:], [10, 90], axis=1), color=c, alpha=0.2, lw=0
        )
    ax.set(
        xlabel="epoch",
        ylabel="MSE",
        xscale="log",
        title=f"n = {data.n_train} of {config['pool']}, residual {config['curve_residual']} "
        f"(median, 10-90%, {n_curve} members)",
    )
    ax.legend(frameon=False)
    ax = axes[1]
    ok = delays[delays.escaped > 0]
    ax.errorbar(
        ok.residual,
        ok.median_escape_epoch,
        yerr=[ok.median_escape_epoch - ok.q10, ok.q90 - ok.median_escape_epoch],
        fmt="o-",
        capsize=3,
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="residual (Frobenius norm per layer)",
        ylabel=r"escape epoch ($\sigma_2 > 10^{-3}$)",
        title="delay is set by the residual",
    )
    res.figures["sparse_grokking"] = fig

    plateau = hist.train_mse[len(hist.step) // 10]
    plateau_t = hist.test_mse[len(hist.step) // 10]
    r0 = delays[delays.residual == 0.0].iloc[0]
    main = delays[delays.residual == float(config["curve_residual"])]
    res.claims += [
        Claim(
            NAME,
            "escape epoch (sigma_2 > 1e-3)",
            "~1500 epochs",
            "; ".join(
                f"residual {fmt(r.residual)}: {fmt(r.median_escape_epoch)}"
                for r in delays.itertuples()
            )
            + f"; exact trap: {r0.escaped}/{r0.n} escaped",
            f"{m} per residual",
            NOT_WELL_DEFINED,
            "the delay is set by the unstated residual, not by noise",
        ),
        Claim(
            NAME,
            "plateau: train MSE < test MSE",
            "yes",
            f"train {np.median(plateau):.3f} vs test {np.median(plateau_t):.3f}",
            f"{n_curve} members",
            CONFIRMED if np.median(plateau) < np.median(plateau_t) else REFUTED,
        ),
        Claim(
            NAME,
            "n = 25 < B = 64 is full-batch GD (physics.md 7.7)",
            "minibatch SGD",
            f"{'full batch' if full_batch else 'minibatch'}; runs with different seeds are "
            f"{'bit-identical' if deterministic else 'different'}",
            "2 members x 2 seeds",
            CONFIRMED if full_batch and deterministic else REFUTED,
        ),
    ]
    res.values = {"delays": delays, "deterministic": deterministic, "main": main}
    res.markdown = (
        f"Data: {data.n_train} of a pool of {config['pool']}, {data.n_test} test samples, "
        "eta_hat = "
        f"{np.round(data.eta_hat, 3).tolist()} (strongly off eta with n = 25).\n\n"
        + markdown_table(delays)
    )
    res.seconds = time.perf_counter() - tic
    return res
