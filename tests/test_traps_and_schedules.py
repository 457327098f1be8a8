"""Trap states from the theory, the checkpoint protocol, schedules in the core, and the
hysteresis loop of the paper's phase diagram."""

import numpy as np
import pytest

import grokescape as ge
from grokescape import theory, traps
from grokescape.schedule import beta_sweep

WIDTHS = [2, 10, 10, 2]


@pytest.fixture(scope="module")
def data():
    return ge.teacher_data([0.9, 0.8], 512, 512, seed=0)


@pytest.fixture(scope="module")
def exact():
    return ge.teacher_data([0.9, 0.8], 512, 256, seed=1, exact_moments=True)


def test_aligned_weights_place_modes_at_theory_values(data):
    beta = 0.32
    sp = theory.stationary_points(data.eta_hat, beta, 3)
    ens = ge.Ensemble(WIDTHS, 3)
    ens.set_weights(traps.aligned_weights(data, WIDTHS, 1, beta, residual=0.1))
    obs = ens.observables(data, beta)
    np.testing.assert_allclose(obs["lambda_0"], sp.minimum[0], rtol=1e-12)
    np.testing.assert_allclose(obs["lambda_1"], 0.1**3, rtol=1e-10)  # channel residual
    ens.set_weights(traps.aligned_weights(data, WIDTHS, [0, 1], beta))
    obs = ens.observables(data, beta)
    np.testing.assert_allclose(obs[["lambda_0", "lambda_1"]].to_numpy()[0], sp.minimum, rtol=1e-12)
    ens.set_weights(traps.aligned_weights(data, WIDTHS, 0, beta))
    assert np.all(ens.params == 0)


def test_aligned_state_is_a_fixed_point_of_full_batch_gd(exact):
    """physics.md section 4 and issue 3: with exact moments the learned minimum is exact."""
    beta = 0.25
    ens = ge.Ensemble(WIDTHS, 1)
    ens.set_weights(traps.aligned_weights(exact, WIDTHS, 2, beta))
    gw, _ = ens.gradients(exact, beta)
    assert max(np.abs(g).max() for g in gw) < 1e-10
    sp = theory.stationary_points(exact.eta_hat, beta, 3)
    for sign, target in ((+1, "minimum"), (-1, "trap")):
        # just past / just before the saddle of mode 1, mode 0 learned
        lam1 = sp.saddle[1] * (1 + sign * 0.02)
        w = traps.aligned_weights(exact, WIDTHS, [0], beta, residual=lam1 ** (1 / 3))
        ens.set_weights(w)
        ens.train(exact, 4000, 0.1, beta)
        lam = ens.observables(exact, beta)["lambda_1"].iloc[0]
        expected = sp.minimum[1] if target == "minimum" else 0.0
        assert abs(lam - expected) < 1e-6


def test_random_residual_is_off_the_learned_channels_with_given_norm(data):
    w = traps.aligned_weights(
        data, WIDTHS, 1, 0.32, residual=0.01, residual_kind="random", n_members=5, seed=3
    )
    clean = traps.aligned_weights(data, WIDTHS, 1, 0.32)
    for l in range(3):
        diff = w[l] - clean[l][None]
        np.testing.assert_allclose(np.linalg.norm(diff.reshape(5, -1), axis=1), 0.01, rtol=1e-12)
        if l < 2:
            assert np.all(diff[:, 0, :] == 0)  # row of the learned channel untouched
        if l > 0:
            assert np.all(diff[:, :, 0] == 0)  # column of the learned channel untouched
    assert not np.allclose(w[1][0], w[1][1])  # drawn per member
    with pytest.raises(ValueError, match="n_members"):
        traps.aligned_weights(data, WIDTHS, 1, 0.32, residual=0.01, residual_kind="random")
    with pytest.raises(ValueError, match="no learned minimum"):
        traps.aligned_weights(data, WIDTHS, 2, 0.4)
    with pytest.raises(ValueError, match="hidden width"):
        traps.aligned_weights(data, [2, 1, 2], 1, 0.1)


def test_random_residual_is_addressed_by_member_stream():
    """Member m's residual is the row (seed, m, step 0, purpose residual) of standard
    normals cut into the layers' matrices, each scaled to the given Frobenius norm."""
    from grokescape._native import core

    widths, m, size = [3, 4, 2], 5, 0.25
    draws = np.empty((m, 4 * 3 + 2 * 4))
    core.standard_normal(11, np.arange(m, dtype=np.uint64), 0, core.Purpose.residual, draws, 1)
    blocks = [draws[:, :12].reshape(m, 4, 3), draws[:, 12:].reshape(m, 2, 4)]
    res = traps.random_residual(widths, m, size, seed=11)
    for got, block in zip(res, blocks, strict=True):
        norm = np.linalg.norm(block.reshape(m, -1), axis=1)
        assert np.array_equal(got, size * block / norm[:, None, None])
    # a member's draw does not depend on the ensemble's size
    assert all(
        np.array_equal(a[:2], b)
        for a, b in zip(res, traps.random_residual(widths, 2, size, seed=11), strict=True)
    )
    excl = traps.random_residual(widths, m, size, seed=11, exclude_channels=[1, 3])
    assert np.all(excl[0][:, [1, 3], :] == 0) and np.all(excl[1][:, :, [1, 3]] == 0)
    np.testing.assert_allclose(np.linalg.norm(excl[1].reshape(m, -1), axis=1), size, rtol=1e-12)
    with pytest.raises(ValueError, match="exclude_channels"):
        traps.random_residual(widths, m, size, exclude_channels=[4])
    with pytest.raises(ValueError, match="size"):
        traps.random_residual(widths, m, -1.0)


