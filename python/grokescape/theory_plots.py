"""Figures of the exact per-mode theory (:mod:`grokescape.theory`).

Every function draws on the Axes it is given (or on a new figure when ``ax`` is None) and
returns that Axes; nothing is shown and no global style is changed. Each plotted line
carries a ``gid`` naming what it is (e.g. ``"curve:beta=0.32"``, ``"learned:eta=0.8"``),
so the plotted numbers can be read back with ``line.get_xydata()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from grokescape import _checks, theory

__all__ = ["find_line", "plot_bifurcation", "plot_landscape", "plot_phase_diagram"]

_N_GRID = 801


def _axes(ax: Axes | None, size: tuple[float, float] = (5.0, 3.6)) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _colors(n: int, cmap: str = "viridis") -> list[Any]:
    cm = plt.get_cmap(cmap)
    return [cm(x) for x in (np.linspace(0.05, 0.8, n) if n > 1 else [0.35])]


def _fmt(x: float) -> str:
    return f"{x:g}"


def find_line(ax: Axes, gid: str) -> Line2D:
    """The line of `ax` whose gid is `gid` (KeyError when there is none)."""
    for line in ax.lines:
        if line.get_gid() == gid:
            return line
    raise KeyError(f"gid: no line {gid!r} on these axes")


def plot_landscape(
    eta: float = 0.8,
    betas: Sequence[float] = (0.29, 0.32, 0.35),
    depth: int = 3,
    ax: Axes | None = None,
    convention: str = "consistent",
    coordinate: str = "lambda",
    legend: bool = True,
) -> Axes:
    """The per-mode loss relative to the trap, E - E(0), for a few betas (paper Fig. 2a).

    Parameters
    ----------
    eta : float
        Mode strength (> 0).
    betas : sequence of float
        Weight decays, one curve each.
    depth : int
        Number of weight matrices L >= 1.
    ax : matplotlib.axes.Axes, optional
    convention : {"consistent", "as_printed"}
        Form of the regulariser (:func:`grokescape.theory.energy`).
    coordinate : {"lambda", "s"}
        Plot against the end-to-end amplitude lambda or the per-layer amplitude s.
    legend : bool
        Draw the legend, outside the axes on the right (the curves fill the inside).

    Returns
    -------
    matplotlib.axes.Axes
        Lines: one curve per beta (gid ``"curve:beta=<beta>"``), whose grid contains the
        stationary points exactly, then marker-only lines ``"trap"``, ``"saddle"`` and
        ``"minimum"`` holding the stationary points (x, E - E(0)) of every beta with
        that branch, in the order of `betas`.
    """
    if coordinate not in ("lambda", "s"):
        raise ValueError(f"coordinate: expected 'lambda' or 's', got {coordinate!r}")
    eta_f = float(eta)
    if not np.isfinite(eta_f) or eta_f <= 0:
        raise ValueError(f"eta: expected a finite value > 0, got {eta!r}")
    beta_list = [float(b) for b in np.atleast_1d(np.asarray(betas, dtype=float))]
    sp = theory.stationary_points(eta_f, np.asarray(beta_list), depth, convention)
    depth = sp.depth
    in_s = coordinate == "s"
    x_max = 1.05 * (eta_f ** (1.0 / depth) if in_s else eta_f)
    e0 = 0.5 * eta_f**2
    ax = _axes(ax)
    points: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("trap", "saddle", "minimum")
    }
    for beta, color, i in zip(
        beta_list, _colors(len(beta_list)), range(len(beta_list)), strict=True
    ):
        special = {
            "trap": sp.s_trap[i] if in_s else sp.trap[i],
            "saddle": sp.s_saddle[i] if in_s else sp.saddle[i],
            "minimum": sp.s_minimum[i] if in_s else sp.minimum[i],
        }
        # A grid dense near 0, where E(lambda) has its |lambda|^(2/L) cusp.
        grid = x_max * np.linspace(0.0, 1.0, _N_GRID) ** (1.0 if in_s else 2.0)
        extra = [v for v in special.values() if np.isfinite(v)]
        x = np.unique(np.concatenate([grid, extra]))
        if in_s:
            y = theory.energy_per_layer(x, eta_f, beta, depth, convention) - e0
        else:
            y = theory.energy(x, eta_f, beta, depth, convention) - e0
        ax.plot(
            x,
            y,
            color=color,
            lw=1.6,
            label=rf"$\beta = {_fmt(beta)}$",
            gid=f"curve:beta={_fmt(beta)}",
        )
        for kind, xv in special.items():
            if np.isfinite(xv):
                points[kind][0].append(float(xv))
                points[kind][1].append(float(y[np.searchsorted(x, xv)]))
    styles: dict[str, dict[str, Any]] = {
        "trap": {"marker": "s", "mfc": "white", "label": r"trap ($\lambda = 0$)"},
        "saddle": {"marker": "^", "mfc": "white", "label": "saddle (barrier top)"},
        "minimum": {"marker": "o", "mfc": "black", "label": "learned minimum"},
    }
    for kind, (xs, ys) in points.items():
        if xs:
            ax.plot(
                xs,
                ys,
                ls="none",
                mec="black",
                ms=6,
                zorder=3,
                clip_on=False,
                gid=kind,
                **styles[kind],
            )
    xlabel = r"per-layer amplitude $s$" if in_s else r"end-to-end amplitude $\lambda$"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$E(s) - E(0)$" if in_s else r"$E(\lambda) - E(0)$")
    ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
    ax.set_xlim(0.0, x_max)
    # Show every stationary point with room above for the barrier, not the steep walls.
    marked = [y for _, ys in points.values() for y in ys]
    top = max(max(marked, default=0.0), 0.0)
    bottom = min(min(marked, default=0.0), 0.0)
    span = max(top - bottom, 1e-12)
    ax.set_ylim(bottom - 0.12 * span, top + 0.25 * span)
    title = "as printed (Eq. 1)" if convention == "as_printed" else "consistent"
    ax.set_title(rf"$\eta = {_fmt(eta_f)}$, $L = {depth}$ ({title} regulariser)", fontsize="medium")
    if legend:
        ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def _beta_grid(etas: np.ndarray, depth: int, betas: Any) -> np.ndarray:
    if betas is not None:
        grid = np.asarray(betas, dtype=float)
    else:
        top = np.max(theory.spinodal_beta(etas, depth)) if depth >= 2 else np.max(np.abs(etas))
        grid = np.linspace(0.0, 1.2 * float(top), _N_GRID)
    # Put every spinodal on the grid so the branches meet at the fold.
    bc = np.atleast_1d(theory.spinodal_beta(etas, depth))
    bc = bc[np.isfinite(bc) & (bc >= grid.min()) & (bc <= grid.max())]
    return np.unique(np.concatenate([grid, bc]))


def plot_bifurcation(
    etas: Sequence[float] = (0.9, 0.8),
    depth: int = 3,
    betas: Sequence[float] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Stationary amplitudes lambda against beta: the bifurcation diagram (paper Fig. 4).

    Stable branches are solid (the learned minimum, and the trap lambda = 0 for L >= 3),
    the unstable saddle branch dashed; a circle marks each spinodal (fold) beta_c and a
    dotted vertical segment each coexistence beta*, spanning the jump of the order
    parameter there.

    Parameters
    ----------
    etas : sequence of float
        Mode strengths (> 0), one colour each.
    depth : int
        Number of weight matrices L >= 1.
    betas : sequence of float, optional
        Grid of weight decays (default: 0 to 1.2 max beta_c); the spinodals are added.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Lines (gids): ``"trap"`` (L >= 3), then per eta ``"learned:eta=<eta>"``,
        ``"saddle:eta=<eta>"`` (L >= 3), ``"spinodal:eta=<eta>"`` (one point (beta_c,
        lambda_c), L >= 2) and ``"coexistence:eta=<eta>"`` (two points (beta*, 0) and
        (beta*, lambda_min(beta*)), L >= 3). Points without the branch are left out.
    """
    eta_a = np.atleast_1d(np.asarray(etas, dtype=float))
    if eta_a.ndim != 1 or np.any(~np.isfinite(eta_a) | (eta_a <= 0)):
        raise ValueError(f"etas: expected finite values > 0, got {etas!r}")
    depth = _checks.depth(depth)
    grid = _beta_grid(eta_a, depth, betas)
    ax = _axes(ax)
    if depth >= 3:
        ax.plot(grid, np.zeros_like(grid), color="black", lw=1.6, gid="trap")
    for eta, color in zip(eta_a, _colors(len(eta_a), "plasma"), strict=True):
        sp = theory.stationary_points(eta, grid, depth)
        tag = f"eta={_fmt(eta)}"
        has = np.isfinite(sp.minimum)
        ax.plot(
            grid[has],
            sp.minimum[has],
            color=color,
            lw=1.8,
            label=rf"$\eta = {_fmt(eta)}$",
            gid=f"learned:{tag}",
        )
        if depth >= 3:
            has = np.isfinite(sp.saddle)
            ax.plot(grid[has], sp.saddle[has], color=color, lw=1.4, ls="--", gid=f"saddle:{tag}")
        if depth >= 2:
            bc = float(theory.spinodal_beta(eta, depth))
            lam_c = float(theory.stationary_points(eta, bc, depth).minimum)
            ax.plot(
                [bc],
                [lam_c],
                ls="none",
                marker="o",
                ms=6,
                mfc="white",
                mec=color,
                mew=1.5,
                zorder=3,
                gid=f"spinodal:{tag}",
            )
        if depth >= 3:
            bs = float(theory.coexistence_beta(eta, depth))
            lam_s = float(theory.stationary_points(eta, bs, depth).minimum)
            ax.plot(
                [bs, bs],
                [0.0, lam_s],
                color=color,
                lw=1.0,
                ls=":",
                zorder=1,
                gid=f"coexistence:{tag}",
            )
    ax.set_xlim(grid.min(), grid.max())
    ax.set_ylim(bottom=-0.03 * float(np.max(eta_a)))
    ax.set_xlabel(r"weight decay $\beta$")
    ax.set_ylabel(r"stationary amplitude $\lambda$")
    ax.set_title(f"$L = {depth}$", fontsize="medium")
    handles, labels = ax.get_legend_handles_labels()
    proxies = [Line2D([], [], color="0.3", lw=1.6, label="stable")]
    if depth >= 3:
        proxies.append(Line2D([], [], color="0.3", lw=1.4, ls="--", label="saddle (unstable)"))
    if depth >= 2:
        proxies.append(
            Line2D(
                [], [], ls="none", marker="o", mfc="white", mec="0.3", label=r"spinodal $\beta_c$"
            )
        )
    if depth >= 3:
        proxies.append(Line2D([], [], color="0.3", lw=1.0, ls=":", label=r"coexistence $\beta^*$"))
    ax.legend(
        [*handles, *proxies],
        [*labels, *(str(p.get_label()) for p in proxies)],
        frameon=False,
        fontsize="small",
    )
    return ax


