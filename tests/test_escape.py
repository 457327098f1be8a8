"""Escape detection in the core: invariance of exact traps, exact detection, determinism,
result tables."""

import numpy as np
import pandas as pd
import pytest

import grokescape as ge
from grokescape import theory, traps
from grokescape.escape import EscapeResult, ModeThreshold, TestMSEThreshold

WIDTHS = [2, 10, 10, 2]


@pytest.fixture(scope="module")
def data():
    return ge.teacher_data([0.9, 0.8], 512, 512, seed=0)


def rank1_trap(data, beta, n_members, residual=0.0, kind="channel", seed=0):
    ens = ge.Ensemble(WIDTHS, n_members)
    ens.set_weights(
        traps.aligned_weights(
            data,
            WIDTHS,
            1,
            beta,
            residual=residual,
            residual_kind=kind,
            n_members=n_members,
            seed=seed,
        )
    )
    return ens


@pytest.mark.parametrize("beta", [0.32, 0.03])
def test_exact_rank1_trap_never_escapes_under_pure_sgd_but_does_with_noise(data, beta):
    """physics.md section 5: layers of rank <= r stay rank <= r under SGD in a bias-free
    linear network, so an exact rank-1 trap cannot escape without something that breaks
    the invariance."""
    ens = rank1_trap(data, beta, 100)
    res = ens.run_until_escape(
        data, ModeThreshold(1), 2000 * 8, lr=0.08, beta=beta, batch_size=64, seed=1
    )
    assert res.n_escaped == 0 and res.table["censored"].all() and len(res.table) == 100
    obs = ens.observables(data, beta)
    assert obs["sv_1"].max() < 1e-14 * obs["sv_0"].min()  # rank 1 to rounding
    assert np.all(traps.layer_residuals(ens, 1) == 0.0)  # unlearned channels exactly zero
    # the same state with additive Langevin noise escapes
    noisy = rank1_trap(data, beta, 100)
    dE = float(theory.barrier(data.eta_hat[1], beta, 3))
    res = noisy.run_until_escape(
        data,
        ModeThreshold(1),
        2000 * 8,
        lr=0.08,
        beta=beta,
        batch_size=64,
        temperature=max(dE / 2, 1e-6),
        seed=1,
    )
    assert res.n_escaped >= 90


@pytest.mark.parametrize(
    "hold,criterion",
    [
        (0, ModeThreshold(1)),
        (24, ModeThreshold(1, check_every=3)),
        (0, ModeThreshold(1, value=0.1, on="sv")),
        (16, TestMSEThreshold(check_every=8)),
    ],
)
def test_detection_is_exact_on_replay(data, hold, criterion):
    """Replaying each trajectory with train() and recording every step shows the criterion
    first holding, and holding at every check through its hold, at the escape step."""
    criterion = type(criterion)(**{**criterion.__dict__, "hold": hold})
    beta, temp = 0.2, 2e-3
    ens = rank1_trap(data, beta, 12)
    w0 = [w.copy() for w in ens.weights]
    res = ens.run_until_escape(
        data, criterion, 4000, lr=0.05, beta=beta, batch_size=64, temperature=temp, seed=3
    )
    assert res.n_escaped >= 8
    values = res.settings["criterion"]["values"]
    check = res.settings["criterion"]["check_every"]
    replay = ge.Ensemble(WIDTHS, 12)
    replay.set_weights(w0)
    hist = replay.train(
        data, 4000, 0.05, beta, batch_size=64, temperature=temp, seed=3, record_every=1
    )
    if isinstance(criterion, TestMSEThreshold):
        holds = hist.test_mse < values
    elif criterion.on == "sv":
        holds = hist.singular_values[:, :, criterion.mode] > values
    else:
        holds = hist.lam[:, :, criterion.mode] > values
    for row in res.table.itertuples():
        m = row.member
        checks = np.arange(check, 4001, check)
        h = holds[checks, m]
        if row.escaped:
            t = int(row.escape_step)
            k = np.flatnonzero(checks == t)[0]
            window = (checks >= t) & (checks <= t + hold)
            assert h[window].all(), "criterion must hold through the hold"
            # no earlier run of holds lasting the hold
            for j in range(k):
                if h[j] and (j == 0 or not h[j - 1]):
                    run = (checks >= checks[j]) & (checks <= checks[j] + hold)
                    assert not h[run].all()
            assert row.detect_step == checks[k + np.count_nonzero(window) - 1]
        else:
            assert row.censored and row.time == 4000


