"""The phase diagram with tanh hidden units, to test the paper's one-sentence claim that
nonlinear networks show "qualitatively identical first-order behaviour"."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from grokescape import theory
from grokescape.experiments.common import (
    CONFIRMED,
    REFUTED,
    Claim,
    ExperimentResult,
    fmt,
    markdown_table,
)
from grokescape.experiments.phase_diagram import LEARNED, drop_betas, plot, sweep

NAME = "nonlinear"


def run(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> ExperimentResult:
    tic = time.perf_counter()
    res = ExperimentResult(NAME, config)
    table, raw = sweep(config, "tanh", n_threads=n_threads, progress=progress)
    data = raw["data"]
    depth = len(config["widths"]) - 1
    drops = drop_betas(raw)
    n_up = raw["n_up"]
    lam = raw["lam"]
    # size of the jump at each member's drop: amplitude one grid step before the drop
    jumps = []
    betas = raw["betas"][:n_up]
    for i in range(data.n_modes):
        before = []
        for mem in range(lam.shape[1]):
            if np.isfinite(drops[mem, i]):
                k = int(np.flatnonzero(betas == drops[mem, i])[0])
                before.append(lam[k - 1, mem, i] if k > 0 else np.nan)
        jumps.append(float(np.nanmedian(before)) if before else np.nan)
    reentries = int(
        np.sum(np.any(lam[n_up:] > LEARNED, axis=0) & ~np.any(lam[n_up - 1] > LEARNED, axis=0))
    )
    beta_c = np.atleast_1d(theory.spinodal_beta(data.eta_hat, depth))
    summary = pd.DataFrame(
        {
            "mode": np.arange(data.n_modes),
            "eta_hat": data.eta_hat,
            "drop_median_tanh": np.nanmedian(drops, axis=0),
            "amplitude_before_drop": jumps,
            "beta_c_linear_theory": beta_c,
        }
    )
    res.tables["sweep"] = table
    res.tables["drops"] = summary
    res.figures["nonlinear_phase_diagram"] = plot(
        table, data, depth, "tanh hidden units, up and down sweep"
    )
    first_order = bool(np.all(np.asarray(jumps) > 2 * LEARNED))
    res.claims.append(
        Claim(
            NAME,
            "tanh: qualitatively identical first-order behaviour",
            "claimed, no numbers",
            "drops at "
            + ", ".join(fmt(d) for d in summary.drop_median_tanh)
            + " (linear theory beta_c "
            + ", ".join(fmt(b) for b in beta_c)
            + "); amplitude before the drop "
            + ", ".join(fmt(j) for j in jumps)
            + f"; {reentries} re-entries on the way down",
            f"{raw['members']} members",
            CONFIRMED if first_order and reentries == 0 else REFUTED,
            "first order = the mode's amplitude jumps from a finite value to ~0 at the drop; "
            "hysteresis = no re-entry",
        )
    )
    res.values = {"drops": drops, "jumps": jumps, "reentries": reentries}
    res.markdown = markdown_table(summary)
    res.seconds = time.perf_counter() - tic
    return res
