"""Bit-for-bit reproducibility: thread count, chunking and ensemble size never change a
member's trajectory (every random draw is addressed by seed, member, step and purpose)."""

import numpy as np
import pytest

import grokescape as ge

SETTINGS = [
    dict(batch_size=16, sampling="epoch", temperature=0.0),
    dict(batch_size=16, sampling="epoch", temperature=1e-3),
    dict(batch_size=7, sampling="replacement", temperature=1e-3),
    dict(batch_size=None, sampling="epoch", temperature=2e-3),
    # B = 1 runs members in interleaved groups of four: group composition must not matter
    dict(batch_size=1, sampling="epoch", temperature=0.0),
    dict(batch_size=1, sampling="replacement", temperature=1e-3),
]


@pytest.fixture(scope="module")
def data():
    return ge.teacher_data([0.9, 0.8], 100, 50, seed=11)


def trained(data, n_members, steps_list, n_threads, **kw):
    ens = ge.Ensemble([2, 10, 10, 2], n_members)
    ens.init_random(seed=3)
    hists = [
        ens.train(data, s, 0.05, 0.05, seed=21, n_threads=n_threads, record_every=10, **kw)
        for s in steps_list
    ]
    return ens, hists


@pytest.mark.parametrize("kw", SETTINGS)
def test_one_thread_equals_two_threads(data, kw):
    a, ha = trained(data, 9, [300], 1, **kw)
    b, hb = trained(data, 9, [300], 2, **kw)
    assert np.array_equal(a.params, b.params, equal_nan=True)
    assert np.array_equal(ha[0].lam, hb[0].lam, equal_nan=True)
    assert np.array_equal(ha[0].test_mse, hb[0].test_mse, equal_nan=True)


@pytest.mark.parametrize("kw", SETTINGS)
def test_split_runs_equal_one_run(data, kw):
    # 2000 steps at once vs two calls of 1000 (the epoch boundary falls mid-call: n/B = 6)
    a, _ = trained(data, 4, [2000], 2, **kw)
    b, _ = trained(data, 4, [1000, 1000], 2, **kw)
    c, _ = trained(data, 4, [333, 1, 666, 1000], 1, **kw)
    assert np.array_equal(a.params, b.params, equal_nan=True)
    assert np.array_equal(a.params, c.params, equal_nan=True)
    assert np.array_equal(a.steps, b.steps) and np.array_equal(a.steps, c.steps)
    assert a.steps.max() == 2000


@pytest.mark.parametrize("kw", SETTINGS)
def test_member_trajectory_does_not_depend_on_ensemble_size(data, kw):
    small, hs = trained(data, 3, [400], 2, **kw)
    large, hl = trained(data, 11, [400], 2, **kw)
    assert np.array_equal(small.params, large.params[:3], equal_nan=True)
    assert np.array_equal(hs[0].train_mse, hl[0].train_mse[:, :3], equal_nan=True)


@pytest.mark.parametrize("n_members", [5, 40])
def test_internal_chunking_does_not_change_results(data, monkeypatch, n_members):
    from grokescape import _engine

    a, _ = trained(data, n_members, [500], 2, batch_size=16, temperature=1e-3)
    # one step per core call, in blocks of 16 members (40 members: three blocks per step)
    monkeypatch.setattr(_engine, "_CHUNK_SECONDS", 1e-6)
    monkeypatch.setattr(_engine, "_WINDOW_STEPS", 1)
    b, hb = trained(data, n_members, [500], 2, batch_size=16, temperature=1e-3)
    assert np.array_equal(a.params, b.params)
    assert hb[0].n_records == 51
    # windows of 7 steps, which end mid-epoch (n/B = 6)
    monkeypatch.setattr(_engine, "_WINDOW_STEPS", 7)
    c, hc = trained(data, n_members, [500], 2, batch_size=16, temperature=1e-3)
    assert np.array_equal(a.params, c.params)
    assert np.array_equal(hb[0].train_mse, hc[0].train_mse)


def test_different_seeds_give_different_minibatch_trajectories(data):
    a = ge.Ensemble([2, 10, 10, 2], 2)
    b = ge.Ensemble([2, 10, 10, 2], 2)
    for ens, seed in ((a, 1), (b, 2)):
        ens.init_random(seed=0)
        ens.train(data, 50, 0.05, 0.05, batch_size=16, seed=seed)
    assert not np.array_equal(a.params, b.params)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    n_members=st.integers(1, 5),
    split=st.integers(0, 40),
    batch=st.sampled_from([None, 1, 3, 8, 16]),
    sampling=st.sampled_from(["epoch", "replacement"]),
    temperature=st.sampled_from([0.0, 1e-3]),
    n_threads=st.sampled_from([1, 2]),
)
def test_any_split_of_a_run_is_bit_identical(
    widths, n_members, split, batch, sampling, temperature, n_threads
):
    rng = np.random.default_rng(sum(widths) + split)
    data = ge.Dataset(rng.standard_normal((20, widths[0])), rng.standard_normal((20, widths[-1])))
    kw = dict(batch_size=batch, sampling=sampling, temperature=temperature, seed=9)
    a = ge.Ensemble(widths, n_members)
    b = ge.Ensemble(widths, n_members)
    for e in (a, b):
        e.init_random(seed=4)
    a.train(data, 40, 0.01, 0.1, n_threads=n_threads, **kw)
    b.train(data, split, 0.01, 0.1, n_threads=1, **kw)
    b.train(data, 40 - split, 0.01, 0.1, n_threads=2, **kw)
    assert np.array_equal(a.params, b.params, equal_nan=True)


@pytest.mark.parametrize("batch_size", [1, 16])
@pytest.mark.parametrize("temperature", [0.0, 1e-4])
def test_lane_groups_survive_a_diverging_member(data, temperature, batch_size):
    # Members 1 and 5 diverge part-way; every other member's trajectory is that of the
    # member trained alone. Steps of this float64 linear network run members in vector
    # lanes: four per group at B = 1 (AVX2/AVX-512 builds: groups 0-3 and 4-6), one group of
    # eight at B = 16 with AVX-512 (four with AVX2); a diverged member leaves its group,
    # caught by the check folded into the update (T = 0) or by the pass after noise.
    lr = np.array([0.02, 40.0, 0.02, 0.03, 0.01, 25.0, 0.02])
    e = ge.Ensemble([2, 10, 10, 2], lr.size)
    e.init_random(seed=5)
    start = e.params.copy()
    kw = dict(batch_size=batch_size, seed=4, temperature=temperature, record_every=50)
    hist = e.train(data, 300, lr, 0.01, **kw)
    assert list(np.flatnonzero(hist.diverged)) == [1, 5]
    for m in range(lr.size):
        alone = ge.Ensemble([2, 10, 10, 2], 1)
        alone.set_params(start[m : m + 1])
        alone.set_streams([m])
        h = alone.train(data, 300, lr[m], 0.01, **kw)
        assert np.array_equal(alone.params[0], e.params[m], equal_nan=True), m
        assert alone.steps[0] == e.steps[m]
        assert h.diverged_step[0] == hist.diverged_step[m]
        assert np.array_equal(h.train_mse[:, 0], hist.train_mse[:, m], equal_nan=True)
