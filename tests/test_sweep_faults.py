"""Faults a sweep must survive: kill -9 of the driver at a random moment, a Dask worker
killed in the middle of a task (on a real cluster started here: `dask scheduler` and two
`dask worker` processes on localhost). After each, the same command again gives exactly the
rows of an uninterrupted run: every expected trajectory, once, bit for bit."""

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FULL_VALIDATION

from grokescape import sweep

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")

TOML = """
name = "faults"
[cell]
data = {{ eta = [0.9, 0.8], n_train = 256, seed = 24 }}
start = {{ kind = "aligned", rank = 1 }}
criterion = {{ kind = "mode", mode = 1, on = "sv" }}
lr = 0.05
beta = 0.2
batch_size = 64
max_steps = {steps}
trajectories = {trajectories}
chunk = {chunk}
seed = 3
[grid]
temperature = [0.0002, 0.00025, 0.0003]
"""


def write_sweep(path, steps=20_000, trajectories=24, chunk=6):
    path.write_text(TOML.format(steps=steps, trajectories=trajectories, chunk=chunk))
    return path


def reference_of(config, tmp_path):
    out = tmp_path / "reference"
    with cf.ThreadPoolExecutor(1) as ex:
        sweep.run(config, out, ex, n_threads=1, progress=False)
    return sweep.load(out)


def assert_exactly(frame, ref):
    assert len(frame) == len(ref)
    assert not frame.duplicated(["cell", "trajectory"]).any()
    for (ca, a), (cb, b) in zip(frame.groupby("cell"), ref.groupby("cell"), strict=True):
        assert ca == cb
        pd.testing.assert_frame_equal(
            a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True
        )


def cli(*args):
    return [sys.executable, "-m", "grokescape", "sweep", *map(str, args)]


def shards(out):
    return sorted(Path(out).glob("trajectories/cell=*/chunk-*.parquet"))


def kill_after(cmd, out, n_shards, timeout=180.0):
    """Start `cmd`, kill -9 it once `n_shards` shards exist; returns the shards left."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while len(shards(out)) < n_shards:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return len(shards(out))


def kill_and_resume(tmp_path, config, kills, rng):
    out = tmp_path / "out"
    n_tasks = sweep.Sweep.from_toml(config).n_tasks
    cmd = cli("run", config, "--out", out, "--workers", "2", "--no-progress")
    left = 0
    for _ in range(kills):
        target = int(rng.integers(left + 1, n_tasks))  # a random moment, before the end
        left = kill_after(cmd, out, target)
        assert left < n_tasks
    # the run's record says it did not finish; status says what is left
    st = sweep.status(out)
    assert st["done"] == left and st["manifest"]["runs"][-1]["finished"] is None
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert f"{n_tasks - left} run" in done.stdout and f"{left} done before" in done.stdout
    return sweep.load(out)


def test_kill_9_of_the_driver_then_resume(tmp_path):
    config = write_sweep(tmp_path / "s.toml")
    frame = kill_and_resume(tmp_path, config, kills=1, rng=np.random.default_rng(7))
    assert_exactly(frame, reference_of(config, tmp_path))
    # and so the per-cell rate tables
    pd.testing.assert_frame_equal(
        sweep.table(tmp_path / "out"), sweep.table(tmp_path / "reference"), check_exact=True
    )


@pytest.mark.slow
def test_repeated_kills_at_random_moments(tmp_path):
    kills, chunk = (6, 4) if FULL_VALIDATION else (2, 6)
    config = write_sweep(tmp_path / "s.toml", trajectories=48, chunk=chunk)
    frame = kill_and_resume(tmp_path, config, kills=kills, rng=np.random.default_rng(11))
    assert_exactly(frame, reference_of(config, tmp_path))


# ---------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes (one thread each) on localhost,
    started and stopped here."""
    pytest.importorskip("distributed")
    from distributed import Client

    from grokescape.sweep.executors import dask_processes

    with (
        dask_processes(2, 1, tmp_path_factory.mktemp("dask")) as address,
        Client(address) as client,
    ):
        yield client


def test_real_dask_cluster_with_a_worker_killed_mid_task(tmp_path, dask_cluster):
    client = dask_cluster
    address = client.scheduler.address
    config = write_sweep(tmp_path / "s.toml", steps=60_000, trajectories=8, chunk=4)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        cli("run", config, "--out", out, "--scheduler", address, "--no-progress"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        killed = None
        deadline = time.monotonic() + 120
        while killed is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no task ever ran"
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(0.3)  # inside the task (about 1 s)
                pid = client.run(os.getpid, workers=[busy[0]], on_error="return").get(busy[0])
                if isinstance(pid, int):
                    os.kill(pid, signal.SIGKILL)
                    killed = busy[0]
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "6 run" in stdout and "0 failed" in stdout
    assert_exactly(sweep.load(out), reference_of(config, tmp_path))
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