def plot_phase_diagram(
    etas: Sequence[float] = (0.9, 0.8),
    betas: Sequence[float] | None = None,
    depth: int = 3,
    ax: Axes | None = None,
) -> Axes:
    """Rank of the global minimum and of the highest locally stable state against beta.

    For L >= 3 the trap of every mode stays locally stable, so every rank between 0 and
    the highest stable rank is a local minimum; the shaded hysteresis windows
    [beta*_i, beta_c_i] are where mode i is learned in a metastable state only.

    Parameters
    ----------
    etas : sequence of float
        Mode strengths (> 0).
    betas : sequence of float, optional
        Grid of weight decays (default: 0 to 1.2 max beta_c).
    depth : int
        Number of weight matrices L >= 1.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Lines (gids): ``"global_rank"`` and ``"max_stable_rank"``, both (beta, rank) on
        the grid, drawn as steps. Patches: one shaded window per mode with a learned
        metastable range, gid ``"hysteresis:eta=<eta>"``.
    """
    eta_a = np.atleast_1d(np.asarray(etas, dtype=float))
    if eta_a.ndim != 1 or np.any(~np.isfinite(eta_a) | (eta_a <= 0)):
        raise ValueError(f"etas: expected finite values > 0, got {etas!r}")
    depth = _checks.depth(depth)
    grid = _beta_grid(eta_a, depth, betas)
    df = theory.phase_diagram(eta_a, grid, depth)
    per_beta = df.groupby("beta", sort=True)[["global_rank", "max_stable_rank"]].first()
    ax = _axes(ax)
    colors = _colors(len(eta_a), "plasma")
    handles: list[Any] = []
    if depth >= 3:
        for eta, color in zip(eta_a, colors, strict=True):
            bs = float(theory.coexistence_beta(eta, depth))
            bc = float(theory.spinodal_beta(eta, depth))
            patch = ax.axvspan(
                bs, bc, color=color, alpha=0.18, lw=0, gid=f"hysteresis:eta={_fmt(eta)}"
            )
            handles.append(
                Patch(color=color, alpha=0.3, label=rf"$[\beta^*, \beta_c]$, $\eta = {_fmt(eta)}$")
            )
            del patch
    (g,) = ax.plot(
        per_beta.index,
        per_beta["global_rank"],
        drawstyle="steps-post",
        color="black",
        lw=1.8,
        label="global minimum",
        gid="global_rank",
    )
    (m,) = ax.plot(
        per_beta.index,
        per_beta["max_stable_rank"],
        drawstyle="steps-post",
        color="tab:red",
        lw=1.4,
        ls="--",
        label="highest locally stable rank",
        gid="max_stable_rank",
    )
    ax.set_xlim(grid.min(), grid.max())
    ax.set_ylim(-0.15, len(eta_a) + 0.35)
    ax.set_yticks(np.arange(len(eta_a) + 1))
    ax.set_xlabel(r"weight decay $\beta$")
    ax.set_ylabel("rank (modes learned)")
    ax.set_title(f"$L = {depth}$", fontsize="medium")
    ax.legend(
        [g, m, *handles],
        [str(g.get_label()), str(m.get_label()), *(str(h.get_label()) for h in handles)],
        frameon=False,
        fontsize="small",
    )
    return ax
