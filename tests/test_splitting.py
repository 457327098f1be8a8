"""Rare-event splitting (grokescape.splitting, cpp/include/grokescape/splitting.hpp).

Unbiasedness is a z-test of the mean of many independent AMS runs against a brute-force
probability from the same start state, with a continuous score and with a coarsely
quantized one (ties); the naive variant (kill exactly k, parents may tie, branch at >=)
must fail the same test, which shows that the test can fail. Then the two-stage mean
escape time against brute-force escape runs and against Kramers-Langer, the fixed-horizon
probability against Kaplan-Meier, score invariance, determinism and argument checks.
CI runs these at reduced size; GROKESCAPE_FULL_VALIDATION=1 runs them full size."""

import math

import numpy as np
import pytest
from conftest import FULL_VALIDATION

import grokescape as ge
from grokescape import splitting, theory
from grokescape.escape import ModeThreshold, TestMSEThreshold
from grokescape.stats import survival_curve

ETA, BETA, LR = 0.8, 0.32, 0.01
CHAIN = [1, 1, 1, 1]
# A start state between the trap and the saddle (lambda = 0.3^3 = 0.027; saddle 0.0925).
START_W = 0.3
KW = dict(criterion=ModeThreshold(0), lr=LR, beta=BETA, temperature=5e-3, z_a=0.0, z_b=0.2)
RUNS = 400 if FULL_VALIDATION else 60


@pytest.fixture(scope="module")
def data():
    return ge.teacher_data([ETA], 64, 0, seed=0, exact_moments=True)


@pytest.fixture(scope="module")
def start():
    ens = ge.Ensemble(CHAIN, 1)
    ens.set_weights([np.full((1, 1), START_W)] * 3)
    return ens


@pytest.fixture(scope="module")
def brute_force(data, start):
    """P(B before A) by brute force: 2e5 trajectories (first_run far from the AMS runs')."""
    out = {}
    for quantum in (0.0, 0.02):
        res = splitting.escape_probability(
            data, start, n=20_000, k=1, runs=10, max_iterations=0, quantum=quantum,
            first_run=10**6, **KW,
        )  # fmt: skip
        out[quantum] = res
    return out


def z_score(res, ref):
    return (res.p - ref.p) / math.hypot(res.stderr, ref.stderr)


@pytest.mark.parametrize("quantum", [0.0, 0.02], ids=["continuous", "quantized"])
@pytest.mark.parametrize("n,k", [(20, 1), (20, 2), (100, 1), (100, 10)])
def test_ams_is_unbiased(data, start, brute_force, n, k, quantum):
    runs = RUNS if n == 20 else RUNS // 3
    res = splitting.escape_probability(data, start, n=n, k=k, runs=runs, quantum=quantum, **KW)
    ref = brute_force[quantum]
    assert ref.p > 0.01 and res.n_runs == runs
    assert abs(z_score(res, ref)) < 3.0, (res.p, res.stderr, ref.p, ref.stderr)
    # runs iterate (the estimate is not brute force) and every run finished in B
    assert res.table["iterations"].min() > 0 and np.all(res.table["in_b"] > 0)


@pytest.mark.parametrize("k", [1, 2])
def test_naive_variant_fails_the_same_z_test_where_scores_tie(data, start, brute_force, k):
    res = splitting.escape_probability(
        data, start, n=20, k=k, runs=RUNS, quantum=0.02, _naive=True, **KW
    )
    assert z_score(res, brute_force[0.02]) < -5.0


def test_runs_do_not_depend_on_threads_or_on_how_they_are_batched(data, start):
    kw = dict(n=20, k=2, **KW)
    a = splitting.escape_probability(data, start, runs=6, n_threads=1, **kw).table
    b = splitting.escape_probability(data, start, runs=6, n_threads=2, **kw).table
    c1 = splitting.escape_probability(data, start, runs=2, **kw).table
    c2 = splitting.escape_probability(data, start, runs=4, first_run=2, **kw).table
    for t in (b, np.concatenate([c1.to_numpy(), c2.to_numpy()])):
        assert np.array_equal(a.to_numpy(), np.asarray(t))


def test_quantized_scores_change_a_not_the_estimate_rule(data, start, brute_force):
    # floor(xi / q) q <= 0 means xi < q: A grows, so p falls, for brute force and AMS alike
    assert brute_force[0.02].p < brute_force[0.0].p


