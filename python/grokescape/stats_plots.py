"""Plots of escape statistics: survival curves, escape-time histograms, Arrhenius plots.

Every function draws on the given Axes (a new figure when ``ax`` is None) and returns it;
none calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from grokescape import stats
from grokescape.stats import trajectories

__all__ = ["plot_arrhenius", "plot_escape_histogram", "plot_survival"]


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5.5, 4.0), layout="constrained")
    return ax


def _time_label(time: str) -> str:
    return r"time $t$" if time == "time" else f"{time}"


def _curves(
    data: Any, by: str | list[str] | None, time: str, confidence: float
) -> list[tuple[str | None, pd.DataFrame, Any]]:
    """(label, Kaplan-Meier curve, raw trajectories or None) for each curve to draw."""
    if isinstance(data, Mapping):
        out: list[tuple[str | None, pd.DataFrame, Any]] = []
        for label, item in data.items():
            (_, curve, raw), *_ = _curves(item, None, time, confidence)
            out.append((str(label), curve, raw))
        return out
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError("data: expected a (times, escaped) pair")
        raw = trajectories.check_arrays(*data)
        return [(None, stats.survival_curve(*raw, confidence=confidence), raw)]
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            "data: expected a trajectory DataFrame, a survival_curve DataFrame, a (times, "
            f"escaped) pair or a dict of them, got {type(data).__name__}"
        )
    if "survival" in data.columns:
        if by is not None:
            raise ValueError("by: only with a trajectory DataFrame, not a survival curve")
        return [(None, data, None)]
    if by is None:
        raw = trajectories.trajectories(data, None, time)
        return [(None, stats.survival_curve(*raw, confidence=confidence), raw)]
    keys = [by] if isinstance(by, str) else list(by)
    for k in keys:
        if k not in data.columns:
            raise ValueError(f"by: column {k!r} not in data (columns {list(data.columns)})")
    clean = trajectories.drop_diverged(data, stacklevel=5)
    out = []
    for key, group in clean.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
            for k, v in zip(keys, key, strict=True)
        )
        raw = trajectories.from_frame(group, time)
        out.append((label, stats.survival_curve(*raw, confidence=confidence), raw))
    return out


def plot_survival(
    data: Any,
    by: str | list[str] | None = None,
    *,
    ax: Any = None,
    log: bool = True,
    time: str = "time",
    fit: bool = False,
    confidence: float = 0.95,
    band: bool = True,
) -> Any:
    """Kaplan-Meier survival curves (fraction still trapped) with confidence bands.

    Parameters
    ----------
    data : DataFrame, tuple or dict
        A trajectory DataFrame (columns ``escaped`` and `time`), a
        :func:`~grokescape.stats.survival_curve` DataFrame, a ``(times, escaped)`` pair, or a
        dict ``label -> any of these`` for several curves.
    by : str or list of str, optional
        With a trajectory DataFrame: one curve per group of these columns.
    ax : matplotlib Axes, optional
        Where to draw; a new figure if None.
    log : bool
        Logarithmic survival axis, on which exponential waiting times give straight lines.
    time : str
        Time column of trajectory DataFrames.
    fit : bool
        Overlay the shifted exponential of :func:`~grokescape.stats.exponential_check`
        (needs trajectories, not precomputed curves), S(t0) exp(-r (t - t0)) for t >= t0.
    confidence : float
        Level of the bands.
    band : bool
        Draw the pointwise confidence bands.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    curves = _curves(data, by, time, confidence)
    for label, curve, raw in curves:
        t = curve["time"].to_numpy()
        line = ax.step(
            t, curve["survival"].to_numpy(), where="post", lw=1.6, label=label or "Kaplan-Meier"
        )[0]
        if band:
            ax.fill_between(
                t,
                curve["lower"].to_numpy(),
                curve["upper"].to_numpy(),
                step="post",
                color=line.get_color(),
                alpha=0.2,
                lw=0,
            )
        if fit:
            if raw is None:
                raise ValueError("fit: needs trajectories, not a precomputed survival curve")
            chk = stats.exponential_check(*raw)
            s0 = float(np.interp(chk.lag, t, curve["survival"].to_numpy()))
            tt = np.linspace(chk.lag, t.max(), 200)
            ax.plot(
                tt,
                s0 * np.exp(-chk.rate * (tt - chk.lag)),
                ls="--",
                lw=1.2,
                color=line.get_color(),
                label=rf"exponential: $t_0$ = {chk.lag:.3g}, $\hat r$ = {chk.rate:.3g}, "
                rf"$p$ = {chk.pvalue:.2g}",
            )
    if log:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_yscale("log", nonpositive="mask")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        low, high = ax.get_ylim()
        # within one decade the minor ticks are the only ones: label them plainly
        ax.yaxis.set_minor_formatter(plain if high / low < 10 else NullFormatter())
    else:
        ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(_time_label(time))
    ax.set_ylabel(r"survival $S(t)$ (fraction still trapped)")
    ax.set_xlim(left=0.0)
    if len(curves) > 1 or fit or curves[0][0]:
        ax.legend(
            fontsize="small",
            title=f"shaded: {confidence:.0%} band" if band else None,
            title_fontsize="small",
        )
    return ax


