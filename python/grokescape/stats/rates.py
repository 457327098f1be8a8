"""Escape rates with exact (Garwood) intervals, Kaplan-Meier survival curves and a test of
exponential waiting times, all censoring-aware (see :mod:`grokescape.stats`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy import stats as sps

from grokescape.stats.trajectories import (
    check_confidence,
    from_frame,
    trajectories,
)

__all__ = [
    "EscapeRate",
    "ExponentialCheck",
    "escape_rate",
    "escape_rate_table",
    "exponential_check",
    "garwood_interval",
    "survival_curve",
]

Array = NDArray[np.float64]


# ---------------------------------------------------------------------------- escape rates
def garwood_interval(
    events: ArrayLike, exposure: ArrayLike = 1.0, confidence: float = 0.95
) -> tuple[Array, Array]:
    """Exact (Garwood) confidence interval of a Poisson rate.

    Parameters
    ----------
    events : array_like of int
        Observed counts D >= 0.
    exposure : array_like
        Exposure E > 0 (total time at risk); the interval is on the rate D / E.
    confidence : float
        Two-sided confidence level.

    Returns
    -------
    lower, upper : ndarray (numpy float for scalar inputs)
        ``chi2.ppf(alpha/2, 2D) / (2E)`` (0 for D = 0) and ``chi2.ppf(1 - alpha/2, 2D + 2)
        / (2E)``, alpha = 1 - confidence. Each tail has probability at most alpha/2, so the
        interval covers the true rate with probability >= confidence for fixed exposure.
    """
    confidence = check_confidence(confidence)
    d = np.asarray(events, dtype=np.float64)
    e = np.asarray(exposure, dtype=np.float64)
    if np.any(d < 0) or not np.all(np.isfinite(d)):
        raise ValueError("events: expected finite counts >= 0")
    if np.any(e <= 0) or not np.all(np.isfinite(e)):
        raise ValueError("exposure: expected finite values > 0")
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):
        lower = np.where(d > 0, sps.chi2.ppf(alpha / 2, 2 * np.maximum(d, 1)) / (2 * e), 0.0)
    upper = sps.chi2.ppf(1 - alpha / 2, 2 * d + 2) / (2 * e)
    # [()] turns 0-d results (scalar inputs) into numpy scalars, as numpy's ufuncs do
    return np.asarray(lower, dtype=np.float64)[()], np.asarray(upper, dtype=np.float64)[()]


@dataclass(frozen=True)
class EscapeRate:
    """Escape rate of an ensemble from events and time at risk.

    Attributes
    ----------
    n : int
        Trajectories used (diverged ones excluded).
    events : int
        Escapes D.
    exposure : float
        Total time at risk E = sum of all times (escape times and censoring times).
    rate, rate_lower, rate_upper : float
        D / E and its exact Poisson (Garwood) interval.
    tau, tau_lower, tau_upper : float
        Mean escape time 1 / rate and its interval (the rate interval inverted; tau and
        tau_upper are inf when there is no escape).
    censored_fraction : float
        Fraction of trajectories still trapped at the end.
    confidence : float
        Level of the intervals.
    """

    n: int
    events: int
    exposure: float
    rate: float
    rate_lower: float
    rate_upper: float
    tau: float
    tau_lower: float
    tau_upper: float
    censored_fraction: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        """The fields as a dict (one row of :func:`escape_rate_table`)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _rate_from_counts(n: int, events: int, exposure: float, confidence: float) -> EscapeRate:
    if exposure <= 0:
        raise ValueError("times: the total time at risk is zero; no rate can be estimated")
    lo, hi = garwood_interval(events, exposure, confidence)
    rate = events / exposure
    with np.errstate(divide="ignore"):
        tau = float(np.float64(1.0) / rate)
        tau_lower, tau_upper = float(1.0 / hi), float(np.float64(1.0) / lo)
    return EscapeRate(
        n=int(n),
        events=int(events),
        exposure=float(exposure),
        rate=float(rate),
        rate_lower=float(lo),
        rate_upper=float(hi),
        tau=tau,
        tau_lower=tau_lower,
        tau_upper=tau_upper,
        censored_fraction=1.0 - events / n,
        confidence=confidence,
    )