@pytest.mark.slow
def test_mean_escape_time_matches_brute_force_and_kramers():
    """tau about 1e5 steps (dE/T = 6), where brute force still reaches: the two-stage
    estimate, the censoring-aware brute-force rate and Kramers-Langer agree."""
    lr, depth = 0.05, 3
    data = ge.teacher_data([ETA], 2, 0, seed=0, exact_moments=True)
    d_e = float(theory.barrier(ETA, BETA, depth))
    temp = d_e / 6.0
    kl = float(theory.kramers_escape_time(ETA, BETA, depth, temp, lr=lr).tau_steps)
    trap = ge.Ensemble(CHAIN, 256)
    trap.set_weights([np.zeros((1, 1))] * depth)
    m = splitting.mean_escape_time(
        data, trap, ModeThreshold(0), lr=lr, beta=BETA, temperature=temp, loop_steps=20_000,
        n=100, k=10, runs=32 if FULL_VALIDATION else 16, seed=1,
    )  # fmt: skip
    slots = 1000 if FULL_VALIDATION else 300
    ens = ge.Ensemble(CHAIN, slots)
    ens.set_weights([np.zeros((1, 1))] * depth)
    res = ens.run_until_escape(
        data, ModeThreshold(0), int(2.2 * kl * (2000 if FULL_VALIDATION else 600) / slots),
        lr=lr, beta=BETA, temperature=temp, refill=True, seed=60,
    )  # fmt: skip
    brute = res.rate()
    assert m.interval[0] < m.tau < m.interval[1]
    assert m.interval[0] < brute.tau_upper and brute.tau_lower < m.interval[1], (m, brute)
    assert abs(m.tau / kl - 1) < 0.15, (m.tau, kl)
    # every intermediate quantity is there and consistent
    assert m.n_loops > 100 and m.n_ups >= m.n_loops and 0 < m.p.p < 0.1
    assert m.tau == pytest.approx((1 / m.p.p - 1) * m.loop + m.up + m.reactive)
    assert m.tau_continuous == pytest.approx(lr * m.tau)


@pytest.mark.slow
def test_fixed_horizon_probability_matches_kaplan_meier():
    """TAMS P(tau < T_f) from the trap equals 1 - S_KM(T_f) of brute-force escape runs."""
    lr, depth = 0.05, 3
    data = ge.teacher_data([ETA], 2, 0, seed=0, exact_moments=True)
    temp = float(theory.barrier(ETA, BETA, depth)) / 5.0
    horizon = 4000
    trap = ge.Ensemble(CHAIN, 1)
    trap.set_weights([np.zeros((1, 1))] * depth)
    tams = splitting.escape_before(
        data, trap, horizon, ModeThreshold(0), lr=lr, beta=BETA, temperature=temp, n=100,
        k=10, runs=40 if FULL_VALIDATION else 20, seed=3,
    )  # fmt: skip
    slots = 20_000 if FULL_VALIDATION else 6000
    ens = ge.Ensemble(CHAIN, slots)
    ens.set_weights([np.zeros((1, 1))] * depth)
    res = ens.run_until_escape(
        data, ModeThreshold(0, check_every=1), horizon, lr=lr, beta=BETA, temperature=temp,
        seed=4,
    )  # fmt: skip
    km = survival_curve(res.table, time="time")
    at = np.searchsorted(km["time"].to_numpy(), horizon, side="right") - 1
    s_at = float(km["survival"].iloc[at])  # right-continuous: the value just after T_f
    p_km = 1.0 - s_at
    se_km = math.sqrt(p_km * (1 - p_km) / slots)
    assert 0.01 < p_km < 0.5
    assert abs(tams.p - p_km) / math.hypot(tams.stderr, se_km) < 3.0, (tams.p, p_km)


@pytest.mark.slow
def test_mode_amplitude_and_test_mse_scores_give_the_same_time():
    """Score invariance: the splitting estimate does not depend on the score, given
    interfaces that define the same A and B (for the chain with exact moments the test MSE
    is a decreasing function of lambda below eta)."""
    lr, depth = 0.05, 3
    data = ge.teacher_data([ETA], 2, 2, seed=0, exact_moments=True)
    temp = float(theory.barrier(ETA, BETA, depth)) / 8.0
    trap = ge.Ensemble(CHAIN, 128)
    trap.set_weights([np.zeros((1, 1))] * depth)
    lam = splitting.default_interfaces(data, ModeThreshold(0), BETA, temp, depth)

    def mse(lam_value):  # test MSE of the chain at amplitude lambda (one output)
        _, test = theory.state_mse(data, np.array([lam_value]))
        return float(test)

    runs = 24 if FULL_VALIDATION else 12
    common = dict(lr=lr, beta=BETA, temperature=temp, loop_steps=10_000, n=100, k=10,
                  runs=runs, seed=5)  # fmt: skip
    a = splitting.mean_escape_time(data, trap, ModeThreshold(0), **lam, **common)
    b = splitting.mean_escape_time(
        data, trap, TestMSEThreshold(), z_a=-mse(lam["z_a"]), z_sigma=-mse(lam["z_sigma"]),
        z_b=-mse(lam["z_b"]), **common,
    )  # fmt: skip
    assert a.interval[0] < b.tau < a.interval[1] or b.interval[0] < a.tau < b.interval[1]
    assert abs(math.log(a.tau / b.tau)) < 0.25, (a, b)


