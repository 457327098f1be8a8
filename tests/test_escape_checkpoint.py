"""Checkpoints of a long escape run: a run stopped by Ctrl-C or killed (kill -9) resumes
from its checkpoint bit for bit, a finished run's checkpoint gives its result again, and a
checkpoint of another run is refused."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest

import grokescape as ge
from grokescape import traps
from grokescape.escape import ModeThreshold

DATA = dict(eta=[0.9, 0.8], n_train=256, n_test=0, seed=24)


def _start(m=64, residual=1e-3):
    data = ge.teacher_data(**DATA)
    ens = ge.Ensemble([2, 10, 10, 2], m)
    ens.set_weights(
        traps.aligned_weights(
            data,
            [2, 10, 10, 2],
            1,
            0.2,
            residual=residual,
            residual_kind="random",
            n_members=m,
            seed=3,
        )
    )
    return data, ens


def _run(ens, data, max_steps, temperature=0.004, **kw):
    return ens.run_until_escape(
        data,
        ModeThreshold(1, on="sv"),
        max_steps,
        0.05,
        0.2,
        batch_size=64,
        temperature=temperature,
        seed=5,
        **kw,
    )


@pytest.mark.parametrize("refill", [False, True])
def test_checkpointed_run_equals_plain_run_and_gives_its_result_again(tmp_path, refill):
    data, ens = _start()
    ref = _run(ens, data, 3000, refill=refill)
    data, ens = _start()
    path = tmp_path / "run.npz"
    got = _run(ens, data, 3000, refill=refill, checkpoint=path, checkpoint_every=0)
    pd.testing.assert_frame_equal(got.table, ref.table, check_exact=True)
    assert path.exists()
    # a finished run's checkpoint: the same result and final states, nothing computed
    data, again = _start()
    tic = time.perf_counter()
    res = _run(again, data, 3000, refill=refill, checkpoint=path)
    assert time.perf_counter() - tic < 2.0
    pd.testing.assert_frame_equal(res.table, ref.table, check_exact=True)
    assert np.array_equal(again.params, ens.params) and np.array_equal(again.steps, ens.steps)
    assert np.array_equal(again.streams, ens.streams)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    data, ens = _start()
    path = tmp_path / "run.npz"
    _run(ens, data, 200, checkpoint=path)
    data, ens = _start()
    with pytest.raises(ValueError, match="another run"):
        _run(ens, data, 300, checkpoint=path)  # another budget
    data, ens = _start(residual=2e-3)
    with pytest.raises(ValueError, match="another run"):
        _run(ens, data, 200, checkpoint=path)  # other starting states
    path.write_bytes(b"not a checkpoint")
    data, ens = _start()
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        _run(ens, data, 200, checkpoint=path)


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
@pytest.mark.parametrize(
    "refill, temperature, steps",
    [(False, 3e-4, 12_000), (True, 4e-3, 8_000)],  # each about 2 s on one core
)
def test_ctrl_c_then_resume_is_bit_identical(tmp_path, request, refill, temperature, steps):
    kw = dict(refill=refill, temperature=temperature, n_threads=1)
    data, ens = _start(m=200, residual=0.0)
    ref = _run(ens, data, steps, **kw)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    path = tmp_path / "run.npz"
    data, ens = _start(m=200, residual=0.0)
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(ens, data, steps, checkpoint=path, checkpoint_every=3600, **kw)
    finally:
        timer.cancel()
        timer.join()
    assert 0 < int(ens.steps.max()) < steps  # stopped in the middle; saved at the stop
    data, ens = _start(m=200, residual=0.0)
    got = _run(ens, data, steps, checkpoint=path, **kw)
    pd.testing.assert_frame_equal(got.table, ref.table, check_exact=True)


_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_escape_checkpoint import _run, _start
    data, ens = _start(m=200, residual=0.0)
    res = _run(ens, data, 12_000, refill=True, checkpoint={path!r}, checkpoint_every=0.2)
    res.table.to_parquet({out!r})
    """
)


@pytest.mark.skipif(os.name != "posix", reason="needs kill -9")
def test_kill_9_then_resume_is_bit_identical(tmp_path):
    path, out = tmp_path / "run.npz", tmp_path / "table.parquet"
    script = _SCRIPT.format(tests=os.path.dirname(__file__), path=str(path), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # a few checkpoints later
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert path.exists() and not out.exists()
    data, ens = _start(m=200, residual=0.0)
    got = _run(ens, data, 12_000, refill=True, checkpoint=path)
    data, ens = _start(m=200, residual=0.0)
    ref = _run(ens, data, 12_000, refill=True)
    pd.testing.assert_frame_equal(got.table, ref.table, check_exact=True)
