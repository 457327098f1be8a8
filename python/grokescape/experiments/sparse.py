"""The sparse grokking curve (the paper's Fig. 1b): 25 training samples drawn from a pool
of 5000, 10,000 test samples, beta = 0.0025, lr = 0.1, started in a rank-1 trap; escape
when the second singular value of the end-to-end map exceeds 1e-3.

With n = 25 < B = 64 every step is a full-batch step (physics.md 7.7): there is no
minibatch noise, the dynamics is deterministic, and an exact trap never escapes. The delay
is set by the residual left in the unlearned directions, so it is measured as a function of
the residual's size (random off-manifold residuals, one direction per member).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from grokescape import traps
from grokescape.data import Dataset, teacher_data
from grokescape.ensemble import Ensemble
from grokescape.escape import ModeThreshold
from grokescape.experiments.common import (
    CONFIRMED,
    NOT_WELL_DEFINED,
    REFUTED,
    Claim,
    Computed,
    Report,
    fmt,
    markdown_table,
)
from grokescape.experiments.escape_sweep import EscapePoint, escape_sweep

NAME = "sparse-grokking"


def _rank1_trap(
    data: Dataset, config: dict[str, Any], n_members: int, residual: float, seed: int
) -> Ensemble:
    """The aligned rank-1 trap at the config's beta plus a random off-manifold residual."""
    ens = Ensemble(config["widths"], n_members)
    ens.set_weights(
        traps.aligned_weights(
            data,
            config["widths"],
            1,
            float(config["beta"]),
            residual=residual,
            residual_kind="random",
            n_members=n_members,
            seed=seed,
        )
    )
    return ens


def compute(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> Computed:
    """Escape epochs against the residual's size, a determinism check, and the curves.

    Returns table ``delay_vs_residual`` (per residual: n, escaped, median and 10th/90th
    percentiles of the escape epoch; the exact trap first) and ``trajectories``; values
    ``delays``, ``main`` (the curve residual's row), ``deterministic`` (two seeds give the
    same full-batch run), ``full_batch``, ``data``, ``curve`` (the History of the curve
    members, recorded at log-spaced epochs), ``plateau_train`` and ``plateau_test`` (their
    MSE a tenth of the way into the records).
    """
    data = teacher_data(
        config["eta"],
        config["n_train"],
        config["n_test"],
        seed=config["data_seed"],
        pool=config["pool"],
    )
    beta, lr, m = float(config["beta"]), float(config["lr"]), int(config["members"])
    epochs = int(config["epochs"])
    b = int(config["batch_size"])
    full_batch = b >= data.n_train
    per_epoch = 1 if full_batch else data.n_train // b

    def points() -> Iterator[EscapePoint]:
        for r in [0.0, *config["residuals"]]:
            yield EscapePoint(
                labels={"residual": r},
                ensemble=_rank1_trap(data, config, m, r, config["seed"]),
                data=data,
                criterion=ModeThreshold(1, value=float(config["escape_threshold"]), on="sv"),
                max_steps=epochs * per_epoch,
                lr=lr,
                beta=beta,
                batch_size=b,
                seed=config["seed"] + 1,
            )

    sweep = escape_sweep(points(), n_threads=n_threads, progress=progress)
    delays = sweep.rates.rename(columns={"escape_epoch_q10": "q10", "escape_epoch_q90": "q90"})[
        ["residual", "n", "escaped", "median_escape_epoch", "q10", "q90"]
    ]

    # determinism: different seeds give the same trajectory (full batch)
    same = []
    for sd in (1, 2):
        e = _rank1_trap(data, config, 2, 1e-2, 3)
        e.train(data, 200, lr, beta, batch_size=b, seed=sd)
        same.append(e.params.copy())
    deterministic = bool(np.array_equal(same[0], same[1]))

    n_curve = int(config["curve_members"])
    ens = _rank1_trap(data, config, n_curve, float(config["curve_residual"]), config["seed"])
    marks = np.unique(np.round(np.geomspace(1, epochs, 80)).astype(int)) * per_epoch
    sched = [(int(n), lr, beta) for n in np.diff(np.r_[0, marks])]
    curve = ens.train_schedule(data, sched, batch_size=b, n_threads=n_threads, progress=progress)
    plateau = len(curve.step) // 10
    return Computed(
        tables={"delay_vs_residual": delays, "trajectories": sweep.trajectories},
        values={
            "delays": delays,
            "deterministic": deterministic,
            "main": delays[delays.residual == float(config["curve_residual"])],
            "full_batch": full_batch,
            "data": data,
            "curve": curve,
            "plateau_train": float(np.median(curve.train_mse[plateau])),
            "plateau_test": float(np.median(curve.test_mse[plateau])),
        },
    )


def plot(computed: Computed, config: dict[str, Any]) -> dict[str, Figure]:
    """The train and test curves (median, 10-90% band) and the escape epoch against the
    residual."""
    hist, delays = computed.values["curve"], computed.tables["delay_vs_residual"]
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
        title=f"n = {computed.values['data'].n_train} of {config['pool']}, residual "
        f"{config['curve_residual']} (median, 10-90%, {config['curve_members']} members)",
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
        ylabel=rf"escape epoch ($\sigma_2 >$ {config['escape_threshold']:g})",
        title="delay is set by the residual",
    )
    return {"sparse_grokking": fig}


def report(computed: Computed, config: dict[str, Any]) -> Report:
    """The escape epoch beside the paper's, the plateau and the full-batch point."""
    v = computed.values
    delays = v["delays"]
    r0 = delays[delays.residual == 0.0].iloc[0]
    deterministic, full_batch = v["deterministic"], v["full_batch"]
    claims = [
        Claim(
            NAME,
            "escape epoch (sigma_2 > 1e-3)",
            "~1500 epochs",
            "; ".join(
                f"residual {fmt(r.residual)}: {fmt(r.median_escape_epoch)}"
                for r in delays.itertuples()
            )
            + f"; exact trap: {r0.escaped}/{r0.n} escaped",
            f"{config['members']} per residual",
            NOT_WELL_DEFINED,
            "the delay is set by the unstated residual, not by noise",
        ),
        Claim(
            NAME,
            "plateau: train MSE < test MSE",
            "yes",
            f"train {v['plateau_train']:.3f} vs test {v['plateau_test']:.3f}",
            f"{config['curve_members']} members",
            CONFIRMED if v["plateau_train"] < v["plateau_test"] else REFUTED,
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
    data = v["data"]
    markdown = (
        f"Data: {data.n_train} of a pool of {config['pool']}, {data.n_test} test samples, "
        "eta_hat = "
        f"{np.round(data.eta_hat, 3).tolist()} (strongly off eta with n = 25).\n\n"
        + markdown_table(delays)
    )
    return Report(claims, markdown)
