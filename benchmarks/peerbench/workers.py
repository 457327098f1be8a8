"""The tasks that ``benchmarks/peers.py`` runs in subprocesses: verify and time one peer
on one (workload, dtype), grokescape's escape run, and grokescape's thread scaling. A worker
prints its result as one JSON line after :data:`RESULT_MARK` (a peer worker also after
each ensemble size, so that a time-out keeps what was measured)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from grokescape.selfbench import Timing, measure_escape, thread_scaling, time_runner, timed
from grokescape.workloads import (
    ESCAPE_LN_TAU_SLOPE,
    ESCAPE_T0,
    ESCAPE_TARGET_TAU,
    WORKLOADS,
    Workload,
)
from peerbench.runners import RunSpec, make_runner, peer_version

RESULT_MARK = "@@GROKESCAPE-BENCH-RESULT@@ "
_SCALING_ESCAPE_STEPS = 4000  # steps per slot in the thread-scaling escape run


@dataclass(frozen=True)
class Mode:
    name: str
    sizes: tuple[int, ...]  # ensemble sizes M tried by the peers
    grokescape_sizes: tuple[int, ...]  # member-parallel: saturates at a few hundred members
    target_s: float  # seconds per timed repeat
    repeats: int
    fixed_cost_factor: float  # grokescape's repeats last >= this x its per-call fixed cost
    worker_timeout_s: float
    escape_target_s: float
    escape_max_steps: int
    calibrate: bool
    peak_repeats: int


QUICK = Mode(
    name="quick",
    sizes=(1024,),
    grokescape_sizes=(256,),
    target_s=0.15,
    repeats=3,
    fixed_cost_factor=5.0,
    worker_timeout_s=90.0,
    escape_target_s=4.0,
    escape_max_steps=6000,
    calibrate=False,
    peak_repeats=3,
)
FULL = Mode(
    name="full",
    sizes=(64, 256, 1024, 4096, 16384, 65536),
    grokescape_sizes=(64, 256, 1024),
    target_s=0.5,
    repeats=3,
    fixed_cost_factor=20.0,
    worker_timeout_s=300.0,
    escape_target_s=25.0,
    escape_max_steps=10000,
    calibrate=True,
    peak_repeats=5,
)


def _spec_for(wl: Workload, dtype: str, m: int, temperature: float = 0.0) -> RunSpec:
    return RunSpec(
        widths=wl.widths,
        n_members=m,
        dtype=dtype,
        batch_size=wl.batch_size,
        lr=wl.lr,
        beta=wl.beta,
        temperature=temperature,
        stored_order=False,
        seed=0,
    )


def _verify(peer: str, wl: Workload, dtype: str, data: Any) -> dict[str, Any]:
    """3 full-batch steps from grokescape's initial weights; max relative deviation."""
    from grokescape.ensemble import Ensemble

    m, steps = 4, 3
    ens = Ensemble(list(wl.widths), m, dtype=dtype)
    ens.init_random(seed=0)
    start = [w.copy() for w in ens.weights]
    ens.train(data, steps, wl.lr, wl.beta, batch_size=None, seed=0)
    spec = replace(_spec_for(wl, dtype, m), stored_order=True)
    runner = make_runner(peer, spec, data, start, block=steps)
    runner.run(steps)
    got = runner.weights()
    err = max(
        float(np.max(np.abs(np.asarray(g, np.float64) - r)) / max(1.0, float(np.max(np.abs(r)))))
        for g, r in zip(got, ens.weights, strict=True)
    )
    tol = 1e-10 if dtype == "float64" else 1e-4
    return {"dtype": dtype, "steps": steps, "max_rel_error": err, "tol": tol, "ok": err <= tol}


def _jax_block(m: int, flops: float) -> int:
    """Steps per jitted call: about 5e8 flops (~0.02-0.2 s), a power of two in [1, 1024]."""
    return int(min(1024, max(1, 2 ** round(math.log2(max(1.0, 5e8 / (flops * m)))))))


def _memory_ok(wl: Workload, m: int, dtype: str) -> bool:
    item = np.dtype(dtype).itemsize
    params = sum(wl.widths[l] * wl.widths[l + 1] for l in range(len(wl.widths) - 1))
    per_member = item * (4 * params + 3 * wl.batch_size * sum(wl.widths)) + 16 * wl.n_train
    return m * per_member < 4e9


