"""Side-by-side peer benchmark: grokescape against NumPy, PyTorch and JAX on the same work.

Run ``python benchmarks/peers.py [--quick] [--workloads paper tiny ...] [--out DIR]`` from
any directory, with grokescape importable and the peers of ``benchmarks/requirements.txt``
installed (a peer that is not is reported as skipped). Every peer runs the same SGD-with-L2
steps of the same ensembles of deep linear networks.

This script runs the benchmark: it starts one worker subprocess (this script with
``--worker``) per measurement and writes the reports. The code it runs is in
``benchmarks/peerbench/``: ``runners.py`` (the peers), ``workers.py`` (the subprocess
tasks: verification, sizes, timing, escape, threads), ``machine.py`` (machine facts, other
load, matmul peak) and ``report.py`` (markdown and targets).

Workloads
---------

paper, tiny, wide and escape: their networks, data, SGD settings, starting weights and
flop counts are defined in :mod:`grokescape.workloads` (the same that ``grokescape bench``
times).

``escape`` runs :meth:`grokescape.Ensemble.run_until_escape` with ``ModeThreshold(1)`` and
``refill=True`` and reports escape trajectories per hour. The peers can neither stop nor
refill members: for them the benchmark times a fixed-step ensemble run (the same noisy SGD
step from the same trap) and reports the time to do the member-steps grokescape needed per
escape, i.e. ``escapes/hour = member-steps/s * 3600 * (grokescape escapes / member-steps)``.
The temperature is calibrated once per full run from a stored Arrhenius fit (ln tau linear
in 1/T) so that the measured mean escape time (steps at risk / escapes) is about 2000 steps.

Flops per member-step: :mod:`grokescape.workloads` (per-sample backpropagation's count;
grokescape's ``"moments"`` kernel counts its own, 2,328 instead of 51,620 for the paper
workload). GFLOP/s = member-steps/s x the row's count / 1e9;
"% peak" divides by the best of a numpy 2048 x 2048 @ 2048 x 2048 matmul in the same
dtype, measured in the same run.

Peers (each first runs 3 full-batch steps, stored order, from grokescape's initial weights
and must agree with :meth:`grokescape.Ensemble.train` to 1e-10 in float64, 1e-4 in float32)

- ``numpy``: weights (M, out, in); stacked ``np.matmul`` over the member axis into
  preallocated buffers (``out=``), ``np.take`` gathers, manual backward, in-place update;
  permutations from ``Generator.permuted(axis=1)``.
- ``torch``: the same with ``torch.bmm(out=)`` into preallocated buffers,
  ``torch.index_select`` gathers, the weight gradient and update fused in one in-place
  ``W.baddbmm_(delta^T, a, beta=1 - lr beta, alpha=-lr)``, under ``torch.inference_mode()``
  with ``torch.set_num_threads(os.cpu_count())``; permutations ``argsort(rand(M, n))``.
- ``torch-compile``: the whole functional step (gather, forward, backward, update) under
  ``torch.compile(fullgraph=True, dynamic=False)``; skipped in ``--quick``.
- ``jax``: ``jax.jit`` of a ``jax.lax.scan`` over steps of ``jax.vmap(step)`` with the member
  axis sharded over ``os.cpu_count()`` host devices (``--xla_force_host_platform_
  device_count``), so every core works; float64 through ``jax_enable_x64``; permutations
  ``argsort(uniform(M, n))``, minibatches cut inside the scan with ``dynamic_slice``.
- ``grokescape``: ``Ensemble.train``, which draws its Philox permutations inside the core
  (timed); every timed call also evaluates the final observables, counted against it.
- ``grokescape-per-sample``: the same with the moment gradient switched off (per-sample
  backpropagation, ``kernels/lane_batch_step.hpp``), on the workloads where grokescape's
  kernel is ``"moments"`` (elsewhere reported as skipped): how much of grokescape's lead is
  the moment algorithm and how much the kernels; its % of peak is the issue's kernel target.

Minibatches in the peers: each member gets its own permutation per epoch, drawn with the
peer's own RNG *before* the timed loop (a pool of up to 16 epochs, at most 256 MiB of
int32 indices, reused cyclically when a run is longer), so peers are timed on gather +
forward + backward + update only. What drawing them inside would add is measured and kept
in the JSON ("permutation_fraction_if_timed"); for torch and jax on the paper workload it is
a large share (argsort of M x 512 keys every 8 steps). Langevin noise (escape workload) is
drawn inside the timed loop by every peer, as grokescape does.

Each (peer, workload) runs in its own subprocess (clean thread pools, a time limit; sizes
measured before a time-out are kept). M is tuned per peer: the full mode tries
64 ... 65536 (grokescape 64 ... 1024; torch-compile only eager torch's best M),
stopping when throughput falls; ``--quick`` times one size (1024; grokescape 256). Each size
(:func:`grokescape.selfbench.time_runner`, the timing of ``grokescape bench``) gets a
warm-up (with compilation), then 3 repeats of about the target time (0.5 s full,
0.15 s quick); the median repeat is reported, all repeats are kept in the JSON. grokescape's
``train`` evaluates the final observables after every call (a fixed cost of some 20-120
steps); its repeats last at least 20x (quick: 5x) that cost, which is measured and reported
("fixed_cost_fraction"), not subtracted.

Thread scaling (``--threads N ...``; default 1, 2, 4, ... up to the core count; ``--no-threads``
skips it): grokescape alone at each thread count, as ``grokescape bench`` measures it
(:func:`grokescape.selfbench.thread_scaling`), on one fixed ensemble per workload (a few
hundred members per thread of the largest count): paper member-steps/s, tiny float32
member-steps/s, and escape trajectories/h at the escape row's temperature (refill, 4000
steps per slot); speed-up and efficiency against the fewest threads. On a 16-core machine,
``python benchmarks/peers.py --workloads escape --peers grokescape --threads 1 2 4 8 16``
is the whole scaling run (the escape row calibrates the temperature first).

Before each measurement the benchmark waits (``--wait-idle``, default 30 s, quick 5 s) for other
processes to leave the cores idle, and records the share of the cores they used meanwhile
("other load"): on a busy machine OpenMP-threaded code (torch, grokescape) slows down far
more than the load suggests, so rows above 10% are flagged.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grokescape.selfbench import default_thread_counts
from grokescape.workloads import ESCAPE_T0, WORKLOADS, flops_per_member_step
from peerbench.machine import OtherLoad, machine_facts, matmul_peak, wait_idle
from peerbench.report import render_markdown, target_rows
from peerbench.runners import PEERS, peer_version
from peerbench.workers import FULL, QUICK, RESULT_MARK, json_default, worker_main

_RESULTS = Path(__file__).resolve().parent / "results"


def _spawn(task: dict[str, Any], timeout_s: float, wait_idle_s: float = 0.0) -> dict[str, Any]:
    """Run one task in a fresh interpreter; its stderr (progress) passes through. Records
    the share of the machine that other processes used meanwhile ("other_load")."""
    waited, _ = wait_idle(wait_idle_s) if wait_idle_s > 0 else (0.0, math.nan)
    load = OtherLoad()
    result = _spawn_once(task, timeout_s)
    result["other_load"] = load.fraction()
    result["waited_for_idle_s"] = waited
    return result


def _spawn_once(task: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    env = dict(os.environ)
    if task.get("peer") == "jax":
        ncpu = os.cpu_count() or 1
        flags = env.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={ncpu}".strip()
    # This script again, by its path: a worker finds it from any working directory.
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(task)]
    tic = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, timeout=timeout_s, env=env, check=False
        )
        stdout, note = proc.stdout, f"worker exited {proc.returncode} without a result"
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or ""
        stdout = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        note = f"timed out after {timeout_s:.0f} s"
        for line in reversed(stdout.splitlines()):
            if line.startswith(RESULT_MARK):
                partial = dict(json.loads(line[len(RESULT_MARK) :]))
                partial["note"] = f"{note}; sizes measured before that are kept"
                return partial
        return {**task, "status": "failed", "reason": note}
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result = dict(json.loads(line[len(RESULT_MARK) :]))
            result["worker_s"] = time.perf_counter() - tic
            return result
    return {**task, "status": "failed", "reason": note}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/peers.py",
        description="Side-by-side benchmark of grokescape against NumPy, PyTorch and JAX.",
    )
    parser.add_argument("--quick", action="store_true", help="short run (< 3 minutes)")
    parser.add_argument(
        "--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS),
        help="workloads to run (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--peers", nargs="+", choices=list(PEERS), default=None,
        help="peers to run (default: all; torch-compile only without --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=None,
        help="ensemble sizes M to try per peer (default depends on the mode)",
    )  # fmt: skip
    parser.add_argument(
        "--out", default=str(_RESULTS), metavar="DIR",
        help="folder for the JSON and markdown reports (default: benchmarks/results)",
    )  # fmt: skip
    parser.add_argument("--no-threads", action="store_true", help="skip the thread-scaling run")
    parser.add_argument(
        "--threads", nargs="+", type=int, default=None, metavar="N",
        help="thread counts of the scaling run (default: 1, 2, 4, ... up to the core count)",
    )  # fmt: skip
    parser.add_argument(
        "--wait-idle", type=float, default=None, metavar="SECONDS",
        help="before each measurement wait up to this long for other processes to leave the "
        "cores idle (default 30, with --quick 5; 0: do not wait)",
    )  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the markdown table and write JSON and markdown to --out."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    if args.threads is not None and min(args.threads) < 1:
        parser.error(f"--threads: thread counts must be >= 1, got {args.threads}")
    if args.worker is not None:
        return worker_main(args.worker)
    mode = QUICK if args.quick else FULL
    peers = (
        list(args.peers)
        if args.peers
        else [p for p in PEERS if not (p == "torch-compile" and args.quick)]
    )
    if "grokescape" not in peers:
        peers.insert(0, "grokescape")
    now = _dt.datetime.now().astimezone()
    arguments = list(sys.argv[1:] if argv is None else argv)
    launcher = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    if launcher.endswith(".py"):
        launcher = f"python {launcher}"
    command = f"{launcher} {shlex.join(arguments)}".strip()
    machine = machine_facts()
    probe = OtherLoad()
    time.sleep(0.5)
    machine["other_load_at_start"] = busy = probe.fraction()
    if busy > 0.1:
        print(
            f"warning: other processes use {100 * busy:.0f}% of the cores; they distort the "
            "timings (rows measured under load are flagged)",
            file=sys.stderr,
        )
    wait = float(args.wait_idle if args.wait_idle is not None else (5 if args.quick else 30))
    peer_versions = {p: (peer_version(p)[0] or "not installed") for p in PEERS}
    print("measuring matmul peaks ...", file=sys.stderr, flush=True)
    peaks = [matmul_peak(d, mode.peak_repeats) for d in ("float64", "float32")]
    results: list[dict[str, Any]] = []
    tic = time.perf_counter()
    for name in args.workloads:
        wl = WORKLOADS[name]
        for dtype in wl.dtypes:
            print(f"== {name} / {dtype}", file=sys.stderr, flush=True)
            temperature = 0.0
            ge_escape: dict[str, Any] | None = None
            if wl.escape:
                ge_escape = _spawn(
                    {"kind": "escape", "mode": mode.name}, 4 * mode.worker_timeout_s, wait
                )
                results.append(ge_escape)
                temperature = float(ge_escape.get("temperature", ESCAPE_T0))
                if ge_escape.get("status") == "ok":
                    print(
                        f"    grokescape escape: {ge_escape['escape_trajectories_per_hour']:.3g} "
                        f"trajectories/h (T = {temperature:.3g}, mean escape "
                        f"{ge_escape['mean_escape_steps']:.0f} steps)",
                        file=sys.stderr,
                        flush=True,
                    )
                if "grokescape-per-sample" in peers:
                    results.append(
                        _spawn(
                            {
                                "kind": "escape",
                                "peer": "grokescape-per-sample",
                                "mode": mode.name,
                                "temperature": temperature,
                            },
                            4 * mode.worker_timeout_s,
                            wait,
                        )
                    )
            torch_best: int | None = None
            for peer in peers:
                if wl.escape and peer.startswith("grokescape"):
                    continue
                sizes = args.sizes
                if peer == "torch-compile" and sizes is None and torch_best:
                    # A compilation per size (10-30 s): only eager torch's best M.
                    sizes = [torch_best]
                task = {
                    "peer": peer,
                    "workload": name,
                    "dtype": dtype,
                    "mode": mode.name,
                    "temperature": temperature,
                    "sizes": sizes,
                }
                res = _spawn(task, mode.worker_timeout_s, wait)
                if peer == "torch" and res.get("status") == "ok":
                    torch_best = int(res["best_n_members"])
                if wl.escape and res.get("status") == "ok" and ge_escape:
                    per_escape = ge_escape.get("member_steps_per_escape")
                    if per_escape:
                        res["escape_trajectories_per_hour"] = (
                            res["member_steps_per_s"] * 3600.0 / per_escape
                        )
                results.append(res)
            if args.quick and not args.peers:
                results.append(
                    {
                        "peer": "torch-compile",
                        "workload": name,
                        "dtype": dtype,
                        "status": "skipped",
                        "reason": "not run with --quick (a compilation takes 10-30 s)",
                    }
                )
    threads: dict[str, Any] | None = None
    if not args.no_threads:
        escape_t = next(
            (r.get("temperature") for r in results if r["workload"] == "escape"
             and r["peer"] == "grokescape" and r.get("status") == "ok"),
            None,
        )  # fmt: skip
        counts = args.threads or default_thread_counts()
        print(f"== thread scaling: {counts}", file=sys.stderr, flush=True)
        threads = _spawn(
            {
                "kind": "threads",
                "mode": mode.name,
                "thread_counts": counts,
                "temperature": escape_t,
            },
            mode.worker_timeout_s * max(1, len(counts) // 2),
            wait,
        )
    machine["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {
        "benchmark": "grokescape peers (issue 6)",
        "mode": mode.name,
        "date": now.isoformat(timespec="seconds"),
        "command": command,
        "arguments": arguments,
        "machine": machine,
        "peer_versions": peer_versions,
        "peaks": peaks,
        "repeats": mode.repeats,
        "target_s": mode.target_s,
        "workloads": list(args.workloads),
        "workload_definitions": {n: asdict(WORKLOADS[n]) for n in args.workloads},
        "flops_per_member_step": {
            n: flops_per_member_step(WORKLOADS[n].widths, WORKLOADS[n].batch_size)
            for n in args.workloads
        },
        "results": results,
        "threads": threads,
        "total_seconds": time.perf_counter() - tic,
    }
    report["targets"] = [{"target": t, "measured": v, "met": m} for t, v, m in target_rows(report)]
    markdown = render_markdown(report)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"peers-{now.strftime('%Y%m%d-%H%M%S')}-{machine['host']}"
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=1, default=json_default))
    (out_dir / f"{stem}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out_dir / (stem + '.json')} and {stem}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
