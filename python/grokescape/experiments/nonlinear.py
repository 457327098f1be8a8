"""The phase diagram with tanh hidden units, to test the paper's one-sentence claim that
nonlinear networks show "qualitatively identical first-order behaviour"."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from grokescape import theory
from grokescape.experiments.common import (
    CONFIRMED,
    REFUTED,
    Claim,
    Computed,
    Report,
    fmt,
    markdown_table,
)
from grokescape.experiments.phase_diagram import (
    LEARNED,
    drop_betas,
    plot_sweep,
    reentries,
    sweep,
)

NAME = "nonlinear"


def compute(
    config: dict[str, Any], *, n_threads: int | None = None, progress: bool = False
) -> Computed:
    """The tanh network's up-and-down sweep, its drops and the jump at each drop.

    Returns tables ``sweep`` (:func:`~grokescape.experiments.phase_diagram.sweep`) and
    ``drops`` (per mode: median drop beta, median amplitude one grid step before the drop,
    the linear theory's beta_c); values ``drops`` (M, modes), ``jumps`` (that amplitude
    per mode), ``reentries``, ``beta_c``, ``eta_hat`` and ``members``.
    """
    table, raw = sweep(config, "tanh", n_threads=n_threads, progress=progress)
    data = raw["data"]
    depth = len(config["widths"]) - 1
    drops = drop_betas(raw)
    lam = raw["lam"]
    # size of the jump at each member's drop: amplitude one grid step before the drop
    jumps = []
    betas = raw["betas"][: raw["n_up"]]
    for i in range(data.n_modes):
        before = []
        for mem in range(lam.shape[1]):
            if np.isfinite(drops[mem, i]):
                k = int(np.flatnonzero(betas == drops[mem, i])[0])
                before.append(lam[k - 1, mem, i] if k > 0 else np.nan)
        jumps.append(float(np.nanmedian(before)) if before else np.nan)
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
    return Computed(
        tables={"sweep": table, "drops": summary},
        values={
            "drops": drops,
            "jumps": jumps,
            "reentries": reentries(raw),
            "beta_c": beta_c,
            "eta_hat": data.eta_hat,
            "members": raw["members"],
        },
    )


def plot(computed: Computed, config: dict[str, Any]) -> dict[str, Figure]:
    """The phase diagram of the tanh network."""
    fig = plot_sweep(
        computed.tables["sweep"],
        computed.values["eta_hat"],
        len(config["widths"]) - 1,
        "tanh hidden units, up and down sweep",
    )
    return {"nonlinear_phase_diagram": fig}


def report(computed: Computed, config: dict[str, Any]) -> Report:
    """First order (a finite jump at each drop) and hysteresis (no re-entry)."""
    v = computed.values
    summary = computed.tables["drops"]
    jumps, n_reentries = v["jumps"], v["reentries"]
    first_order = bool(np.all(np.asarray(jumps) > 2 * LEARNED))
    claim = Claim(
        NAME,
        "tanh: qualitatively identical first-order behaviour",
        "claimed, no numbers",
        "drops at "
        + ", ".join(fmt(d) for d in summary.drop_median_tanh)
        + " (linear theory beta_c "
        + ", ".join(fmt(b) for b in v["beta_c"])
        + "); amplitude before the drop "
        + ", ".join(fmt(j) for j in jumps)
        + f"; {n_reentries} re-entries on the way down",
        f"{v['members']} members",
        CONFIRMED if first_order and n_reentries == 0 else REFUTED,
        "first order = the mode's amplitude jumps from a finite value to ~0 at the drop; "
        "hysteresis = no re-entry",
    )
    return Report([claim], markdown_table(summary))
