"""Validation against Kramers-Langer theory (physics.md section 5): the width-1 chain with
exact-moment data and additive Langevin noise escapes from the trap at the rate the theory
predicts with no free parameter. Runs reduced in CI; GROKESCAPE_FULL_VALIDATION=1 runs the
full size (>= 2000 escapes per temperature at dE/T = 5, 6, 7)."""

import numpy as np
import pytest
from conftest import FULL_VALIDATION

import grokescape as ge
from grokescape import theory
from grokescape.escape import ModeThreshold
from grokescape.stats import arrhenius_fit

ETA, LR = 0.8, 0.05
RATIOS = (5.0, 6.0, 7.0) if FULL_VALIDATION else (4.0, 5.0, 6.0)
ESCAPES = 2000 if FULL_VALIDATION else 1500


@pytest.mark.slow
@pytest.mark.parametrize("depth,beta", [(3, 0.32), (4, 0.2)])
def test_mean_escape_time_and_barrier_match_kramers(depth, beta):
    data = ge.teacher_data([ETA], 2, 0, seed=0, exact_moments=True)
    d_e = float(theory.barrier(ETA, beta, depth))
    n_slots = 1000
    rows = []
    tables = []
    for ratio in RATIOS:
        temp = d_e / ratio
        pred = theory.kramers_escape_time(ETA, beta, depth, temp, lr=LR)
        ens = ge.Ensemble([1] * (depth + 1), n_slots)
        ens.set_weights([np.zeros((1, 1))] * depth)  # the trap lambda = 0
        # with refill, every slot runs the budget: about ESCAPES escapes in all
        budget = int(np.ceil(ESCAPES / n_slots * float(pred.tau_steps) * 1.1))
        res = ens.run_until_escape(
            data,
            ModeThreshold(0),
            budget,
            lr=LR,
            beta=beta,
            temperature=temp,
            refill=True,
            seed=int(ratio * 10),
        )
        rate = res.rate(time="time_continuous")
        rows.append((ratio, rate.tau, float(pred.tau), rate.events))
        tables.append(res.table)
        assert rate.events >= ESCAPES
        assert abs(rate.tau / float(pred.tau) - 1) < 0.10, (ratio, rate.tau, float(pred.tau))
    fit = arrhenius_fit(
        __import__("pandas").concat(tables, ignore_index=True), x="1/T", time="time_continuous"
    )
    # the numbers behind docs/validation.md (shown with pytest -s)
    print(f"\ndepth {depth}, beta {beta}, dE {d_e:.6g}, fitted dE {fit.dE:.6g}")
    for ratio, tau, pred_tau, events in rows:
        q = tau / pred_tau
        print(f"  dE/T {ratio}: tau {tau:.5g}, Kramers {pred_tau:.5g}, ratio {q:.4f}, n {events}")
    assert abs(fit.dE / d_e - 1) < 0.10, (fit.dE, d_e, rows)