def test_arguments_are_checked(data, start):
    kw = {k: v for k, v in KW.items() if k not in ("z_a", "z_b")}
    with pytest.raises(ValueError, match="k: expected"):
        splitting.escape_probability(data, start, n=10, k=10, **kw)
    with pytest.raises(ValueError, match="z_a, z_b"):
        splitting.escape_probability(data, start, z_a=0.3, z_b=0.2, **kw)
    with pytest.raises(ValueError, match="horizon"):
        splitting.escape_probability(data, start, z_a=-math.inf, z_b=0.2, **kw)
    trap = ge.Ensemble(CHAIN, 1)  # zero weights: lambda = 0 = z_a, in A
    with pytest.raises(ValueError, match="in A"):
        splitting.escape_probability(data, trap, z_a=0.0, z_b=0.2, **kw)
    with pytest.raises(ValueError, match="criterion.mode"):
        splitting.escape_probability(
            data, start, z_a=0.0, z_b=0.2, **{**kw, "criterion": ModeThreshold(3)}
        )
    with pytest.raises(ValueError, match="interfaces"):
        splitting.escape_probability(data, start, **{**kw, "criterion": TestMSEThreshold()})
    with pytest.raises(TypeError, match="start"):
        splitting.escape_probability(data, [1, 2], z_a=0.0, z_b=0.2, **kw)
    with pytest.raises(ValueError, match="in A"):
        splitting.mean_escape_time(data, start, **{**kw})
    with pytest.raises(ValueError, match="z_a"):
        splitting.escape_before(data, start, 100, z_a=0.0, **kw)


def test_defaults_come_from_the_theory(data):
    z = splitting.default_interfaces(data, ModeThreshold(0), BETA, 1e-3, 3)
    sp = theory.stationary_points(data.eta_hat[0], BETA, 3)
    thr = float(np.asarray(theory.mode_thresholds(data.eta_hat[0], BETA, 3).lam))
    assert z["z_a"] == 0.0 and z["z_b"] == pytest.approx(thr)
    assert z["z_sigma"] == pytest.approx((4e-3 / (3 * BETA)) ** 1.5)
    assert 0 < z["z_sigma"] < 0.5 * float(np.asarray(sp.saddle).ravel()[0])


def test_mean_escape_time_does_not_depend_on_threads_or_calls(monkeypatch):
    """Stage 1's members escape and restart (meeting the same step counts again); the pool
    of Sigma states, and with it the estimate, must not depend on how the run was split
    into calls or threads (minibatches, as in the depth experiment)."""
    from grokescape import _engine, traps

    depth, beta, widths = 4, 0.2, [2, 10, 10, 10, 2]
    data = ge.teacher_data([0.9, 0.8], 512, 0, seed=24)
    thr = float(theory.mode_thresholds(data.eta_hat[1], beta, depth).lam)

    def estimate(chunk, first_work, threads):
        monkeypatch.setattr(_engine, "_CHUNK_SECONDS", chunk)
        monkeypatch.setattr(_engine, "_FIRST_CALL_WORK", first_work)
        trap = ge.Ensemble(widths, 16)
        trap.set_weights(traps.aligned_weights(data, widths, 1, beta, n_members=16))
        return splitting.mean_escape_time(
            data, trap, ModeThreshold(1, value=thr), lr=0.05, beta=beta, temperature=0.003,
            batch_size=64, loop_steps=2000, n=20, k=2, runs=4, seed=4, n_threads=threads,
        )  # fmt: skip

    a = estimate(0.25, 200_000, 2)
    assert (a.loops["kind"] == "reactive").sum() > 0  # restarts happened
    for b in (estimate(1e-4, 50, 2), estimate(0.25, 200_000, 1)):
        assert (b.tau, b.p.p, b.loop, b.up, b.reactive) == (a.tau, a.p.p, a.loop, a.up, a.reactive)
