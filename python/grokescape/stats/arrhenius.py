"""Arrhenius fits ln tau = ln tau0 + dE x of censored escape data: a Poisson regression of
the escape counts with the log exposure as offset, with profile-likelihood or bootstrap
intervals, beside the naive fit of ln(mean escaped time) (see :mod:`grokescape.stats`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy import stats as sps

from grokescape.stats.rates import garwood_interval
from grokescape.stats.trajectories import check_confidence, drop_diverged, from_frame

__all__ = ["ArrheniusFit", "arrhenius_fit"]

Array = NDArray[np.float64]
XSpec = str | Callable[[pd.DataFrame], ArrayLike]


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
    confidence = check_confidence(confidence)
    if method not in ("profile", "bootstrap", "parametric-bootstrap"):
        raise ValueError(
            f"method: expected 'profile', 'bootstrap' or 'parametric-bootstrap', got {method!r}"
        )
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data: expected a pandas DataFrame, got {type(data).__name__}")
    df = drop_diverged(data)
    t, e = from_frame(df, time)
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
