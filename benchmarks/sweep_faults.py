"""Faults a sweep must survive, on a sweep larger than the tests': kill -9 of the driver at
random moments (several times, then the same command again), a Dask worker killed in the
middle of a task (a cluster of `dask scheduler` and two `dask worker` processes started
here), and shards truncated or changed on disk. After each, the results must hold exactly
the rows of an uninterrupted run: every trajectory once, bit for bit.

    python benchmarks/sweep_faults.py [--kills 5] [--seed 0] [--out DIR]

Prints one line per fault and exits with status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grokescape import sweep
from grokescape.sweep.executors import dask_processes
from grokescape.sweep.store import Store

TOML = """
name = "faults"
[cell]
data = {{ eta = [0.9, 0.8], n_train = 512, seed = 24 }}
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
temperature = [0.0002, 0.00025, 0.0003, 0.00035]
residual = [0.0, 0.001]
"""


def shards(out: Path) -> list[Path]:
    return sorted(out.glob("trajectories/cell=*/chunk-*.parquet"))


def same(frame: pd.DataFrame, ref: pd.DataFrame) -> str:
    if len(frame) != len(ref):
        return f"{len(frame)} rows, expected {len(ref)}"
    if frame.duplicated(["cell", "trajectory"]).any():
        return "duplicate (cell, trajectory) ids"
    try:
        pd.testing.assert_frame_equal(frame, ref, check_exact=True)
    except AssertionError as exc:
        return f"rows differ: {str(exc)[:200]}"
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    work = Path(args.out or tempfile.mkdtemp(prefix="sweep-faults-"))
    config = work / "faults.toml"
    work.mkdir(parents=True, exist_ok=True)
    config.write_text(TOML.format(steps=60_000, trajectories=40, chunk=8))
    s = sweep.Sweep.from_toml(config)
    n = s.n_tasks
    print(f"{s} in {work}")
    failures = 0

    def report(name: str, problem: str, detail: str) -> None:
        nonlocal failures
        failures += bool(problem)
        print(f"{'FAIL' if problem else 'ok  '} {name}: {problem or detail}", flush=True)

    tic = time.perf_counter()
    with cf.ThreadPoolExecutor(1) as ex:
        sweep.run(s, work / "reference", ex, n_threads=1, progress=False)
    ref = sweep.load(work / "reference")
    print(
        f"     uninterrupted reference: {len(ref)} trajectories in "
        f"{time.perf_counter() - tic:.1f} s"
    )

    # kill -9 of the driver at random moments
    out = work / "killed"
    cmd = [
        sys.executable,
        "-m",
        "grokescape",
        "sweep",
        "run",
        str(config),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-progress",
    ]
    moments = []
    for _ in range(args.kills):
        if len(shards(out)) >= n - 1:
            break
        left = len(shards(out))  # a random moment in the first half of what is left
        target = left + 1 + int(rng.integers(0, max(1, (n - left - 1) // 2)))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(shards(out)) < target and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0, 0.3)))  # and somewhere inside the next tasks
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        moments.append(len(shards(out)))
        if moments[-1] >= n:
            break
    before = len(shards(out))
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    ok = rerun.returncode == 0 and f"{n - before} run" in rerun.stdout
    problem = "" if ok else f"rerun: {rerun.stdout or rerun.stderr}"
    report(
        f"kill -9 of the driver x{len(moments)} (at {moments} of {n} tasks written)",
        problem or same(sweep.load(out), ref),
        f"the rerun ran the {n - before} missing tasks only; rows identical",
    )

    # a Dask worker killed mid-task
    from distributed import Client

    out = work / "dask"
    with dask_processes(2, 1, work) as address, Client(address) as client:
        proc = subprocess.Popen(
            [*cmd[:6], "--out", str(out), "--scheduler", address, "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed = 0
        while killed < 2 and proc.poll() is None:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(float(rng.uniform(0.1, 0.6)))  # inside the task
                pid = client.run(os.getpid, workers=[busy[0]], on_error="return").get(busy[0])
                if isinstance(pid, int):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                    while busy[0] in client.scheduler_info()["workers"]:
                        time.sleep(0.1)  # the scheduler notices; the nanny starts another
                    client.wait_for_workers(2, timeout=120)
            time.sleep(0.05)
        stdout, stderr = proc.communicate()
    problem = "" if proc.returncode == 0 else stderr[-500:]
    problem = problem or same(sweep.load(out), ref)
    report(f"Dask worker killed mid-task x{killed}", problem, f"{stdout.strip()}; rows identical")

    # truncated and changed shards
    files = shards(out)
    picks = rng.choice(len(files), size=3, replace=False)
    data = files[picks[0]].read_bytes()
    files[picks[0]].write_bytes(data[: len(data) // 3])
    files[picks[1]].write_bytes(b"\0" * 100)
    table, meta = Store(out).read_shard(files[picks[2]])
    table.loc[0, "time"] += 1
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    tab = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(
        tab.replace_schema_metadata({b"grokescape.shard": json.dumps(meta).encode()}),
        files[picks[2]],
    )
    st = sweep.status(out)
    rerun = subprocess.run(
        [*cmd[:6], "--out", str(out), "--workers", "2", "--no-progress"],
        capture_output=True,
        text=True,
    )
    problem = "" if st["corrupt"] == 3 else f"status found {st['corrupt']} corrupt shards, not 3"
    problem = problem or ("" if "3 recomputed" in rerun.stdout else rerun.stdout + rerun.stderr)
    problem = problem or same(sweep.load(out), ref)
    report("3 shards truncated, zeroed, changed", problem, f"{rerun.stdout.strip()}; identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