@pytest.mark.parametrize("refill", [False, True])
def test_escape_tables_are_bit_identical_across_threads_and_chunks(data, refill, monkeypatch):
    from grokescape import _engine

    def run(n_threads, chunk_seconds, window=_engine._WINDOW_STEPS, members=10):
        monkeypatch.setattr(_engine, "_CHUNK_SECONDS", chunk_seconds)
        monkeypatch.setattr(_engine, "_WINDOW_STEPS", window)
        ens = rank1_trap(data, 0.2, members, residual=0.05, kind="random", seed=4)
        res = ens.run_until_escape(
            data,
            ModeThreshold(1),
            3000,
            lr=0.05,
            beta=0.2,
            batch_size=64,
            temperature=1e-3,
            seed=5,
            refill=refill,
            n_threads=n_threads,
        )
        return res.table, ens.params.copy()

    a, pa = run(1, 0.25)
    b, pb = run(2, 0.25)
    c, pc = run(2, 1e-6, window=1)  # one step per call into the core
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert np.array_equal(pa, pb) and np.array_equal(pa, pc)
    # blocks of 16 members through windows of 5 steps: the calls split the members too
    d, pd_ = run(2, 0.25, members=40)
    e, pe = run(2, 1e-6, window=5, members=40)
    pd.testing.assert_frame_equal(d, e)
    assert np.array_equal(pd_, pe)
    if refill:
        assert len(a) > 10 and a["trajectory"].is_unique
        per_slot = a.groupby("member")["time"].sum()
        assert np.all(per_slot <= 3000)
        # every slot runs the whole budget: escaped trajectories plus the censored one
        censored = a[a["censored"]].set_index("member")["detect_step"]
        escaped_total = a[a["escaped"]].groupby("member")["detect_step"].sum()
        assert np.all(escaped_total.reindex(censored.index, fill_value=0) + censored == 3000)


def test_refilled_trajectory_equals_a_fresh_trajectory_with_its_stream(data):
    ens = rank1_trap(data, 0.2, 4, residual=0.05, kind="random", seed=4)
    w0 = [w.copy() for w in ens.weights]
    res = ens.run_until_escape(
        data,
        ModeThreshold(1),
        4000,
        lr=0.05,
        beta=0.2,
        batch_size=64,
        temperature=2e-3,
        seed=5,
        refill=True,
    )
    second = res.table[(res.table["trajectory"] >= 4) & res.table["escaped"]].iloc[0]
    m, tid = int(second["member"]), int(second["trajectory"])
    fresh = ge.Ensemble(WIDTHS, 4)
    fresh.set_weights(w0)
    streams = np.arange(4)
    streams[m] = tid
    fresh.set_streams(streams)
    again = fresh.run_until_escape(
        data, ModeThreshold(1), 4000, lr=0.05, beta=0.2, batch_size=64, temperature=2e-3, seed=5
    )
    row = again.table[again.table["member"] == m].iloc[0]
    assert row["escaped"] and row["escape_step"] == second["escape_step"]


def test_diverging_trajectories_are_flagged(data):
    ens = rank1_trap(data, 0.2, 6)
    lr = np.array([0.05, 30.0, 0.05, 30.0, 0.05, 0.05])
    # (a mode threshold would count the first exploding step as an escape)
    res = ens.run_until_escape(
        data, TestMSEThreshold(), 500, lr=lr, beta=0.2, batch_size=64, temperature=1e-3
    )
    assert list(res.table["diverged"]) == [False, True, False, True, False, False]
    assert ens.diverged[1] and not ens.diverged[0]
    with pytest.warns(UserWarning):
        rate = res.rate()
    assert rate.n == 4