def plot_escape_histogram(
    times: ArrayLike | pd.DataFrame,
    escaped: ArrayLike | None = None,
    *,
    ax: Any = None,
    bins: int | str | ArrayLike = "auto",
    time: str = "time",
) -> Any:
    """Histogram of the escape times, with the censoring noted and the exponential overlay.

    The overlay is the number of escapes expected in each bin for a constant rate
    r = events / exposure given the trajectories observed at risk: r times the time at
    risk in the bin. It is censoring-aware (it bends down where runs leave the risk set)
    and reduces to n (exp(-r a) - exp(-r b)) without censoring.

    Parameters
    ----------
    times, escaped, time
        As in :func:`grokescape.stats.escape_rate`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure if None.
    bins : int, str or array_like
        Bins of the escaped times (numpy's ``histogram_bin_edges`` rules).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    t, e = trajectories.trajectories(times, escaped, time)
    res = stats.escape_rate(t, e)
    n_cens = int((~e).sum())
    if e.any():
        edges = np.histogram_bin_edges(t[e], bins=bins, range=(0.0, float(t[e].max())))
        ax.hist(t[e], bins=edges, color="C0", alpha=0.6, label=f"escaped ({int(e.sum())})")
        # time at risk inside each bin, summed over trajectories
        at_risk = np.clip(t[:, None] - edges[None, :-1], 0.0, np.diff(edges)[None, :]).sum(0)
        ax.stairs(
            res.rate * at_risk,
            edges,
            color="C3",
            lw=1.6,
            label=rf"exponential, $\hat r$ = {res.rate:.3g} (events/exposure)",
        )
    censor_times = np.unique(t[~e])
    if censor_times.size == 1:
        ax.axvline(censor_times[0], color="0.3", ls=":", lw=1.2, label="censoring time")
    ax.text(
        0.97,
        0.75,
        f"n = {t.size}\ncensored: {n_cens} ({n_cens / t.size:.0%})",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize="small",
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
    )
    ax.set_xlabel(_time_label(time) if time != "time" else r"escape time $t$")
    ax.set_ylabel("escapes per bin")
    ax.set_xlim(left=0.0)
    ax.legend(fontsize="small", loc="upper right")
    return ax


def plot_arrhenius(
    fit: stats.ArrheniusFit,
    *,
    ax: Any = None,
    theory: tuple[ArrayLike, ArrayLike] | Callable[[np.ndarray], ArrayLike] | None = None,
    theory_label: str = "theory",
    naive: bool = True,
) -> Any:
    r"""Arrhenius plot: ln tau against x with the censoring-aware and the naive fit.

    Parameters
    ----------
    fit : ArrheniusFit
        From :func:`grokescape.stats.arrhenius_fit`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure if None.
    theory : (x, ln tau) arrays or callable, optional
        A theory line, e.g. Kramers' ln tau(x); a callable gets an array of x.
    theory_label : str
        Legend entry of the theory line.
    naive : bool
        Also draw the naive fit (ln of the mean escaped time, censoring ignored): its
        points as open markers and its line dashed.

    Returns
    -------
    matplotlib Axes
    """
    if not isinstance(fit, stats.ArrheniusFit):
        raise TypeError(f"fit: expected an ArrheniusFit, got {type(fit).__name__}")
    ax = _axes(ax)
    pts = fit.points
    x = pts["x"].to_numpy()
    has = pts["events"].to_numpy() > 0
    lt, lo, hi = (pts[c].to_numpy() for c in ("ln_tau", "ln_tau_lower", "ln_tau_upper"))
    ax.errorbar(
        x[has],
        lt[has],
        yerr=[lt[has] - lo[has], hi[has] - lt[has]],
        fmt="o",
        color="C0",
        ms=5,
        capsize=3,
        label=rf"$\ln(\mathrm{{exposure}}/\mathrm{{events}})$, "
        rf"{fit.confidence:.0%} Garwood",
    )
    if (~has).any():
        ax.plot(
            x[~has],
            lo[~has],
            "^",
            color="C0",
            mfc="none",
            ms=7,
            label=r"no escape: lower bound on $\ln\tau$",
        )
    span = x.max() - x.min()
    xx = np.linspace(x.min() - 0.05 * span, x.max() + 0.05 * span, 200)
    ax.plot(
        xx,
        fit.ln_tau(xx),
        color="C0",
        lw=1.6,
        label=rf"censoring-aware fit: $\Delta E$ = {fit.dE:.3g} "
        rf"[{fit.dE_lower:.3g}, {fit.dE_upper:.3g}]",
    )
    if naive and np.isfinite(fit.naive_dE):
        nt = pts["naive_tau"].to_numpy()
        ok = np.isfinite(nt)
        ax.plot(
            x[ok],
            np.log(nt[ok]),
            "s",
            color="0.45",
            mfc="none",
            ms=5,
            label="ln(mean escaped time)",
        )
        ax.plot(
            xx,
            fit.naive_ln_tau(xx),
            ls="--",
            color="0.45",
            lw=1.3,
            label=rf"naive fit: $\Delta E$ = {fit.naive_dE:.3g}, "
            rf"$R^2$ = {fit.naive_r_squared:.3f}",
        )
    if theory is not None:
        if callable(theory):
            tx, ty = xx, np.asarray(theory(xx), dtype=np.float64)
        else:
            tx, ty = (np.asarray(v, dtype=np.float64) for v in theory)
            if tx.shape != ty.shape:
                raise ValueError(f"theory: x and ln tau shapes differ ({tx.shape}, {ty.shape})")
        ax.plot(tx, ty, ls=":", color="C3", lw=1.8, label=theory_label)
    ax.set_xlabel(fit.x)
    ax.set_ylabel(r"$\ln\tau$")
    ax.legend(fontsize="small")
    return ax