def peer_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Verify and time one peer on one (workload, dtype); run in a subprocess."""
    peer, wl, dtype = task["peer"], WORKLOADS[task["workload"]], task["dtype"]
    mode = FULL if task["mode"] == "full" else QUICK
    temperature = float(task.get("temperature", 0.0))
    out: dict[str, Any] = {"peer": peer, "workload": wl.name, "dtype": dtype}
    version, reason = peer_version(peer)
    if version is None:
        return {**out, "status": "skipped", "reason": reason}
    out["version"] = version
    if peer == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        out["variant"] = f"members sharded over {len(jax.devices())} host devices"
    if peer.startswith("torch"):
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        out["variant"] = f"{torch.get_num_threads()} threads"
    data = wl.data()
    if peer.startswith("grokescape"):
        kernels = _grokescape_kernels(wl, dtype, data)
        out["kernel"] = kernels[peer]
        if peer == "grokescape-per-sample" and kernels[peer] == kernels["grokescape"]:
            return {**out, "status": "skipped", "reason": "grokescape runs this kernel already"}
    started = time.perf_counter()
    checks = [_verify(peer, wl, "float64", data)]
    if dtype != "float64":
        checks.append(_verify(peer, wl, dtype, data))
    out["verify"] = checks
    if not all(c["ok"] for c in checks):
        return {**out, "status": "failed", "reason": "disagrees with grokescape"}
    default = mode.grokescape_sizes if peer.startswith("grokescape") else mode.sizes
    sizes = [int(s) for s in task.get("sizes") or default]
    results: list[dict[str, Any]] = []
    flops = wl.flops(out.get("kernel"))
    out["flops_per_member_step"] = flops

    def summary() -> dict[str, Any]:
        done = [r for r in results if "rate" in r and r.get("finite", False)]
        if not done:
            return {**out, "status": "failed", "reason": "no finite timed run", "sizes": results}
        best_run = max(done, key=lambda r: r["rate"])
        return {
            **out,
            "status": "ok",
            "sizes": results,
            "best_n_members": best_run["n_members"],
            "member_steps_per_s": best_run["rate"],
            "gflops": best_run["rate"] * flops / 1e9,
            "statistic": f"median of {mode.repeats} repeats",
        }

    for m in sizes:
        if not _memory_ok(wl, m, dtype):
            results.append({"n_members": m, "skipped": "memory estimate over 4 GB"})
            continue
        elapsed = time.perf_counter() - started
        done = [r for r in results if "rate" in r]
        if done:
            # The last size's cost, scaled by M (compilation and fixed costs included).
            last = done[-1]
            cost = (last["warmup_s"] + (mode.repeats + 2) * last["median_s"]) * max(
                1.0, m / last["n_members"]
            )
            if elapsed + cost > 0.8 * mode.worker_timeout_s:
                results.append({"n_members": m, "skipped": "time budget of this worker"})
                break
        spec = _spec_for(wl, dtype, m, temperature)
        weights = wl.initial_weights(data, m, dtype, seed=1)
        runner = make_runner(peer, spec, data, weights, block=_jax_block(m, flops))
        res = time_runner(runner, m, mode.target_s, mode.repeats, mode.fixed_cost_factor)
        final = runner.weights()
        res["finite"] = bool(all(np.all(np.isfinite(w)) for w in final))
        if hasattr(runner, "new_permutation"):
            # Drawn outside the timed loop; what drawing them inside would have added.
            runner.new_permutation()
            perm_s = min(timed(runner.new_permutation) for _ in range(2))
            res["permutation_s_per_epoch"] = perm_s
            res["permutation_fraction_if_timed"] = perm_s / (
                perm_s + wl.steps_per_epoch * m / res["rate"]
            )
            res["pool_epochs"] = int(runner.pool.shape[0])
        if peer == "jax":
            res["steps_per_call"] = runner.granularity
        results.append(res)
        del runner, weights, final
        print(
            f"    {peer:>13} {wl.name}/{dtype} M={m:>6}: {res['rate'] / 1e6:8.3f} M member-steps/s",
            file=sys.stderr,
            flush=True,
        )
        # Partial results survive a time-out of this worker.
        print(RESULT_MARK + json.dumps(summary(), default=json_default), flush=True)
        best = max(r["rate"] for r in results if "rate" in r)
        if res["rate"] < 0.6 * best:
            break  # past the best size
    return summary()


def _grokescape_kernels(wl: Workload, dtype: str, data: Any) -> dict[str, str]:
    """The core kernel of each grokescape row on this workload (Ensemble.step_kernel)."""
    from grokescape.ensemble import Ensemble

    out = {}
    for peer, moments in (("grokescape", True), ("grokescape-per-sample", False)):
        ens = Ensemble(list(wl.widths), 1, dtype=dtype, moment_gradient=moments)
        out[peer] = ens.step_kernel(data, wl.batch_size)
    return out


def escape_worker(task: dict[str, Any]) -> dict[str, Any]:
    """grokescape's escape run at temperature T (calibrating T once in full mode), or with
    per-sample backpropagation (peer grokescape-per-sample) at the given temperature."""
    wl = WORKLOADS["escape"]
    mode = FULL if task["mode"] == "full" else QUICK
    peer = str(task.get("peer", "grokescape"))
    fixed_temperature = task.get("temperature")
    moments = peer == "grokescape"
    data = wl.data()
    kernel = _grokescape_kernels(wl, "float64", data)[peer]
    max_steps = mode.escape_max_steps

    def run(temperature: float, m: int, seed: int) -> dict[str, Any]:
        r = measure_escape(
            m, max_steps, temperature=temperature, seed=seed, moment_gradient=moments
        )
        keep = ("temperature", "n_members", "wall_s", "n_escaped", "n_trajectories")
        return {
            **{k: r[k] for k in keep},
            "max_steps": max_steps,
            "member_steps": m * max_steps,
            "member_steps_per_s": r["member_steps_per_s"],
            "mean_escape_steps": r["mean_escape_steps"],
            "escape_trajectories_per_hour": r["rate"],
            "member_steps_per_escape": r["member_steps_per_escape"],
        }

    # Size the run from a short probe: about escape_target_s seconds of work.
    probe = run(ESCAPE_T0, 64, seed=99)
    per_member_s = probe["wall_s"] / 64
    m = int(max(64, min(16384, mode.escape_target_s / per_member_s)))
    m = 1 << int(round(math.log2(m)))
    calibration = []
    temperature = ESCAPE_T0 if fixed_temperature is None else float(fixed_temperature)
    main_run = run(temperature, m, seed=0)
    calibration.append({k: main_run[k] for k in ("temperature", "mean_escape_steps")})
    ratio = math.log(main_run["mean_escape_steps"] / ESCAPE_TARGET_TAU)
    if mode.calibrate and fixed_temperature is None and abs(ratio) > math.log(1.25):
        # ln tau ~ a + slope / T: one correction step toward the target, then the timed run.
        temperature = 1.0 / (1.0 / temperature - ratio / ESCAPE_LN_TAU_SLOPE)
        main_run = run(temperature, m, seed=0)
        calibration.append({k: main_run[k] for k in ("temperature", "mean_escape_steps")})
    return {
        "peer": peer,
        "workload": "escape",
        "dtype": "float64",
        "status": "ok",
        "version": peer_version("grokescape")[0],
        "kernel": kernel,
        "calibration": calibration,
        **main_run,
        "best_n_members": m,
        "flops_per_member_step": wl.flops(kernel),
        "gflops": main_run["member_steps_per_s"] * wl.flops(kernel) / 1e9,
    }


def threads_worker(task: dict[str, Any]) -> dict[str, Any]:
    """grokescape's thread scaling (:func:`grokescape.selfbench.thread_scaling`) at each
    count in ``task["thread_counts"]`` (default 1 and 2): paper and tiny float32
    member-steps/s and escape trajectories/h at the escape row's temperature, with repeats
    twice the mode's target and ``_SCALING_ESCAPE_STEPS`` steps per escape slot."""
    mode = FULL if task["mode"] == "full" else QUICK
    counts = sorted({int(c) for c in (task.get("thread_counts") or (1, 2))})
    timing = Timing(
        target_s=2 * mode.target_s,
        repeats=mode.repeats,
        fixed_cost_factor=mode.fixed_cost_factor,
        escape_steps=_SCALING_ESCAPE_STEPS,
    )
    temperature = float(task.get("temperature") or ESCAPE_T0)
    rows = thread_scaling(counts, timing, temperature=temperature)
    out: dict[str, Any] = {"thread_counts": counts, "rows": rows}
    paper = {r["threads"]: r["rate"] for r in rows if r["workload"] == "paper"}
    if 1 in paper and 2 in paper:
        out["speedup_1_to_2"] = paper[2] / paper[1]
    return out


def worker_main(payload: str) -> int:
    task = json.loads(payload)
    kind = task.get("kind", "peer")
    try:
        if kind == "escape":
            result = escape_worker(task)
        elif kind == "threads":
            result = threads_worker(task)
        else:
            result = peer_worker(task)
    except Exception as exc:  # reported, never hidden: the parent records the failure
        import traceback

        traceback.print_exc()
        result = {**task, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    print(RESULT_MARK + json.dumps(result, default=json_default), flush=True)
    return 0


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
