"""A member's state is one copyable value: snapshot, restore and clone (member_state.hpp).

Snapshot at step k, restore into a fresh ensemble and run on: bit for bit the run that
was never interrupted, for every step kernel, with and without Langevin noise, with epoch
and with-replacement sampling, and with the snapshot taken mid-epoch."""

import pickle
import threading

import numpy as np
import pytest

import grokescape as ge
from grokescape.ensemble import EnsembleSnapshot

# (widths, batch, bias, activation, dtype, kernel the core must choose where that does not
# depend on the instruction set, else None)
KERNELS = [
    ([2, 10, 10, 2], 16, False, "linear", "float64", "moments"),
    ([2, 10, 10, 2], 1, False, "linear", "float64", "lanes"),
    ([2, 10, 10, 2], 16, True, "linear", "float64", None),  # lane_batches, or rows where
    # the lane copies do not fit L1
    ([2, 10, 10, 2], 16, False, "tanh", "float64", "rows"),
    ([2, 10, 10, 2], 3, False, "tanh", "float64", "samples"),
    ([2, 10, 10, 2], 1, True, "tanh", "float32", "samples"),  # interleaved groups
    ([3, 7, 5, 3], None, False, "tanh", "float64", "rows"),  # full batch, run-time sizes
    ([2, 10, 10, 2], None, False, "linear", "float32", "moments"),  # full batch
]


def _ensemble(widths, bias, activation, dtype, n=9):
    ens = ge.Ensemble(widths, n, bias=bias, activation=activation, dtype=dtype)
    ens.init_random(seed=3)
    return ens


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
@pytest.mark.parametrize("temperature", [0.0, 1e-3])
@pytest.mark.parametrize("widths,batch,bias,activation,dtype,kernel", KERNELS)
def test_restore_and_run_on_is_the_uninterrupted_run(
    widths, batch, bias, activation, dtype, kernel, temperature, sampling, tmp_path
):
    if sampling == "replacement" and batch is None:
        pytest.skip("full batch draws nothing")
    rng = np.random.default_rng(len(widths) + (batch or 0))
    data = ge.Dataset(rng.standard_normal((90, widths[0])), rng.standard_normal((90, widths[-1])))
    kw = dict(batch_size=batch, sampling=sampling, temperature=temperature, seed=5)
    whole = _ensemble(widths, bias, activation, dtype)
    if kernel is not None:
        assert whole.step_kernel(data, batch, sampling) == kernel
    whole.train(data, 100, 0.02, 0.1, **kw)

    first = _ensemble(widths, bias, activation, dtype)
    first.train(data, 37, 0.02, 0.1, **kw)  # mid-epoch for every batch size here
    snap = first.snapshot()
    path = snap.save(tmp_path / "snap")
    fresh = ge.Ensemble(widths, 9, bias=bias, activation=activation, dtype=dtype)
    fresh.restore(EnsembleSnapshot.load(path))
    assert np.array_equal(fresh.params, first.params) and np.array_equal(fresh.steps, first.steps)
    fresh.train(data, 63, 0.02, 0.1, **kw)
    first.train(data, 63, 0.02, 0.1, **kw)
    for ens in (fresh, first):
        assert np.array_equal(ens.params, whole.params, equal_nan=True)
        assert np.array_equal(ens.steps, whole.steps)


def test_restore_subset_of_members_and_errors():
    data = ge.teacher_data([0.9, 0.8], 64, 0, seed=1)
    a = _ensemble([2, 10, 10, 2], False, "linear", "float64", n=6)
    a.train(data, 20, 0.05, 0.1, batch_size=8, temperature=1e-3, seed=2)
    snap = a.snapshot()
    b = ge.Ensemble([2, 10, 10, 2], 12)
    with pytest.raises(ValueError, match="holds 6 members"):
        b.restore(snap)
    b.restore(snap, members=np.arange(6, 12))
    assert np.array_equal(b.params[6:], a.params) and np.array_equal(b.steps[6:], a.steps)
    assert np.array_equal(b.streams[6:], a.streams)
    with pytest.raises(ValueError, match="networks"):
        ge.Ensemble([2, 10, 2], 6).restore(snap)
    with pytest.raises(ValueError, match="networks"):
        ge.Ensemble([2, 10, 10, 2], 6, dtype="float32").restore(snap)
    with pytest.raises(ValueError, match="members"):
        b.restore(snap, members=[0, 1, 2, 3, 4, 99])
    with pytest.raises(TypeError, match="snapshot"):
        b.restore(a.params)
    # an unpickled snapshot's arrays carry dtype objects of their own (equal, not identical)
    c = ge.Ensemble([2, 10, 10, 2], 6)
    c.restore(pickle.loads(pickle.dumps(snap)))
    assert np.array_equal(c.params, a.params) and np.array_equal(c.streams, a.streams)


