"""Tests of grokescape.stats (censoring-aware escape statistics) and its plots.

The Monte Carlo tests use fixed seeds and many replicates; the asserted bounds are a few
Monte Carlo standard errors wide.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from grokescape import stats

# ------------------------------------------------------------------------------ helpers


def _censored_exponential(rng, rate, n, p_censored, size=(), lag=0.0):
    """Exponential waiting times (after `lag`) with administrative censoring at the time
    where P(censored) = p_censored."""
    budget = lag - np.log(p_censored) / rate
    t = lag + rng.exponential(1.0 / rate, size=(*size, n))
    return np.minimum(t, budget), t < budget


def _arrhenius_frame(times, escaped, x):
    """Trajectory DataFrame of one replicate: times (K, n), x (K,) = 1/T."""
    k, n = times.shape
    return pd.DataFrame(
        {
            "temperature": np.repeat(1.0 / x, n),
            "time": times.ravel(),
            "escaped": escaped.ravel(),
        }
    )


# ------------------------------------------------------------------------------ Garwood


def test_garwood_interval_matches_tabulated_values():
    lo, hi = stats.garwood_interval([0, 10], [1.0, 2.0], 0.95)
    # 0 events: [0, -ln(0.025)]; 10 events: the classical (4.795, 18.390), per unit 2
    np.testing.assert_allclose(lo, [0.0, 4.795389 / 2], rtol=1e-6)
    np.testing.assert_allclose(hi, [3.688879, 18.390356 / 2], rtol=1e-6)


def test_escape_rate_counts_and_inverted_interval():
    t = np.array([1.0, 2.0, 3.0, 10.0, 10.0])
    e = np.array([True, True, True, False, False])
    res = stats.escape_rate(t, e)
    assert (res.n, res.events) == (5, 3)
    assert res.exposure == pytest.approx(26.0)
    assert res.rate == pytest.approx(3 / 26)
    assert res.tau == pytest.approx(26 / 3)
    assert res.censored_fraction == pytest.approx(0.4)
    lo, hi = stats.garwood_interval(3, 26.0)
    assert (res.rate_lower, res.rate_upper) == pytest.approx((lo, hi))
    assert (res.tau_lower, res.tau_upper) == pytest.approx((1 / hi, 1 / lo))
    # zero events: lower rate 0, infinite tau and tau_upper, finite tau_lower
    none = stats.escape_rate([5.0, 5.0], [False, False])
    assert none.rate == 0 and none.rate_lower == 0 and np.isinf(none.tau_upper)
    assert none.tau_lower == pytest.approx(10.0 / 3.688879, rel=1e-6)


def test_escape_rate_from_dataframe_drops_diverged_with_warning_and_uses_time_column():
    df = pd.DataFrame(
        {
            "escape_step": [100.0, 300.0, 500.0, 500.0, 50.0],
            "escaped": [True, True, False, False, True],
            "diverged": [False, False, False, False, True],
        }
    )
    with pytest.warns(UserWarning, match="1 of 5 trajectories diverged"):
        res = stats.escape_rate(df, time="escape_step")
    assert (res.n, res.events, res.exposure) == (4, 2, 1400.0)


def test_escape_rate_unbiased_and_garwood_coverage():
    """Exponential times, 40% administrative censoring.

    Bias: 200 replicates of 5000 trajectories (the O(1/events) bias of events/exposure is
    then ~0.3 standard errors of the replicate mean). Coverage: 2000 replicates of 500
    trajectories, so the 93-97% window is +-4 Monte Carlo standard errors.
    """
    rate = 0.01
    rng = np.random.default_rng(20260601)
    t, e = _censored_exponential(rng, rate, 5000, 0.4, size=(200,))
    est = np.array([stats.escape_rate(t[i], e[i]).rate for i in range(200)])
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(1 - e.mean() - 0.4) < 0.005
    assert abs(est.mean() - rate) < 2 * se  # measured: +0.7 SE

    # the naive estimate 1 / mean(escaped times) is far off
    naive = 1.0 / np.array([t[i][e[i]].mean() for i in range(200)])
    assert (naive.mean() - rate) / se > 100  # measured: 1160 SE

    t, e = _censored_exponential(rng, rate, 500, 0.4, size=(2000,))
    res = [stats.escape_rate(t[i], e[i]) for i in range(2000)]
    covered = np.mean([r.rate_lower <= rate <= r.rate_upper for r in res])
    assert 0.93 <= covered <= 0.97  # measured: 95.4%


def test_escape_rate_table_one_row_per_group():
    rng = np.random.default_rng(3)
    rows = []
    for temp, rate in ((0.5, 0.01), (1.0, 0.05)):
        t, e = _censored_exponential(rng, rate, 300, 0.3)
        rows.append(pd.DataFrame({"temperature": temp, "time": t, "escaped": e}))
    df = pd.concat(rows, ignore_index=True)
    table = stats.escape_rate_table(df, by="temperature")
    assert list(table["temperature"]) == [0.5, 1.0]
    for _, row in table.iterrows():
        sub = df[df["temperature"] == row["temperature"]]
        ref = stats.escape_rate(sub)
        assert row["rate"] == pytest.approx(ref.rate)
        assert row["tau_upper"] == pytest.approx(ref.tau_upper)
        assert row["n_diverged"] == 0
    assert table["events"].sum() == df["escaped"].sum() and table["n"].sum() == len(df)
    assert len(stats.escape_rate_table(df)) == 1


# ------------------------------------------------------------------------------ Kaplan-Meier


def test_survival_curve_by_hand():
    # escapes at 1, 3, 4; censored at 2: S = 3/4, 3/4, 3/4 * 1/2, 0
    km = stats.survival_curve([1.0, 2.0, 3.0, 4.0], [True, False, True, True])
    np.testing.assert_allclose(km["time"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(km["survival"], [1, 0.75, 0.75, 0.375, 0.0])
    np.testing.assert_array_equal(km["at_risk"], [4, 4, 3, 2, 1])
    np.testing.assert_array_equal(km["events"], [0, 1, 0, 1, 1])
    assert np.all(km["lower"][:4] <= km["survival"][:4])
    assert np.all(km["upper"][:4] >= km["survival"][:4])
    assert np.isnan(km["lower"].iloc[-1])  # undefined where S = 0


def test_survival_curve_band_covers_true_survival():
    rate, rng = 0.01, np.random.default_rng(5)
    t_check = 50.0  # S = exp(-0.5) = 0.61
    t, e = _censored_exponential(rng, rate, 300, 0.4, size=(400,))
    hits = []
    for i in range(400):
        km = stats.survival_curve(t[i], e[i])
        j = np.searchsorted(km["time"].to_numpy(), t_check, side="right") - 1
        hits.append(km["lower"].iloc[j] <= np.exp(-rate * t_check) <= km["upper"].iloc[j])
    assert 0.92 <= np.mean(hits) <= 0.98  # measured: 95.75%


# ------------------------------------------------------------------------------ exponentiality


def test_exponential_check_nominal_false_rejection_and_lag():
    rate, lag = 0.01, 20.0
    rng = np.random.default_rng(7)
    t, e = _censored_exponential(rng, rate, 500, 0.4, size=(500,), lag=lag)
    checks = [stats.exponential_check(t[i], e[i]) for i in range(500)]
    p = np.array([c.pvalue for c in checks])
    assert 0.03 <= np.mean(p < 0.05) <= 0.075  # measured: 5.6% (MC SE 1%)
    assert 0.0 <= np.mean(p < 0.01) <= 0.025  # measured: 1.4%
    lags = np.array([c.lag for c in checks])
    # the MLE lag is the first escape: above the truth by ~1/(n rate) = 0.2
    assert np.all(lags >= lag) and lags.mean() - lag == pytest.approx(0.2, abs=0.05)
    rates = np.array([c.rate for c in checks])
    assert abs(rates.mean() - rate) < 3 * rates.std(ddof=1) / np.sqrt(rates.size)
    shapes = np.array([c.weibull_shape for c in checks])
    assert abs(np.median(shapes) - 1.0) < 0.02


def test_exponential_check_rejects_weibull_and_honours_given_lag():
    rng = np.random.default_rng(8)
    for _ in range(10):
        w = 100.0 * rng.weibull(3.0, 500)
        budget = np.quantile(w, 0.6)
        chk = stats.exponential_check(np.minimum(w, budget), w < budget)
        assert chk.pvalue < 1e-10 and chk.weibull_shape > 1.5
    # shifting all times by 50 with the lag given as 50 gives the lag-0 test on the original
    t, e = _censored_exponential(rng, 0.01, 400, 0.3)
    a = stats.exponential_check(t, e, lag=0.0)
    b = stats.exponential_check(t + 50.0, e, lag=50.0)
    assert not a.lag_estimated and a.lag == 0.0
    assert a.statistic == pytest.approx(b.statistic, rel=1e-6, abs=1e-9)
    assert a.rate == pytest.approx(b.rate)
    with pytest.warns(UserWarning, match="escapes happened at or before the lag"):
        stats.exponential_check(t, e, lag=float(np.sort(t[e])[3]))


# ------------------------------------------------------------------------------ Arrhenius

_X = np.linspace(1.0, 2.0, 5)  # 1/T
_DE, _LN_TAU0 = 1.5, 3.0


def _arrhenius_replicates(rng, n_rep, n=500):
    """One common step budget: censoring grows from 20% (fast point) to 70% (slow)."""
    tau = np.exp(_LN_TAU0 + _DE * _X)
    budget = -np.log(0.7) * tau.max()
    t = rng.exponential(tau[None, :, None], size=(n_rep, _X.size, n))
    return np.minimum(t, budget), t < budget


def test_arrhenius_profile_fit_unbiased_covers_and_naive_fit_biased():
    rng = np.random.default_rng(11)
    n_rep = 500
    t, e = _arrhenius_replicates(rng, n_rep)
    cens = 1 - e.mean(axis=(0, 2))
    assert cens[0] == pytest.approx(0.2, abs=0.01) and cens[-1] == pytest.approx(0.7, abs=0.01)
    assert 1 - e.mean() == pytest.approx(0.46, abs=0.01)
    fits = [stats.arrhenius_fit(_arrhenius_frame(t[i], e[i], _X)) for i in range(n_rep)]
    de = np.array([f.dE for f in fits])
    se = de.std(ddof=1) / np.sqrt(n_rep)
    assert abs(de.mean() - _DE) < 2 * se  # measured: -0.8 SE
    cover = np.mean([f.dE_lower <= _DE <= f.dE_upper for f in fits])
    assert 0.93 <= cover <= 0.97  # measured: 93.8% (94.6% over 3000 replicates)
    a = np.array([f.ln_tau0 for f in fits])
    assert abs(a.mean() - _LN_TAU0) < 2 * a.std(ddof=1) / np.sqrt(n_rep)
    cover0 = np.mean([f.ln_tau0_lower <= _LN_TAU0 <= f.ln_tau0_upper for f in fits])
    assert 0.92 <= cover0 <= 0.97  # measured: 93.8%
    # the deviance test of the (true) Arrhenius model rejects at its nominal rate
    assert np.mean([f.gof_pvalue < 0.05 for f in fits]) < 0.09  # measured: 5.6%
    # the paper's fit of ln(mean escaped time) flattens the slope by a factor ~6
    naive = np.array([f.naive_dE for f in fits])
    naive_se = naive.std(ddof=1) / np.sqrt(n_rep)
    assert naive.mean() < 0.3 * _DE  # measured: 0.227
    assert (_DE - naive.mean()) / naive_se > 100  # measured: 518 SE


def test_arrhenius_fit_is_the_poisson_mle_and_reports_points():
    rng = np.random.default_rng(12)
    t, e = _arrhenius_replicates(rng, 1)
    df = _arrhenius_frame(t[0], e[0], _X)
    fit = stats.arrhenius_fit(df)
    pts = fit.points
    # per-point table = escape_rate per temperature
    for _, row in pts.iterrows():
        ref = stats.escape_rate(df[np.isclose(1 / df["temperature"], row["x"])])
        assert row["rate"] == pytest.approx(ref.rate)
        assert (row["tau_lower"], row["tau_upper"]) == pytest.approx((ref.tau_lower, ref.tau_upper))
    # score equations of the Poisson likelihood vanish at the estimate
    mu = pts["exposure"] * np.exp(-(fit.ln_tau0 + fit.dE * pts["x"]))
    resid = pts["events"] - mu
    assert abs(resid.sum()) < 1e-6 * pts["events"].sum()
    assert abs((resid * pts["x"]).sum()) < 1e-6 * pts["events"].sum()
    # profile bounds: the likelihood-ratio statistic equals chi2_1(0.95) there
    for bound in (fit.dE_lower, fit.dE_upper):
        e_sum, ex = pts["events"].to_numpy(), pts["exposure"].to_numpy()
        off = np.log(ex) - bound * pts["x"].to_numpy()
        a = np.log(np.exp(off).sum() / e_sum.sum())
        ll_p = np.sum(e_sum * (off - a) - np.exp(off - a))
        ll_max = np.sum(e_sum * np.log(mu) - mu)
        assert 2 * (ll_max - ll_p) == pytest.approx(3.841459, rel=1e-6)
    # weighted R^2 by hand
    w = pts["events"].to_numpy()
    obs, fitted = pts["ln_tau"].to_numpy(), pts["fitted_ln_tau"].to_numpy()
    mean = np.sum(w * obs) / w.sum()
    r2 = 1 - np.sum(w * (obs - fitted) ** 2) / np.sum(w * (obs - mean) ** 2)
    assert fit.r_squared == pytest.approx(r2)
    assert 0.95 < fit.r_squared <= 1 and 0.95 < fit.r_squared_unweighted <= 1
    # naive fit = OLS of ln(mean escaped time)
    naive_tau = [
        df.loc[np.isclose(1 / df["temperature"], x) & df["escaped"], "time"].mean() for x in _X
    ]
    slope = np.polyfit(_X, np.log(naive_tau), 1)[0]
    assert fit.naive_dE == pytest.approx(slope)
    table = fit.to_pandas()
    assert list(table["parameter"]) == ["dE", "ln_tau0", "dE", "ln_tau0"]
    assert table.loc[0, "estimate"] == pytest.approx(fit.dE)
    text = fit.summary()
    assert "naive (escaped only)" in text and "profile 95%" in text and "$1/T$" in text


def test_arrhenius_bootstrap_intervals_agree_with_profile():
    rng = np.random.default_rng(13)
    t, e = _arrhenius_replicates(rng, 1, n=1000)
    df = _arrhenius_frame(t[0], e[0], _X)
    prof = stats.arrhenius_fit(df)
    width = prof.dE_upper - prof.dE_lower
    for method in ("bootstrap", "parametric-bootstrap"):
        boot = stats.arrhenius_fit(df, method=method, n_boot=1000, seed=1)
        assert boot.dE == prof.dE and boot.n_boot == 1000
        assert boot.dE_lower == pytest.approx(prof.dE_lower, abs=0.1 * width)
        assert boot.dE_upper == pytest.approx(prof.dE_upper, abs=0.1 * width)
        again = stats.arrhenius_fit(df, method=method, n_boot=1000, seed=1)
        assert again.dE_lower == boot.dE_lower  # seeded


def test_arrhenius_x_options_agree():
    rng = np.random.default_rng(14)
    lr = np.array([5e-4, 1e-3, 2e-3, 3e-3, 5e-3])
    x = 64 / lr / 1e4  # B/lr in units of 1e4
    tau = np.exp(1.0 + 0.8 * x)
    t = rng.exponential(tau[:, None], size=(5, 400))
    budget = 2 * tau.max()
    df = pd.DataFrame(
        {
            "lr": np.repeat(lr, 400),
            "batch_size": 64,
            "time": np.minimum(t, budget).ravel(),
            "escaped": (t < budget).ravel(),
        }
    )
    df["x"] = df["batch_size"] / df["lr"] / 1e4
    by_col = stats.arrhenius_fit(df, x="x")
    by_fun = stats.arrhenius_fit(df, x=lambda d: d["batch_size"] / d["lr"] / 1e4)
    by_blr = stats.arrhenius_fit(df, x="B/lr")
    assert by_fun.dE == pytest.approx(by_col.dE)
    assert by_blr.dE * 1e4 == pytest.approx(by_col.dE, rel=1e-6)
    assert by_blr.ln_tau0 == pytest.approx(by_col.ln_tau0, rel=1e-6)
    assert by_blr.x == r"$B/\mathrm{lr}$"
    assert by_col.dE_lower < 0.8 < by_col.dE_upper


def test_arrhenius_log_prefactor_term_recovers_exponent():
    rng = np.random.default_rng(15)
    x = np.linspace(0.5, 3.0, 6)
    c_true = 2.0  # ln tau = 1 + 1.2 x + 2 ln x
    tau = np.exp(1.0 + 1.2 * x + c_true * np.log(x))
    t = rng.exponential(tau[:, None], size=(6, 4000))
    budget = 1.5 * tau
    df = pd.DataFrame(
        {
            "temperature": np.repeat(1 / x, 4000),
            "time": np.minimum(t, budget[:, None]).ravel(),
            "escaped": (t < budget[:, None]).ravel(),
        }
    )
    fit = stats.arrhenius_fit(df, log_prefactor_term=True)
    assert fit.prefactor_exponent_lower < c_true < fit.prefactor_exponent_upper
    assert fit.dE_lower < 1.2 < fit.dE_upper
    assert fit.gof_pvalue > 0.01
    assert "prefactor_exponent" in set(fit.to_pandas()["parameter"])
    # without the term the slope absorbs it and the deviance test rejects
    plain = stats.arrhenius_fit(df)
    assert plain.gof_pvalue < 1e-6


def test_arrhenius_drops_diverged_with_warning():
    rng = np.random.default_rng(16)
    t, e = _arrhenius_replicates(rng, 1, n=200)
    df = _arrhenius_frame(t[0], e[0], _X)
    ref = stats.arrhenius_fit(df)
    bad = pd.concat(
        [
            df.assign(diverged=False),
            pd.DataFrame({"temperature": 1.0, "time": 1.0, "escaped": True, "diverged": [True]}),
        ],
        ignore_index=True,
    )
    with pytest.warns(UserWarning, match="diverged"):
        fit = stats.arrhenius_fit(bad)
    assert fit.dE == pytest.approx(ref.dE)


# ------------------------------------------------------------------------------ bad input


def test_bad_input_raises_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="times: expected times >= 0"):
        stats.escape_rate([1.0, -2.0], [True, False])
    with pytest.raises(ValueError, match="escaped: expected length 2"):
        stats.escape_rate([1.0, 2.0], [True, False, True])
    with pytest.raises(ValueError, match="escaped: expected booleans"):
        stats.escape_rate([1.0, 2.0], [2, 0])
    with pytest.raises(ValueError, match="times: no trajectories"):
        stats.escape_rate([], [])
    with pytest.raises(ValueError, match="confidence"):
        stats.escape_rate([1.0], [True], confidence=95)
    with pytest.raises(ValueError, match="escaped: no escapes"):
        stats.exponential_check([1.0, 2.0], [False, False])
    with pytest.raises(ValueError, match="'time'"):
        stats.escape_rate(pd.DataFrame({"t": [1.0], "escaped": [True]}))

    df = pd.DataFrame(
        {
            "temperature": [0.5, 0.5, 1.0, 1.0],
            "time": [1.0, 2.0, 1.0, 2.0],
            "escaped": [False, False, False, False],
        }
    )
    with pytest.raises(ValueError, match="data: no escapes"):
        stats.arrhenius_fit(df)
    with pytest.raises(ValueError, match="escapes at only one x"):
        stats.arrhenius_fit(df.assign(escaped=[True, False, False, False]))
    with pytest.raises(ValueError, match="x: the fit needs at least 2 distinct x values"):
        stats.arrhenius_fit(df.assign(temperature=0.5, escaped=True))
    with pytest.raises(ValueError, match="at least 3 distinct x"):
        stats.arrhenius_fit(df.assign(escaped=True), log_prefactor_term=True)
    with pytest.raises(ValueError, match="x: unknown x 'beta'"):
        stats.arrhenius_fit(df.assign(escaped=True), x="beta")
    with pytest.raises(ValueError, match="x: 'B/lr' needs a column 'batch_size'"):
        stats.arrhenius_fit(df.assign(escaped=True), x="B/lr")
    with pytest.raises(ValueError, match="temperature"):
        stats.arrhenius_fit(df.assign(escaped=True, temperature=[0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="method"):
        stats.arrhenius_fit(df.assign(escaped=True), method="wald")


# ------------------------------------------------------------------------------ plots


@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_plots_draw_what_they_say(plt):
    from grokescape import stats_plots

    rng = np.random.default_rng(17)
    t, e = _arrhenius_replicates(rng, 1, n=300)
    df = _arrhenius_frame(t[0], e[0], _X)

    ax = stats_plots.plot_survival(df, by="temperature", fit=True)
    assert ax.get_yscale() == "log"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert sum(lab.startswith("temperature = ") for lab in labels) == 5
    assert sum(lab.startswith("exponential") for lab in labels) == 5
    km = stats.survival_curve(df[df["temperature"] == 1.0])
    ax2 = stats_plots.plot_survival(km, log=False)
    np.testing.assert_allclose(ax2.lines[0].get_ydata(), km["survival"])

    ax = stats_plots.plot_escape_histogram(df[df["temperature"] == 1.0])
    counts = sum(p.get_height() for p in ax.patches if hasattr(p, "get_height"))
    assert counts == int(e[0, 0].sum())
    assert any("censored: " in txt.get_text() for txt in ax.texts)

    fit = stats.arrhenius_fit(df)
    ax = stats_plots.plot_arrhenius(fit, theory=lambda x: _LN_TAU0 + _DE * x)
    assert ax.get_xlabel() == "$1/T$" and ax.get_ylabel() == r"$\ln\tau$"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any(lab.startswith("censoring-aware fit") for lab in labels)
    assert any(lab.startswith("naive fit") for lab in labels)
    assert "theory" in labels
    with pytest.raises(TypeError, match="fit"):
        stats_plots.plot_arrhenius(df)


def test_no_warnings_on_clean_data():
    rng = np.random.default_rng(18)
    t, e = _arrhenius_replicates(rng, 1, n=200)
    df = _arrhenius_frame(t[0], e[0], _X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats.arrhenius_fit(df)
        stats.survival_curve(df)
        stats.exponential_check(df)
        stats.escape_rate_table(df, by="temperature")
