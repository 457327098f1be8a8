"""Sweep machinery targets: the time of a sweep of >= 100 cells on the embedded local pool
and on a two-worker Dask cluster on this machine (interleaved runs), and a resume after a
kill at 50% (which tasks the rerun does, and its time).

    python benchmarks/sweep_overhead.py [--cells 120] [--repeats 2] [--out DIR]

Prints a markdown table. Both executors use two processes with one core thread each.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grokescape import sweep
from grokescape.escape import ModeThreshold
from grokescape.sweep import Aligned, Cell, Sweep, TeacherData
from grokescape.sweep.executors import dask_processes


def build(cells: int, trajectories: int, steps: int) -> Sweep:
    base = Cell(
        data=TeacherData(eta=(0.9, 0.8), n_train=512, seed=24),
        start=Aligned(rank=1),
        criterion=ModeThreshold(1, on="sv"),
        lr=0.05,
        beta=0.2,
        batch_size=64,
        max_steps=steps,
        trajectories=trajectories,
        temperature=0.004,
    )
    temps = [0.00025, 0.0003, 0.00035, 0.0004, 0.00045, 0.0005]
    seeds = range(-(-cells // len(temps)))
    s = Sweep.grid(base, temperature=temps, seed=list(seeds), name="overhead")
    return Sweep(s.cells[:cells], name="overhead")


def pool_startup() -> float:
    """Seconds until a fresh local pool of 2 processes has run a task in each (spawn and
    the import of grokescape): part of every local-pool run, not of a warm Dask cluster's."""
    from grokescape.sweep.executors import local_executor

    tic = time.perf_counter()
    with local_executor(2) as ex:
        for f in [ex.submit(time.sleep, 0.2) for _ in range(2)]:
            f.result()
    return time.perf_counter() - tic - 0.2


def timed(s: Sweep, out: Path, executor) -> float:  # type: ignore[no-untyped-def]
    shutil.rmtree(out, ignore_errors=True)
    tic = time.perf_counter()
    summary = sweep.run(s, out, executor, progress=False, workers=2)
    elapsed = time.perf_counter() - tic
    assert summary.ran == s.n_tasks, summary
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=120)
    ap.add_argument("--trajectories", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="sweep-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    s = build(args.cells, args.trajectories, args.steps)
    print(f"{s}, 2 processes x 1 thread each", file=sys.stderr)

    local, dask = [], []
    with dask_processes(2, 1, work) as address:
        for _ in range(args.repeats):  # interleaved: the machine's other load hits both
            local.append(timed(s, work / "local", "local"))
            print(f"  local pool: {local[-1]:.1f} s", file=sys.stderr, flush=True)
            dask.append(timed(s, work / "dask", address))
            print(f"  dask {address}: {dask[-1]:.1f} s", file=sys.stderr, flush=True)
    startup = min(pool_startup() for _ in range(3))
    a, b = sweep.load(work / "local"), sweep.load(work / "dask")
    same = a.equals(b)

    # resume after a kill at 50%: the CLI run killed once half the shards exist
    toml = work / "resume.toml"
    n_resume = max(20, args.cells // 4)
    toml.write_text(_toml(args.trajectories, args.steps, n_resume))
    resume_sweep = Sweep.from_toml(toml)
    out = work / "resume"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "grokescape",
        "sweep",
        "run",
        str(toml),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-progress",
    ]
    n = resume_sweep.n_tasks
    whole = work / "resume-whole"
    shutil.rmtree(whole, ignore_errors=True)
    tic = time.perf_counter()
    subprocess.run([*cmd[:7], str(whole), *cmd[8:]], check=True, capture_output=True)
    whole_s = time.perf_counter() - tic
    tic = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list(out.glob("trajectories/*/*.parquet"))) < n // 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before_kill = time.perf_counter() - tic
    left = len(list(out.glob("trajectories/*/*.parquet")))
    tic = time.perf_counter()
    rerun = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rerun_s = time.perf_counter() - tic
    print()
    print("| measurement | value |")
    print("|---|---|")
    print(
        f"| sweep | {len(s)} cells, {s.n_tasks} tasks, {args.trajectories} trajectories x "
        f"{args.steps} steps max |"
    )
    print(f"| local pool (2 processes) | {', '.join(f'{t:.1f}' for t in local)} s |")
    print(f"| Dask, 2 workers x 1 thread | {', '.join(f'{t:.1f}' for t in dask)} s |")
    print(f"| Dask / local (best of each) | {min(dask) / min(local):.3f} |")
    print(f"| Dask / local (mean) | {sum(dask) / sum(local):.3f} |")
    print(f"| local pool startup (spawn, import; best of 3) | {startup:.1f} s |")
    net = sum(dask) / (sum(local) - len(local) * startup)
    print(f"| Dask / local without the pool's startup (mean) | {net:.3f} |")
    print(f"| same rows on both | {same} |")
    print(f"| resume: tasks | {n}; killed at {left} written ({before_kill:.1f} s) |")
    print(f"| resume: rerun | {rerun.stdout.strip()} |")
    print(f"| resume: rerun time | {rerun_s:.1f} s (uninterrupted run: {whole_s:.1f} s) |")
    equal = sweep.load(out).equals(sweep.load(whole))
    print(f"| resume: rows equal the uninterrupted run's | {equal} |")


def _toml(trajectories: int, steps: int, cells: int) -> str:
    temps = [0.00025, 0.0003, 0.00035, 0.0004, 0.00045, 0.0005]
    seeds = list(range(-(-cells // len(temps))))
    return f"""
name = "resume"
[cell]
data = {{ eta = [0.9, 0.8], n_train = 512, seed = 24 }}
start = {{ kind = "aligned", rank = 1 }}
criterion = {{ kind = "mode", mode = 1, on = "sv" }}
lr = 0.05
beta = 0.2
batch_size = 64
max_steps = {steps}
trajectories = {trajectories}
[grid]
temperature = {temps}
seed = {seeds}
"""


if __name__ == "__main__":
    main()
