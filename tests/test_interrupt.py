"""Ctrl-C during a long train() returns promptly and leaves a consistent state."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import grokescape as ge


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_stops_within_a_chunk_and_keeps_completed_work(request):
    data = ge.teacher_data([0.9, 0.8], 512, 64, seed=0)
    ens = ge.Ensemble([2, 10, 10, 2], 500)
    ens.init_random(seed=1)
    steps = 10**6  # an hour of work: only an interrupt ends this call
    # a shell starts background jobs with SIGINT ignored: install Python's handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    timer = threading.Timer(0.7, os.kill, args=(os.getpid(), signal.SIGINT))
    tic = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt, match="interrupted after"):
        ens.train(
            data, steps, 0.05, 0.1, batch_size=64, temperature=1e-4, seed=2, record_every=1000
        )
    elapsed = time.perf_counter() - tic
    timer.cancel()
    assert elapsed < 10.0  # a chunk is about 0.25 s of work
    done = int(ens.steps[0])
    assert 0 < done < steps and np.all(ens.steps == done)
    hist = ens.last_history
    assert hist.interrupted and hist.step[-1] <= done and np.all(np.isfinite(hist.train_mse))
    # the interrupted state is exactly the state of an uninterrupted run of `done` steps
    ref = ge.Ensemble([2, 10, 10, 2], 500)
    ref.init_random(seed=1)
    ref_hist = ref.train(
        data, done, 0.05, 0.1, batch_size=64, temperature=1e-4, seed=2, record_every=1000
    )
    assert np.array_equal(ref.params, ens.params)
    n = hist.n_records
    assert np.array_equal(ref_hist.train_mse[:n], hist.train_mse)
    # and training on continues the same trajectory
    ens.train(data, 10, 0.05, 0.1, batch_size=64, temperature=1e-4, seed=2)
    ref.train(data, 10, 0.05, 0.1, batch_size=64, temperature=1e-4, seed=2)
    assert np.array_equal(ref.params, ens.params)


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_between_member_blocks_finishes_the_window_in_progress(request, monkeypatch):
    # Large ensembles go in blocks of members through windows of steps; a Ctrl-C lets the
    # window in progress finish, so that every member stands at the same step and nothing
    # computed is lost: exactly the state of an uninterrupted shorter run.
    from grokescape import _engine

    monkeypatch.setattr(_engine, "_CHUNK_SECONDS", 0.02)  # several blocks per window
    data = ge.teacher_data([0.9, 0.8], 512, 64, seed=0)
    ens = ge.Ensemble([2, 10, 10, 2], 3000)
    ens.init_random(seed=1)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    calls = []
    real = _engine.core.train
    monkeypatch.setattr(
        _engine.core, "train", lambda *a: (calls.append(a[-1]), real(*a))[1], raising=True
    )
    timer = threading.Timer(1.5, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    kw = dict(batch_size=64, temperature=1e-4, seed=2, record_every=200)
    tic = time.perf_counter()
    with pytest.raises(KeyboardInterrupt, match="interrupted after"):
        ens.train(data, 10**5, 0.05, 0.1, **kw)  # half a minute of work or more
    assert time.perf_counter() - tic < 10.0
    timer.cancel()
    assert len(calls) > 3  # the run did go in blocks of members
    done = int(ens.steps[0])
    assert done > 0 and np.all(ens.steps == done)
    hist = ens.last_history
    assert hist.interrupted and hist.step[-1] <= done and np.all(np.isfinite(hist.train_mse))
    ref = ge.Ensemble([2, 10, 10, 2], 3000)
    ref.init_random(seed=1)
    ref_hist = ref.train(data, done, 0.05, 0.1, **kw)
    assert np.array_equal(ref.params, ens.params)
    assert np.array_equal(ref_hist.train_mse[: hist.n_records], hist.train_mse)


def test_windows_shorter_than_an_epoch_run_to_its_end():
    # A window that ends inside an epoch makes the next one draw that epoch's permutation
    # again (a cost of several steps per member): windows shorter than an epoch are
    # lengthened to its end, at most 8-fold and only while such windows stay short.
    from grokescape._engine import _Calls

    calls = _Calls(total=100, n_members=10**6, per_epoch=8, start_step=3, bar=None)
    assert calls._window(0, 2, 100) == 5  # steps 3..7: to the end of the first epoch
    assert calls._window(5, 1, 95) == 8  # a whole epoch
    assert calls._window(5, 16, 95) == 16  # longer windows end on a boundary as before
    assert calls._window(5, 13, 95) == 8
    assert calls._window(93, 2, 7) == 7  # the run's end comes first
    calls.epoch_windows = False  # a lengthened window took too long
    assert calls._window(5, 2, 95) == 2
    b1 = _Calls(total=10**4, n_members=10**6, per_epoch=512, start_step=0, bar=None)
    assert b1._window(3, 10, 10**4 - 3) == 10  # 509 steps to the epoch's end: too far
    assert b1._window(3, 100, 10**4 - 3) == 509