def test_result_round_trips_through_parquet_and_csv(data, tmp_path):
    ens = rank1_trap(data, 0.2, 8, residual=0.05, kind="random")
    res = ens.run_until_escape(
        data,
        ModeThreshold(1),
        1500,
        lr=0.05,
        beta=0.2,
        batch_size=64,
        temperature=2e-3,
        refill=True,
    )
    for name in ("r.parquet", "r.csv"):
        path = res.save(tmp_path / name)
        back = EscapeResult.load(path)
        pd.testing.assert_frame_equal(back.table, res.table, check_dtype=False)
        assert back.settings["criterion"]["type"] == "ModeThreshold"
        assert back.settings["seed"] == res.settings["seed"]


def test_bad_escape_arguments(data):
    ens = rank1_trap(data, 0.2, 2)
    with pytest.raises(TypeError, match="criterion"):
        ens.run_until_escape(data, "lambda_1 > 0.2", 10, 0.05, 0.2)
    with pytest.raises(ValueError, match="max_steps"):
        ens.run_until_escape(data, ModeThreshold(1), 0, 0.05, 0.2)
    with pytest.raises(ValueError, match="criterion.mode"):
        ens.run_until_escape(data, ModeThreshold(5), 10, 0.05, 0.2)
    with pytest.raises(ValueError, match="criterion.value: mode 1"):
        ens.run_until_escape(data, ModeThreshold(1), 10, 0.05, 0.5)  # above its spinodal
    with pytest.raises(ValueError, match="already satisfied"):
        ens.run_until_escape(data, ModeThreshold(0), 10, 0.05, 0.2)  # mode 0 is learned
    with pytest.raises(ValueError, match="criterion.hold"):
        ens.run_until_escape(data, ModeThreshold(1, hold=-1), 10, 0.05, 0.2)
    with pytest.raises(ValueError, match="criterion.on"):
        ens.run_until_escape(data, ModeThreshold(1, on="rank"), 10, 0.05, 0.2)


def test_default_thresholds_come_from_theory(data):
    ens = rank1_trap(data, 0.32, 3)
    res = ens.run_until_escape(data, ModeThreshold(1), 10, 0.05, 0.32, batch_size=64)
    expected = theory.mode_thresholds(data.eta_hat[1], 0.32, 3).lam
    np.testing.assert_allclose(res.settings["criterion"]["values"], expected)
    res = ens.run_until_escape(data, TestMSEThreshold(), 10, 0.05, 0.32, batch_size=64)
    sp = theory.stationary_points(data.eta_hat, 0.32, 3)
    _, rank1 = theory.state_mse(data, [sp.minimum[0], 0.0])
    _, rank2 = theory.state_mse(data, [sp.minimum[0], sp.minimum[1]])
    np.testing.assert_allclose(res.settings["criterion"]["values"], 0.5 * (rank1 + rank2))
    assert 0.5 < 0.5 * (rank1 + rank2) < 0.7  # between the rank-2 and rank-1 plateaus


def test_gradient_noise_scale_matches_per_sample_reference(data):
    import reference as ref

    from grokescape.sgd_noise import gradient_noise_scale

    ens = ge.Ensemble(WIDTHS, 3)
    ens.init_random(seed=2)
    table = gradient_noise_scale(ens, data, batch_size=64, lr=0.08)
    for m in range(3):
        w = [a[m] for a in ens.weights]
        grads = []
        for i in range(data.n_train):
            g, _ = ref.gradients(
                w, None, data.x_train[i : i + 1], data.y_train[i : i + 1], 0.0, l2=False
            )
            grads.append(np.concatenate([x.ravel() for x in g]))
        grads = np.array(grads)
        trace = np.sum(np.var(grads, axis=0))
        np.testing.assert_allclose(table.loc[m, "C_total"], trace, rtol=1e-10)
    assert np.allclose(table["C_per_weight"], table["C_total"] / 140)
    np.testing.assert_allclose(table["T_eff_paper_total"], 0.08 / (64 * table["C_total"]))
    np.testing.assert_allclose(table["T_langevin"], 0.08 * table["C_per_weight"] / 128)