def escape_rate(
    times: ArrayLike | pd.DataFrame,
    escaped: ArrayLike | None = None,
    confidence: float = 0.95,
    *,
    time: str = "time",
) -> EscapeRate:
    """Escape rate = escapes / total time at risk, with an exact Poisson interval.

    Parameters
    ----------
    times : array_like, shape (n,), or DataFrame
        Per trajectory: the escape time if it escaped, otherwise the time it was at risk
        before censoring. Or a trajectory DataFrame (columns ``escaped`` and `time`;
        rows with ``diverged`` True are dropped with a warning).
    escaped : array_like of bool, shape (n,)
        Whether each trajectory escaped (omit with a DataFrame).
    confidence : float
        Level of the Garwood interval.
    time : str
        Time column of a DataFrame.

    Returns
    -------
    EscapeRate

    Notes
    -----
    For exponential waiting times with any censoring that does not depend on the future,
    D / E is the maximum-likelihood rate, whereas the mean of the escaped times alone is
    biased low (the slow runs are the censored ones).
    """
    confidence = check_confidence(confidence)
    t, e = trajectories(times, escaped, time)
    return _rate_from_counts(t.size, int(e.sum()), float(t.sum()), confidence)


def escape_rate_table(
    data: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    time: str = "time",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """:func:`escape_rate` for each group of a trajectory DataFrame.

    Parameters
    ----------
    data : DataFrame
        One row per trajectory with columns ``escaped``, `time` and the `by` columns.
    by : str or list of str, optional
        Settings columns to group by (e.g. ``["temperature"]``); None: one row in all.
    time : str
        Time column.
    confidence : float
        Level of the Garwood intervals.

    Returns
    -------
    DataFrame
        One row per group: the `by` columns, then n, events, exposure, rate, rate_lower,
        rate_upper, tau, tau_lower, tau_upper, censored_fraction, confidence, n_diverged.
    """
    confidence = check_confidence(confidence)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data: expected a pandas DataFrame, got {type(data).__name__}")
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    for k in keys:
        if k not in data.columns:
            raise ValueError(f"by: column {k!r} not in data (columns {list(data.columns)})")
    diverged = (
        data["diverged"].fillna(False).astype(bool).to_numpy()
        if "diverged" in data.columns
        else np.zeros(len(data), dtype=bool)
    )
    if diverged.any():
        warnings.warn(
            f"data: {int(diverged.sum())} of {len(data)} trajectories diverged; they are "
            "excluded from the escape statistics (neither escapes nor clean censoring)",
            stacklevel=2,
        )
    rows = []
    frame = data.reset_index(drop=True)  # positions index the diverged mask
    groups = frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        mask = diverged[group.index.to_numpy()]
        clean = group.loc[~mask]
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        if len(clean) == 0:
            row.update(n=0, events=0, exposure=0.0)
        else:
            t, e = from_frame(clean, time)
            row.update(
                _rate_from_counts(t.size, int(e.sum()), float(t.sum()), confidence).to_dict()
            )
        row["n_diverged"] = int(mask.sum())
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- Kaplan-Meier
def survival_curve(
    times: ArrayLike | pd.DataFrame,
    escaped: ArrayLike | None = None,
    *,
    confidence: float = 0.95,
    method: Literal["log-log", "linear"] = "log-log",
    time: str = "time",
) -> pd.DataFrame:
    """Kaplan-Meier estimate of the probability to be still trapped at time t.

    Uses ``scipy.stats.ecdf`` on right-censored ``scipy.stats.CensoredData``.

    Parameters
    ----------
    times, escaped, time
        As in :func:`escape_rate`.
    confidence : float
        Level of the pointwise confidence band.
    method : {"log-log", "linear"}
        Band of ``EmpiricalDistributionFunction.confidence_interval``: "log-log"
        (default; stays inside (0, 1) and behaves on a log axis) or "linear" (Greenwood).

    Returns
    -------
    DataFrame
        Columns time, survival, lower, upper, at_risk, events: one row at t = 0
        (survival 1) and one per distinct observed time; survival is the value just after
        that time (a right-continuous step function). The band is NaN where it is
        undefined (survival 0).
    """
    confidence = check_confidence(confidence)
    if method not in ("log-log", "linear"):
        raise ValueError(f"method: expected 'log-log' or 'linear', got {method!r}")
    t, e = trajectories(times, escaped, time)
    res = sps.ecdf(sps.CensoredData(uncensored=t[e], right=t[~e]))
    q = np.asarray(res.sf.quantiles, dtype=np.float64)
    s = np.asarray(res.sf.probabilities, dtype=np.float64)
    if e.any():
        with warnings.catch_warnings():
            # scipy warns where the band is undefined (S = 0); we return NaN there
            warnings.simplefilter("ignore", RuntimeWarning)
            ci = res.sf.confidence_interval(confidence_level=confidence, method=method)
        lo = np.asarray(ci.low.probabilities, dtype=np.float64)
        hi = np.asarray(ci.high.probabilities, dtype=np.float64)
    else:
        lo = hi = np.ones_like(s)
    ts = np.sort(t)
    at_risk = t.size - np.searchsorted(ts, q, side="left")
    te = np.sort(t[e])
    events = np.searchsorted(te, q, side="right") - np.searchsorted(te, q, side="left")
    df = pd.DataFrame(
        {"time": q, "survival": s, "lower": lo, "upper": hi, "at_risk": at_risk, "events": events}
    )
    if q.size == 0 or q[0] > 0:
        start = pd.DataFrame(
            {
                "time": [0.0],
                "survival": [1.0],
                "lower": [1.0],
                "upper": [1.0],
                "at_risk": [t.size],
                "events": [0],
            }
        )
        df = pd.concat([start, df], ignore_index=True)
    return df


# ---------------------------------------------------------------------------- exponentiality
@dataclass(frozen=True)
class ExponentialCheck:
    """Likelihood-ratio test of exponential waiting times after a lag.

    Attributes
    ----------
    statistic : float
        2 (l_Weibull - l_exponential) on the times after the lag; asymptotically chi2(1)
        under the exponential null.
    pvalue : float
        chi2(1) survival function of the statistic.
    lag : float
        The lag t0 used (estimated or given).
    lag_estimated : bool
        Whether `lag` was estimated from the data.
    rate, rate_lower, rate_upper : float
        Escape rate after the lag (events / exposure beyond t0) with Garwood interval.
    weibull_shape : float
        Maximum-likelihood Weibull shape k of the times after the lag (k = 1: exponential;
        k > 1: hazard rising with time, e.g. a transient not yet over; k < 1: falling,
        e.g. a mixture of fast and slow trajectories).
    max_deviation : float
        Largest distance between the Kaplan-Meier curve of the times after the lag and the
        fitted exponential survival exp(-rate (t - t0)): descriptive, no p-value.
    n, events : int
        Trajectories and escapes entering the test (those still at risk after t0).
    """

    statistic: float
    pvalue: float
    lag: float
    lag_estimated: bool
    rate: float
    rate_lower: float
    rate_upper: float
    weibull_shape: float
    max_deviation: float
    n: int
    events: int


def _weibull_profile_loglik(log_k: float, log_t: Array, log_t_ev: Array, d: int) -> float:
    """Censored Weibull log-likelihood maximised over the scale, as a function of ln k.

    With the scale profiled out, lambda^k = sum_i t_i^k / D, and
    l(k) = D ln k - D ln(sum_i t_i^k / D) + (k - 1) sum_events ln t - D.
    """
    k = np.exp(log_k)
    # times are scaled so that max ln t = 0: the sum is >= 1 and cannot underflow
    log_sum = np.log(np.exp(k * log_t).sum())
    return float(d * log_k - d * (log_sum - np.log(d)) + (k - 1) * log_t_ev.sum() - d)


def exponential_check(
    times: ArrayLike | pd.DataFrame,
    escaped: ArrayLike | None = None,
    lag: float | None = None,
    *,
    confidence: float = 0.95,
    time: str = "time",
) -> ExponentialCheck:
    """Test that waiting times are exponential after a lag (a transient).

    Model: escapes cannot happen before t0, after it the hazard is a constant r
    (a shifted exponential). The alternative is a shifted Weibull with free shape k;
    the statistic is the censored-data likelihood ratio for k = 1, referred to chi2(1).

    Parameters
    ----------
    times, escaped, time
        As in :func:`escape_rate`.
    lag : float, optional
        The lag t0. None (default): its maximum-likelihood estimate under the shifted
        exponential with censoring, which is the earliest escape time (the likelihood
        r^D exp(-r sum_i max(t_i - t0, 0)) increases with t0 up to the first escape).
        The test is then conditional on that first escape: by memorylessness, the
        trajectories still at risk after it, with times measured from it, are again
        exponential under the null, so the first escape itself and every trajectory
        that ended at or before t0 are left out. Give ``lag=0`` to test a plain
        exponential.
    confidence : float
        Level of the interval on the rate after the lag.

    Returns
    -------
    ExponentialCheck

    Notes
    -----
    With a given lag, escapes at or before it contradict the model; they are left out
    with a warning (the test is conditional on survival to t0). The chi2(1) reference
    is asymptotic; with a few hundred escapes the false-rejection rate is at its nominal
    level. A small p-value with weibull_shape > 1 says the hazard still rises (the
    transient lasts longer than the lag); with weibull_shape < 1 that it falls
    (heterogeneous trajectories, e.g. some not truly trapped).
    """
    confidence = check_confidence(confidence)
    t, e = trajectories(times, escaped, time)
    if not e.any():
        raise ValueError("escaped: no escapes; exponentiality cannot be tested")
    if lag is None:
        t0 = float(t[e].min())
        estimated = True
    else:
        t0 = float(lag)
        if not np.isfinite(t0) or t0 < 0:
            raise ValueError(f"lag: expected a finite time >= 0, got {lag!r}")
        estimated = False
        early = int((e & (t <= t0)).sum())
        if early:
            warnings.warn(
                f"lag: {early} escapes happened at or before the lag {t0!r}; they are left "
                "out (the test is conditional on survival to the lag)",
                stacklevel=2,
            )
    keep = t > t0
    ts, es = t[keep] - t0, e[keep]
    d = int(es.sum())
    if d < 2:
        raise ValueError(
            f"escaped: only {d} escapes after the lag {t0!r}; at least 2 are needed for the test"
        )
    exposure = float(ts.sum())
    if exposure <= 0:
        raise ValueError("times: no time at risk after the lag")
    # shape is scale-free: measure times in units of their largest value for stability
    scale = ts.max()
    log_t = np.log(ts / scale)
    log_t_ev = log_t[es]
    l_exp = _weibull_profile_loglik(0.0, log_t, log_t_ev, d)
    opt = optimize.minimize_scalar(
        lambda u: -_weibull_profile_loglik(u, log_t, log_t_ev, d),
        bounds=(-6.0, 6.0),
        method="bounded",
        options={"xatol": 1e-9},
    )
    l_w = max(-float(opt.fun), l_exp)
    stat = 2.0 * (l_w - l_exp)
    pvalue = float(sps.chi2.sf(stat, 1))
    rate = _rate_from_counts(ts.size, d, exposure, confidence)
    # Kaplan-Meier of the post-lag times against exp(-r s): compare both sides of each step
    km = sps.ecdf(sps.CensoredData(uncensored=ts[es], right=ts[~es])).sf
    s_fit = np.exp(-rate.rate * np.asarray(km.quantiles))
    s_km = np.asarray(km.probabilities)
    s_before = np.concatenate([[1.0], s_km[:-1]])
    max_dev = float(np.max(np.maximum(np.abs(s_km - s_fit), np.abs(s_before - s_fit))))
    return ExponentialCheck(
        statistic=float(stat),
        pvalue=pvalue,
        lag=t0,
        lag_estimated=estimated,
        rate=rate.rate,
        rate_lower=rate.rate_lower,
        rate_upper=rate.rate_upper,
        weibull_shape=float(np.exp(opt.x)),
        max_deviation=max_dev,
        n=int(ts.size),
        events=d,
    )
