"""Censoring-aware statistics of escape times: rates, survival curves, exponentiality and
Arrhenius fits.

An ensemble experiment gives, per trajectory, whether it escaped and a time: the escape
time if it escaped, otherwise the time it was watched before the budget ran out (right
censoring). The statistics here never drop censored runs and never average escaped times
alone; they use

* the exposure (total time at risk) ``E = sum_i t_i`` over all trajectories and the
  number of escapes ``D``: for exponential waiting times ``D / E`` is the maximum
  likelihood rate, and given ``E``, ``D`` is Poisson, which gives exact (Garwood)
  intervals;
* the Kaplan-Meier estimate of the survival function (scipy.stats.ecdf);
* a likelihood-ratio test of exponential waiting times after a lag against a Weibull
  alternative;
* the Arrhenius fit ln tau = ln tau0 + dE x as a Poisson regression of the escape counts
  with the log exposure as offset, with profile-likelihood or bootstrap intervals, set
  beside the naive fit of ln(mean escaped time) that ignores censoring.

Data come as arrays (``times``, ``escaped``) or as a pandas DataFrame with one row per
trajectory and columns ``escaped`` (bool), a time column (``time`` by default; any other
column can be chosen with ``time=``) and the settings (``temperature``, ``lr``,
``batch_size``, ``beta``, ...). Rows with ``diverged`` True are excluded with a warning:
they are neither escapes nor clean censoring. Times are in whatever unit the caller
chose (steps, epochs, lr * steps); rates are per that unit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy import stats as sps

__all__ = [
    "ArrheniusFit",
    "EscapeRate",
    "ExponentialCheck",
    "arrhenius_fit",
    "escape_rate",
    "escape_rate_table",
    "gradient_noise_scale",
    "exponential_check",
    "garwood_interval",
    "survival_curve",
]

Array = NDArray[np.float64]
XSpec = str | Callable[[pd.DataFrame], ArrayLike]


# ---------------------------------------------------------------------------- input checks
def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    return confidence


def _check_arrays(
    times: ArrayLike, escaped: ArrayLike, time_name: str = "times", escaped_name: str = "escaped"
) -> tuple[Array, NDArray[np.bool_]]:
    """1-d finite non-negative float times and a boolean escape flag of the same length."""
    try:
        t = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{time_name}: expected an array of real numbers ({exc})") from None
    if t.ndim != 1:
        raise ValueError(f"{time_name}: expected a 1-d array, got shape {t.shape}")
    if t.size == 0:
        raise ValueError(f"{time_name}: no trajectories (empty array)")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{time_name}: contains NaN or inf")
    if np.any(t < 0):
        raise ValueError(f"{time_name}: expected times >= 0, got {t[t < 0][0]!r}")
    e = np.asarray(escaped)
    if e.ndim != 1:
        raise ValueError(f"{escaped_name}: expected a 1-d array, got shape {e.shape}")
    if e.shape != t.shape:
        raise ValueError(
            f"{escaped_name}: expected length {t.size} to match {time_name}, got {e.size}"
        )
    if e.dtype != np.bool_:
        try:
            ok = bool(np.isin(e, (0, 1)).all())
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{escaped_name}: expected booleans (or 0/1), got dtype {e.dtype}")
        e = e.astype(bool)
    return t, e


def _drop_diverged(df: pd.DataFrame, stacklevel: int = 3) -> pd.DataFrame:
    """The rows of df without ``diverged`` True, warning when any are dropped."""
    if "diverged" not in df.columns:
        return df
    diverged = df["diverged"].fillna(False).astype(bool).to_numpy()
    n = int(diverged.sum())
    if n:
        warnings.warn(
            f"data: {n} of {len(df)} trajectories diverged; they are excluded from the escape "
            "statistics (neither escapes nor clean censoring)",
            stacklevel=stacklevel,
        )
        return df.loc[~diverged]
    return df


def _from_frame(df: pd.DataFrame, time: str) -> tuple[Array, NDArray[np.bool_]]:
    for col in (time, "escaped"):
        if col not in df.columns:
            raise ValueError(
                f"data: expected a column {col!r} (one row per trajectory), "
                f"got columns {list(df.columns)}"
            )
    return _check_arrays(
        df[time].to_numpy(), df["escaped"].to_numpy(), f"data[{time!r}]", "data['escaped']"
    )


def _trajectories(
    times: ArrayLike | pd.DataFrame, escaped: ArrayLike | None, time: str
) -> tuple[Array, NDArray[np.bool_]]:
    """(times, escaped) from arrays or from a trajectory DataFrame (diverged rows dropped)."""
    if isinstance(times, pd.DataFrame):
        if escaped is not None:
            raise ValueError("escaped: give it only with an array of times, not with a DataFrame")
        return _from_frame(_drop_diverged(times, stacklevel=4), time)
    if escaped is None:
        raise ValueError("escaped: required when times is an array")
    return _check_arrays(times, escaped)


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
    confidence = _check_confidence(confidence)
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
    confidence = _check_confidence(confidence)
    t, e = _trajectories(times, escaped, time)
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
    confidence = _check_confidence(confidence)
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
            t, e = _from_frame(clean, time)
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
    confidence = _check_confidence(confidence)
    if method not in ("log-log", "linear"):
        raise ValueError(f"method: expected 'log-log' or 'linear', got {method!r}")
    t, e = _trajectories(times, escaped, time)
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
    confidence = _check_confidence(confidence)
    t, e = _trajectories(times, escaped, time)
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


# ---------------------------------------------------------------------------- Poisson GLM
def _poisson_loglik(eta: Array, y: Array) -> Array:
    """Poisson log-likelihood without the ln y! term; eta = log mean, batched on axis 0."""
    with np.errstate(over="ignore"):
        return np.sum(y * eta - np.exp(eta), axis=-1)


def _newton(
    z: Array, y: Array, offset: Array, theta: Array, max_iter: int = 100, tol: float = 1e-10
) -> tuple[Array, NDArray[np.bool_]]:
    """Maximum likelihood of log mu = offset - z @ theta, batched over the rows of theta.

    Newton's method with step halving; z (K, p), y and offset (B, K) or (K,), theta (B, p).
    Returns the estimates and whether each converged.
    """
    theta = np.array(theta, dtype=np.float64, ndmin=2)
    y = np.broadcast_to(y, (theta.shape[0], z.shape[0]))
    offset = np.broadcast_to(offset, y.shape)
    eta = np.clip(offset - theta @ z.T, -745.0, 700.0)
    ll = _poisson_loglik(eta, y)
    converged = np.zeros(theta.shape[0], dtype=bool)
    for _ in range(max_iter):
        mu = np.exp(eta)
        grad = -(y - mu) @ z  # d l / d theta
        info = np.einsum("bk,kp,kq->bpq", mu, z, z)
        try:
            step = np.linalg.solve(info, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = (np.linalg.pinv(info) @ grad[..., None])[..., 0]
        step[converged] = 0.0
        decrement = np.einsum("bp,bp->b", grad, step)
        t = np.ones(theta.shape[0])
        new = theta + step
        new_eta = np.clip(offset - new @ z.T, -745.0, 700.0)
        new_ll = _poisson_loglik(new_eta, y)
        for _ in range(60):
            worse = ~(new_ll >= ll - 1e-12 * np.abs(ll))
            if not worse.any():
                break
            t[worse] *= 0.5
            new[worse] = theta[worse] + t[worse, None] * step[worse]
            new_eta[worse] = np.clip(offset[worse] - new[worse] @ z.T, -745.0, 700.0)
            new_ll[worse] = _poisson_loglik(new_eta[worse], y[worse])
        theta, eta, ll = new, new_eta, new_ll
        converged |= (np.abs(decrement) < tol) & np.all(
            np.abs(step) <= 1e-8 * (1.0 + np.abs(theta)), axis=1
        )
        if converged.all():
            break
    return theta, converged & np.all(np.isfinite(theta), axis=1)


def _start(z: Array, y: Array, offset: Array) -> Array:
    """Starting values: weighted least squares of ln(E / (y + 1/2)) on z."""
    w = y + 0.5
    target = offset - np.log(w)  # ln tau estimate
    sw = np.sqrt(w)
    theta, *_ = np.linalg.lstsq(z * sw[:, None], target * sw, rcond=None)
    return np.asarray(theta, dtype=np.float64)


def _fit_counts(z: Array, y: Array, offset: Array) -> tuple[Array, float]:
    theta, ok = _newton(z, y, offset, _start(z, y, offset)[None, :])
    if not ok[0]:
        raise ValueError(
            "data: the maximum-likelihood fit does not exist or did not converge (the escapes "
            "are too concentrated on few x values for this model)"
        )
    eta = offset - z @ theta[0]
    return theta[0], float(_poisson_loglik(eta, y))


def _profile_interval(
    z: Array,
    y: Array,
    offset: Array,
    theta: Array,
    ll_max: float,
    se: Array,
    j: int,
    confidence: float,
) -> tuple[float, float]:
    """Profile-likelihood interval of theta[j]: where 2 (l_max - l_p) = chi2_1 quantile."""
    crit = float(sps.chi2.ppf(confidence, 1))
    rest = [i for i in range(z.shape[1]) if i != j]
    zr = z[:, rest]
    intercept_only = len(rest) == 1 and np.all(zr[:, 0] == 1.0)
    sum_y = y.sum()
    guess = [theta[rest]]

    def excess(v: float) -> float:
        off = offset - v * z[:, j]
        if intercept_only:
            # closed form: sum(mu) = sum(y) fixes the intercept
            m = off.max()
            a = m + np.log(np.exp(off - m).sum() / sum_y)
            ll = float(_poisson_loglik(off - a, y))
        else:
            th, ok = _newton(zr, y, off, guess[0][None, :])
            if not ok[0]:
                return np.inf
            guess[0] = th[0]
            ll = float(_poisson_loglik(off - zr @ th[0], y))
        return 2.0 * (ll_max - ll) - crit

    bounds = []
    z_crit = np.sqrt(crit)
    h0 = se[j] if np.isfinite(se[j]) and se[j] > 0 else 1e-3 * (1.0 + abs(theta[j]))
    for sign in (-1.0, 1.0):
        guess[0] = theta[rest]
        # start at the Wald end point; the signed root sqrt(2 (l_max - l_p)) is nearly
        # linear in the parameter, so extrapolating it gives a tight bracket quickly
        inner, outer = theta[j], theta[j] + sign * z_crit * h0
        f_out = excess(outer)
        for _ in range(200):
            if f_out > 0:
                break
            root = np.sqrt(max(f_out + crit, 0.0))
            grow = z_crit / root if root > 0 else 2.0
            step = (outer - theta[j]) * min(max(1.02 * grow, 1.05), 4.0)
            inner, outer = outer, theta[j] + step
            f_out = excess(outer)
        if not f_out > 0:
            bounds.append(sign * np.inf)
            continue
        if not np.isfinite(f_out):
            # halve back until the profile is computable
            for _ in range(60):
                mid = 0.5 * (inner + outer)
                f_mid = excess(mid)
                if np.isfinite(f_mid):
                    if f_mid > 0:
                        outer = mid
                        break
                    inner = mid
                else:
                    outer = mid
        lo, hi = sorted((inner, outer))
        bounds.append(optimize.brentq(excess, lo, hi, xtol=1e-9 * (1 + abs(theta[j]))))
    return float(bounds[0]), float(bounds[1])


# ---------------------------------------------------------------------------- Arrhenius
_X_LABELS = {"1/T": r"$1/T$", "B/lr": r"$B/\mathrm{lr}$"}


def _x_values(data: pd.DataFrame, x: XSpec) -> tuple[Array, str]:
    """The x variable per trajectory and its axis label."""
    if callable(x):
        vals = np.asarray(x(data), dtype=np.float64)
        label = getattr(x, "__name__", "x")
        label = "x" if label == "<lambda>" else label
    elif x == "1/T":
        if "temperature" not in data.columns:
            raise ValueError("x: '1/T' needs a column 'temperature' in data")
        temp = data["temperature"].to_numpy(dtype=np.float64)
        if np.any(~(temp > 0)):
            raise ValueError("data['temperature']: expected temperatures > 0 for x='1/T'")
        vals, label = 1.0 / temp, _X_LABELS[x]
    elif x == "B/lr":
        for col in ("batch_size", "lr"):
            if col not in data.columns:
                raise ValueError(f"x: 'B/lr' needs a column {col!r} in data")
        lr = data["lr"].to_numpy(dtype=np.float64)
        if np.any(~(lr > 0)):
            raise ValueError("data['lr']: expected learning rates > 0 for x='B/lr'")
        vals, label = data["batch_size"].to_numpy(dtype=np.float64) / lr, _X_LABELS[x]
    elif isinstance(x, str):
        if x not in data.columns:
            raise ValueError(
                f"x: unknown x {x!r}; expected '1/T', 'B/lr', a column of data "
                f"({list(data.columns)}) or a callable"
            )
        vals, label = data[x].to_numpy(dtype=np.float64), x
    else:
        raise ValueError(f"x: expected '1/T', 'B/lr', a column name or a callable, got {x!r}")
    if vals.shape != (len(data),):
        raise ValueError(f"x: expected one value per trajectory ({len(data)}), got {vals.shape}")
    if not np.all(np.isfinite(vals)):
        raise ValueError("x: contains NaN or inf")
    return vals, label


@dataclass(frozen=True, eq=False)
class ArrheniusFit:
    """Arrhenius fit ln tau = ln tau0 + dE x (+ c ln x) of censored escape data.

    The censoring-aware fit is the maximum likelihood of the model
    ``events_k ~ Poisson(exposure_k / tau(x_k))`` (a Poisson regression with log-exposure
    offset); the naive fit is what the grokking paper did: least squares of
    ln(mean of the escaped times only) against x.

    Attributes
    ----------
    x : str
        Axis label of the x variable (e.g. ``$1/T$``).
    dE, dE_lower, dE_upper : float
        Slope of ln tau against x (the barrier, in units of the temperature scale of x)
        and its confidence interval.
    ln_tau0, ln_tau0_lower, ln_tau0_upper : float
        Intercept (ln tau at x = 0) and its interval.
    prefactor_exponent, prefactor_exponent_lower, prefactor_exponent_upper : float
        With ``log_prefactor_term``: c in ln tau = ln tau0 + dE x + c ln x, i.e. a rate
        proportional to T^c exp(-dE / T) with T = 1/x; NaN otherwise.
    confidence : float
        Level of the intervals.
    method : str
        "profile", "bootstrap" (trajectories resampled within each x) or
        "parametric-bootstrap" (counts redrawn from the fitted Poisson means).
    points : DataFrame
        Per x value: x, n, events, censored_fraction, exposure, rate, rate_lower,
        rate_upper, tau, tau_lower, tau_upper (Garwood), ln_tau, ln_tau_lower,
        ln_tau_upper, fitted_ln_tau, naive_tau (mean of the escaped times).
    r_squared : float
        R^2 of the per-point ln tau = ln(exposure / events) about the fitted line,
        weighted by the events (the inverse variance of ln tau-hat), over points with
        events.
    r_squared_unweighted : float
        The same with equal weights (comparable to the paper's R^2).
    deviance, dof, gof_pvalue : float, int, float
        Poisson deviance of the fit, its degrees of freedom (points - parameters) and the
        chi2 goodness-of-fit p-value (a small value: ln tau is not linear in x, or the
        waiting times are not exponential).
    covariance : ndarray
        Inverse Fisher information of (ln tau0, dE[, c]) at the estimate (Wald).
    naive_dE, naive_ln_tau0, naive_dE_stderr, naive_r_squared : float
        The naive fit: OLS slope and intercept of ln(mean escaped time) against x over
        points with at least one escape, the slope's standard error and R^2 (NaN where
        undefined).
    n_boot : int
        Bootstrap replicates used (0 for the profile method).
    """

    x: str
    dE: float
    dE_lower: float
    dE_upper: float
    ln_tau0: float
    ln_tau0_lower: float
    ln_tau0_upper: float
    prefactor_exponent: float
    prefactor_exponent_lower: float
    prefactor_exponent_upper: float
    confidence: float
    method: str
    points: pd.DataFrame = field(repr=False)
    r_squared: float
    r_squared_unweighted: float
    deviance: float
    dof: int
    gof_pvalue: float
    covariance: Array = field(repr=False)
    naive_dE: float
    naive_ln_tau0: float
    naive_dE_stderr: float
    naive_r_squared: float
    n_boot: int = 0

    def ln_tau(self, x: ArrayLike) -> Array:
        """Fitted ln tau at x (censoring-aware fit)."""
        xv = np.asarray(x, dtype=np.float64)
        out = self.ln_tau0 + self.dE * xv
        if np.isfinite(self.prefactor_exponent):
            out = out + self.prefactor_exponent * np.log(xv)
        return out

    def naive_ln_tau(self, x: ArrayLike) -> Array:
        """ln tau at x from the naive fit (mean of escaped times, censoring ignored)."""
        return self.naive_ln_tau0 + self.naive_dE * np.asarray(x, dtype=np.float64)

    def to_pandas(self) -> pd.DataFrame:
        """Parameter table: one row per estimate, with interval and method."""
        interval = f"{self.method} {self.confidence:.0%}"
        rows = [
            ("censoring-aware", "dE", self.dE, self.dE_lower, self.dE_upper, interval),
            (
                "censoring-aware",
                "ln_tau0",
                self.ln_tau0,
                self.ln_tau0_lower,
                self.ln_tau0_upper,
                interval,
            ),
        ]
        if np.isfinite(self.prefactor_exponent):
            rows.append(
                (
                    "censoring-aware",
                    "prefactor_exponent",
                    self.prefactor_exponent,
                    self.prefactor_exponent_lower,
                    self.prefactor_exponent_upper,
                    interval,
                )
            )
        z = sps.norm.ppf(0.5 + self.confidence / 2)
        se = self.naive_dE_stderr
        rows += [
            (
                "naive (escaped only)",
                "dE",
                self.naive_dE,
                self.naive_dE - z * se,
                self.naive_dE + z * se,
                f"OLS normal {self.confidence:.0%}",
            ),
            ("naive (escaped only)", "ln_tau0", self.naive_ln_tau0, np.nan, np.nan, ""),
        ]
        df = pd.DataFrame(
            rows, columns=["fit", "parameter", "estimate", "lower", "upper", "interval"]
        )
        df["r_squared"] = [self.r_squared_unweighted] * (len(rows) - 2) + [self.naive_r_squared] * 2
        return df

    def summary(self) -> str:
        """A readable report: parameters, goodness of fit and the per-point table."""
        lines = [
            f"Arrhenius fit of ln tau against x = {self.x} ({len(self.points)} points, "
            f"{int(self.points['events'].sum())} escapes, "
            f"{int(self.points['n'].sum() - self.points['events'].sum())} censored)",
            self.to_pandas().to_string(index=False, float_format=lambda v: f"{v:.5g}"),
            f"R^2 of ln tau about the fit: {self.r_squared:.4f} (weighted by events), "
            f"{self.r_squared_unweighted:.4f} (unweighted); Poisson deviance "
            f"{self.deviance:.3g} on {self.dof} dof, goodness-of-fit p = {self.gof_pvalue:.3g}",
            "",
            self.points[
                [
                    "x",
                    "n",
                    "events",
                    "censored_fraction",
                    "tau",
                    "tau_lower",
                    "tau_upper",
                    "naive_tau",
                ]
            ].to_string(index=False, float_format=lambda v: f"{v:.5g}"),
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _r_squared(obs: Array, fit: Array, w: Array) -> float:
    ok = np.isfinite(obs) & (w > 0)
    if ok.sum() < 2:
        return float("nan")
    o, f, ww = obs[ok], fit[ok], w[ok]
    mean = np.sum(ww * o) / ww.sum()
    ss_tot = np.sum(ww * (o - mean) ** 2)
    if ss_tot == 0:
        return float("nan")
    return float(1.0 - np.sum(ww * (o - f) ** 2) / ss_tot)


def _naive_fit(x: Array, naive_tau: Array) -> tuple[float, float, float, float]:
    ok = np.isfinite(naive_tau) & (naive_tau > 0)
    if ok.sum() < 2:
        return (np.nan,) * 4
    xs, ys = x[ok], np.log(naive_tau[ok])
    a = np.column_stack([np.ones(xs.size), xs])
    coef, *_ = np.linalg.lstsq(a, ys, rcond=None)
    resid = ys - a @ coef
    ss_tot = np.sum((ys - ys.mean()) ** 2)
    r2 = float(1 - np.sum(resid**2) / ss_tot) if ss_tot > 0 else np.nan
    if xs.size > 2:
        s2 = np.sum(resid**2) / (xs.size - 2)
        se = float(np.sqrt(s2 / np.sum((xs - xs.mean()) ** 2)))
    else:
        se = np.nan
    return float(coef[1]), float(coef[0]), se, r2


def arrhenius_fit(
    data: pd.DataFrame,
    x: XSpec = "1/T",
    time: str = "time",
    *,
    log_prefactor_term: bool = False,
    confidence: float = 0.95,
    method: Literal["profile", "bootstrap", "parametric-bootstrap"] = "profile",
    n_boot: int = 2000,
    seed: int | None = 0,
) -> ArrheniusFit:
    """Fit ln tau = ln tau0 + dE x to censored escape data by maximum likelihood.

    Trajectories are grouped by their value of x; group k has events D_k and exposure
    E_k (total time at risk). For exponential waiting times (D_k, E_k) are sufficient
    and the likelihood is that of D_k ~ Poisson(E_k exp(-ln tau(x_k))): a Poisson
    regression with offset ln E_k, solved by Newton's method.

    Parameters
    ----------
    data : DataFrame
        One row per trajectory: ``escaped``, `time` and the columns x needs. Rows with
        ``diverged`` True are dropped with a warning.
    x : str or callable
        "1/T" (column ``temperature``), "B/lr" (``batch_size / lr``: the paper's
        1 / T_eff up to its constant C, so dE is then in units of 1/C), a column name, or
        a callable ``data -> array`` of one value per row.
    time : str
        Time column (escape time or time at risk until censoring).
    log_prefactor_term : bool
        Add c ln x to ln tau: a rate prefactor T^c with T proportional to 1/x (the
        constant goes into ln tau0). Needs x > 0 and at least 3 x values.
    confidence : float
        Level of the intervals.
    method : {"profile", "bootstrap", "parametric-bootstrap"}
        Intervals by profile likelihood (default), by resampling trajectories within
        each x value (percentile), or by redrawing the counts from the fitted Poisson
        means at fixed exposure (percentile).
    n_boot : int
        Bootstrap replicates.
    seed : int, optional
        Seed of the bootstrap generator.

    Returns
    -------
    ArrheniusFit

    Raises
    ------
    ValueError
        Fewer than 2 distinct x values (3 with the prefactor term), no escapes, escapes
        at a single x value (the slope is then unbounded), an unknown x, or bad times.
    """
    confidence = _check_confidence(confidence)
    if method not in ("profile", "bootstrap", "parametric-bootstrap"):
        raise ValueError(
            f"method: expected 'profile', 'bootstrap' or 'parametric-bootstrap', got {method!r}"
        )
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data: expected a pandas DataFrame, got {type(data).__name__}")
    df = _drop_diverged(data)
    t, e = _from_frame(df, time)
    xv, label = _x_values(df, x)
    ux, inv = np.unique(xv, return_inverse=True)
    k = ux.size
    p = 3 if log_prefactor_term else 2
    if k < p:
        raise ValueError(
            f"x: the fit needs at least {p} distinct x values, got {k}"
            + (" (log_prefactor_term adds a parameter)" if log_prefactor_term else "")
        )
    if log_prefactor_term and np.any(ux <= 0):
        raise ValueError("x: log_prefactor_term needs x > 0 (T proportional to 1/x)")
    n = np.bincount(inv, minlength=k)
    events = np.bincount(inv, weights=e, minlength=k).astype(np.float64)
    exposure = np.bincount(inv, weights=t, minlength=k).astype(np.float64)
    if events.sum() == 0:
        raise ValueError("data: no escapes at any x; an Arrhenius fit needs events")
    if np.count_nonzero(events) < 2:
        raise ValueError(
            "data: escapes at only one x value; the slope dE is not identifiable (unbounded)"
        )
    if np.any(exposure <= 0):
        raise ValueError(f"data[{time!r}]: zero total time at risk at some x value")
    esc_sum = np.bincount(inv, weights=np.where(e, t, 0.0), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        naive_tau = np.where(events > 0, esc_sum / np.maximum(events, 1), np.nan)

    cols = [np.ones(k), ux] + ([np.log(ux)] if log_prefactor_term else [])
    z = np.column_stack(cols)
    offset = np.log(exposure)
    theta, ll_max = _fit_counts(z, events, offset)
    mu = np.exp(offset - z @ theta)
    info = z.T @ (mu[:, None] * z)
    cov = np.linalg.inv(info)
    se = np.sqrt(np.diag(cov))

    n_used = 0
    if method == "profile":
        intervals = [
            _profile_interval(z, events, offset, theta, ll_max, se, j, confidence) for j in range(p)
        ]
    else:
        n_boot = int(n_boot)
        if n_boot < 10:
            raise ValueError(f"n_boot: expected at least 10 replicates, got {n_boot}")
        rng = np.random.default_rng(seed)
        if method == "parametric-bootstrap":
            yb = rng.poisson(mu, size=(n_boot, k)).astype(np.float64)
            offb = np.broadcast_to(offset, yb.shape)
        else:
            yb = np.empty((n_boot, k))
            eb = np.empty((n_boot, k))
            order = np.argsort(inv, kind="stable")
            starts = np.concatenate([[0], np.cumsum(n)])
            for g in range(k):
                idx = order[starts[g] : starts[g + 1]]
                tg, egf = t[idx], e[idx].astype(np.float64)
                chunk = max(1, int(2e6 // max(tg.size, 1)))
                for b0 in range(0, n_boot, chunk):
                    b1 = min(n_boot, b0 + chunk)
                    w = rng.multinomial(tg.size, np.full(tg.size, 1.0 / tg.size), size=b1 - b0)
                    yb[b0:b1, g] = w @ egf
                    eb[b0:b1, g] = w @ tg
            offb = np.log(np.maximum(eb, np.finfo(float).tiny))
        thb, ok = _newton(z, yb, offb, np.broadcast_to(theta, (n_boot, p)))
        ok &= np.count_nonzero(yb, axis=1) >= 2
        n_used = int(ok.sum())
        if n_used < 0.99 * n_boot:
            warnings.warn(
                f"method: {n_boot - n_used} of {n_boot} bootstrap replicates have no finite "
                "maximum-likelihood fit (too few escapes) and were left out; the interval "
                "is unreliable",
                stacklevel=2,
            )
        if n_used < 2:
            raise ValueError("data: too few escapes for a bootstrap interval")
        alpha = 1.0 - confidence
        qs = np.quantile(thb[ok], [alpha / 2, 1 - alpha / 2], axis=0)
        intervals = [(float(qs[0, j]), float(qs[1, j])) for j in range(p)]

    rate_lo, rate_hi = garwood_interval(events, exposure, confidence)
    with np.errstate(divide="ignore"):
        rate = events / exposure
        tau = 1.0 / rate
        tau_lo, tau_hi = 1.0 / rate_hi, 1.0 / rate_lo
        ln_tau = np.log(tau)
    fitted = z @ theta
    points = pd.DataFrame(
        {
            "x": ux,
            "n": n,
            "events": events.astype(np.int64),
            "censored_fraction": 1.0 - events / n,
            "exposure": exposure,
            "rate": rate,
            "rate_lower": rate_lo,
            "rate_upper": rate_hi,
            "tau": tau,
            "tau_lower": tau_lo,
            "tau_upper": tau_hi,
            "ln_tau": ln_tau,
            "ln_tau_lower": np.log(tau_lo),
            "ln_tau_upper": np.log(tau_hi),
            "fitted_ln_tau": fitted,
            "naive_tau": naive_tau,
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        dev_terms = np.where(events > 0, events * np.log(events / mu), 0.0) - (events - mu)
    deviance = float(2.0 * dev_terms.sum())
    dof = k - p
    gof = float(sps.chi2.sf(deviance, dof)) if dof > 0 else float("nan")
    naive = _naive_fit(ux, naive_tau)
    nan = float("nan")
    pref = (theta[2], *intervals[2]) if log_prefactor_term else (nan, nan, nan)
    return ArrheniusFit(
        x=label,
        dE=float(theta[1]),
        dE_lower=intervals[1][0],
        dE_upper=intervals[1][1],
        ln_tau0=float(theta[0]),
        ln_tau0_lower=intervals[0][0],
        ln_tau0_upper=intervals[0][1],
        prefactor_exponent=float(pref[0]),
        prefactor_exponent_lower=float(pref[1]),
        prefactor_exponent_upper=float(pref[2]),
        confidence=confidence,
        method=method,
        points=points,
        r_squared=_r_squared(ln_tau, fitted, events),
        r_squared_unweighted=_r_squared(ln_tau, fitted, (events > 0).astype(np.float64)),
        deviance=deviance,
        dof=dof,
        gof_pvalue=gof,
        covariance=cov,
        naive_dE=naive[0],
        naive_ln_tau0=naive[1],
        naive_dE_stderr=naive[2],
        naive_r_squared=naive[3],
        n_boot=n_used,
    )


from grokescape.sgd_noise import gradient_noise_scale  # noqa: E402  (re-exported here)
