"""The experiments' shared escape measurement: each point of a sweep is one
run_until_escape call, summarised in one rate row."""

import numpy as np

import grokescape as ge
from grokescape import stats, theory, traps
from grokescape.escape import ModeThreshold
from grokescape.experiments.escape_sweep import RATE_COLUMNS, EscapePoint, escape_sweep

BETA, LR, DEPTH = 0.25, 0.05, 3


def _point(data, temperature):
    widths = [1] * (DEPTH + 1)
    ens = ge.Ensemble(widths, 16)
    ens.set_weights(traps.aligned_weights(data, widths, 0, BETA))
    thr = float(theory.mode_thresholds(data.eta_hat[0], BETA, DEPTH).lam)
    return EscapePoint(
        labels={"temperature": temperature},
        row={"dE_over_T": 1.0 / temperature},
        ensemble=ens,
        data=data,
        criterion=ModeThreshold(0, value=thr, on="sv"),
        max_steps=3000,
        lr=LR,
        beta=BETA,
        temperature=temperature,
        seed=3,
    )


def test_one_rate_row_per_point_equal_to_a_direct_run():
    data = ge.teacher_data([0.8], 2, 0, seed=0, exact_moments=True)
    temps = [0.02, 0.01]
    sweep = escape_sweep((_point(data, t) for t in temps), time="time_continuous", n_threads=1)
    assert list(sweep.rates.columns) == ["temperature", "dE_over_T", *RATE_COLUMNS]
    assert list(sweep.rates.temperature) == temps
    assert list(sweep.trajectories.temperature.unique()) == temps
    for (t, row), direct_point in zip(
        sweep.rates.groupby("temperature", sort=False),
        (_point(data, t) for t in temps),
        strict=True,
    ):
        p = direct_point
        direct = p.ensemble.run_until_escape(
            p.data, p.criterion, p.max_steps, p.lr, p.beta, temperature=p.temperature, seed=3
        ).table
        got = sweep.trajectories[sweep.trajectories.temperature == t].reset_index(drop=True)
        assert got.drop(columns="temperature").equals(direct.drop(columns="temperature"))
        rate = stats.escape_rate(direct, time="time_continuous")
        r = row.iloc[0]
        assert r.n == len(direct) and r.escaped == direct.escaped.sum() > 0
        assert r.tau == rate.tau and r.tau_lower == rate.tau_lower
        esc = direct[direct.escaped].escape_epoch
        assert r.median_escape_epoch == esc.median() and r.max_steps == 3000
    # hotter escapes sooner
    assert sweep.rates.tau.iloc[0] < sweep.rates.tau.iloc[1]
    assert np.isfinite(sweep.rates.escape_epoch_q90).all()