def test_clone_without_streams_replays_its_source():
    data = ge.teacher_data([0.9, 0.8], 64, 0, seed=1)
    ens = _ensemble([2, 10, 10, 2], False, "linear", "float64", n=4)
    kw = dict(batch_size=8, temperature=1e-3, seed=2)
    ens.train(data, 13, 0.05, 0.1, **kw)
    ens.clone([0, 0], [2, 3])
    ens.train(data, 30, 0.05, 0.1, **kw)
    assert np.array_equal(ens.params[2], ens.params[0])
    assert np.array_equal(ens.params[3], ens.params[0])
    assert not np.array_equal(ens.params[1], ens.params[0])


def test_a_branch_finishes_its_parents_epoch_then_follows_its_own_stream():
    # Without noise the dynamics are fixed by the batches: a branch taken mid-epoch with a
    # fresh stream must finish the epoch with its parent's samples (equal parameters at the
    # epoch's end), then draw its own permutations (different parameters after).
    data = ge.teacher_data([0.9, 0.8], 64, 0, seed=1)  # B = 8: 8 steps per epoch
    ens = _ensemble([2, 10, 10, 2], False, "linear", "float64", n=2)
    kw = dict(batch_size=8, seed=2)
    ens.train(data, 11, 0.05, 0.1, **kw)  # mid-epoch 1
    ens.clone([0], [1], streams=[1000], data=data, batch_size=8)
    assert ens.streams[1] == 1000
    ens.train(data, 5, 0.05, 0.1, **kw)  # to the end of epoch 1
    assert np.array_equal(ens.params[0], ens.params[1])
    ens.train(data, 8, 0.05, 0.1, **kw)
    assert not np.array_equal(ens.params[0], ens.params[1])
    # the branch is the run of a member that used the parent's order for that one epoch
    # and its own stream afterwards; with noise, the streams differ from the first step on
    noisy = _ensemble([2, 10, 10, 2], False, "linear", "float64", n=2)
    noisy.train(data, 11, 0.05, 0.1, temperature=1e-3, **kw)
    noisy.clone([0], [1], streams=[1000], data=data, batch_size=8)
    noisy.train(data, 1, 0.05, 0.1, temperature=1e-3, **kw)
    assert not np.array_equal(noisy.params[0], noisy.params[1])


def test_clone_checks_its_arguments():
    data = ge.teacher_data([0.9, 0.8], 64, 0, seed=1)
    ens = ge.Ensemble([2, 10, 10, 2], 4)
    with pytest.raises(ValueError, match="target"):
        ens.clone([0, 1], [2])
    with pytest.raises(ValueError, match="source"):
        ens.clone([7], [2])
    with pytest.raises(ValueError, match="streams"):
        ens.clone([0], [1], streams=[-1], data=data, batch_size=8)
    with pytest.raises(ValueError, match="data"):
        ens.clone([0], [1], streams=[10])


def test_two_threads_on_one_ensemble_are_refused_not_raced():
    """A second call on an ensemble that is running raises; the first runs to its end."""
    data = ge.teacher_data([0.9, 0.8], 512, 0, seed=0)
    kw = dict(batch_size=64, seed=1, n_threads=1)
    ens = ge.Ensemble([2, 10, 10, 2], 20_000)
    ens.init_random(seed=2)
    errors: list[BaseException] = []
    started = threading.Event()

    def work():
        started.set()
        try:
            ens.train(data, 300, 0.05, 0.1, **kw)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    started.wait()
    try:
        ens.train(data, 300, 0.05, 0.1, **kw)
    except RuntimeError as exc:
        errors.append(exc)
    thread.join()
    assert len(errors) == 1 and "busy" in str(errors[0])
    assert np.all(ens.steps == 300)
    ref = ge.Ensemble([2, 10, 10, 2], 20_000)
    ref.init_random(seed=2)
    ref.train(data, 300, 0.05, 0.1, **kw)
    assert np.array_equal(ref.params, ens.params)


def test_two_ensembles_in_two_threads_equal_serial_runs():
    data = ge.teacher_data([0.9, 0.8], 512, 0, seed=0)
    kw = dict(batch_size=64, temperature=1e-4, seed=1, n_threads=1)
    pair = [ge.Ensemble([2, 10, 10, 2], 500) for _ in range(2)]
    for k, e in enumerate(pair):
        e.init_random(seed=k)
    threads = [threading.Thread(target=e.train, args=(data, 200, 0.05, 0.1), kwargs=kw)
               for e in pair]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, e in enumerate(pair):
        ref = ge.Ensemble([2, 10, 10, 2], 500)
        ref.init_random(seed=k)
        ref.train(data, 200, 0.05, 0.1, **kw)
        assert np.array_equal(ref.params, e.params)


def test_a_failing_thread_set_up_is_an_exception_not_a_hang():
    from grokescape._native import core

    assert core.parallel_selftest(100, 2, -1) == 100
    for failing in (0, 1):
        with pytest.raises(RuntimeError, match=f"make_state failed on thread {failing}"):
            core.parallel_selftest(100, 2, failing)
    assert core.parallel_selftest(100, 2, -1) == 100  # the pool still works afterwards