def test_add_random_residual_adds_to_the_weights_and_keeps_biases():
    ens = ge.Ensemble(WIDTHS, 3, bias=True)
    ens.init_random(seed=4)
    ens.set_weights(ens.weights, [np.full((3, w), 0.5) for w in WIDTHS[1:]])
    before = [np.array(w) for w in ens.weights]
    traps.add_random_residual(ens, 0.1, seed=6)
    extra = traps.random_residual(WIDTHS, 3, 0.1, seed=6)
    for w, b, r in zip(ens.weights, before, extra, strict=True):
        assert np.array_equal(w, b + r)
    assert all(np.all(b == 0.5) for b in ens.biases)


def test_checkpoint_protocol_prepares_a_rank1_trap_and_reports_residuals(data):
    ens = ge.Ensemble(WIDTHS, 6)
    ens.init_random(seed=0)
    report = traps.checkpoint_trap(
        ens, data, 0.361, lr=0.08, batch_size=64, block_epochs=100, max_epochs=1500
    )
    assert report["converged_beta0"].all() and report["converged_trap"].all()
    assert np.all(report["epochs_trap"] < 1500)
    assert np.all(report["rank"] == 1)
    sp = theory.stationary_points(data.eta_hat, 0.361, 3)
    np.testing.assert_allclose(report["lambda_0"], sp.minimum[0], rtol=0.03)
    # the unlearned directions decay under L2 to rounding level: the trap is exact, so pure
    # SGD cannot leave it (physics.md section 5)
    assert np.all(report["sv_1"] < 1e-12)
    assert np.all(report[["residual_layer0", "residual_layer1", "residual_layer2"]] < 1e-12)


def test_schedule_equals_successive_train_calls(data):
    stages = [(300, 0.05, 0.0), (200, 0.08, 0.3, 1e-4), {"steps": 100, "lr": 0.02, "beta": 0.1}]
    a = ge.Ensemble(WIDTHS, 4)
    a.init_random(seed=2)
    hist = a.train_schedule(data, stages, batch_size=32, seed=7)
    b = ge.Ensemble(WIDTHS, 4)
    b.init_random(seed=2)
    for st in stages:
        if isinstance(st, dict):
            b.train(data, st["steps"], st["lr"], st["beta"], batch_size=32, seed=7)
        else:
            b.train(
                data,
                st[0],
                st[1],
                st[2],
                batch_size=32,
                seed=7,
                temperature=st[3] if len(st) > 3 else 0.0,
            )
    assert np.array_equal(a.params, b.params)
    assert list(hist.step) == [0, 300, 500, 600] and list(hist.stage) == [0, 0, 1, 2]
    # the last record's loss uses the last stage's beta
    np.testing.assert_allclose(hist.loss[-1], b.loss(data, 0.1), rtol=1e-12)
    with pytest.raises(ValueError, match=r"schedule\[1\]"):
        a.train_schedule(data, [(10, 0.1, 0.1), (10, 0.1)])
    with pytest.raises(ValueError, match=r"schedule\[0\].lr"):
        a.train_schedule(data, [(10, -0.1, 0.1)])


def test_hysteresis_sweep_drops_at_spinodals_and_never_reenters(data):
    """Up from beta = 0 each mode drops within 0.02 of the spinodal of its eta_hat; back
    down without noise a mode at lambda = 0 never comes back (lambda = 0 stays stable)."""
    up = np.round(np.r_[0.0, np.arange(0.26, 0.481, 0.01)], 4)
    down = np.round(np.arange(0.46, -1e-9, -0.02), 4)
    ens = ge.Ensemble(WIDTHS, 8)
    ens.init_random(seed=0)
    sched = [(3000, 0.08, 0.0)] + beta_sweep(np.r_[up[1:], down], 8 * 150, 0.08)
    hist = ens.train_schedule(data, sched, batch_size=64, seed=1)
    lam = hist.lam[1:]  # the state at the end of each stage
    betas = np.r_[up, down]
    beta_c = theory.spinodal_beta(data.eta_hat, 3)
    n_up = len(up)
    for i in range(2):
        learned = np.mean(lam[:n_up, :, i] > 0.05, axis=1)
        assert learned[0] == 1.0
        drop = betas[np.argmax(learned < 0.5)]
        assert abs(drop - beta_c[i]) <= 0.02, (i, drop, beta_c[i])
        assert np.all(lam[n_up:, :, i] < 1e-6)  # no re-entry on the way down
