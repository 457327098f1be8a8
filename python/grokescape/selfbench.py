"""``grokescape bench``: grokescape's own speed on the benchmark workloads, no peers.

Three measurements on the workloads of :mod:`grokescape.workloads`, each on one ensemble
started from the workload's starting weights:

- member-steps/s per kernel (:data:`KERNEL_ROWS`): the paper network in float64 with the
  moment gradient and with per-sample backpropagation, tiny in float32 and float64, wide
  in float32; each row names the core kernel that ran (``Ensemble.step_kernel``);
- escape trajectories per hour: the escape workload from its trap at ``ESCAPE_T0`` under
  :meth:`~grokescape.Ensemble.run_until_escape` with refill, every slot running the same
  number of steps;
- thread scaling: paper, tiny float32 and escape at each thread count (1, 2, 4, ... up to
  the core count by default) on one fixed ensemble per workload sized by the largest
  count, with the speed-up and parallel efficiency against the fewest threads;
- with ``sizes`` (``grokescape bench --sizes 1e4 1e6``): the paper network's member-steps/s
  in one ``train`` call of :data:`SIZE_STEPS` steps at each ensemble size, and how long a
  Ctrl-C takes to stop a call on the largest (:func:`interrupt_latency`). Large ensembles
  go through the core in blocks of members (``grokescape._engine``); this row shows what
  that costs.

Training rows are timed by :func:`time_runner`: a warm-up, a run sized to the target
time, then repeats whose median is the rate. ``Ensemble.train`` evaluates the final
observables after every call, a fixed cost that the repeats outlast by a factor
(:class:`Timing`); the cost is measured and reported, not subtracted. The peer benchmark
(``benchmarks/peers.py`` in the repository) times grokescape and its peers the same way.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grokescape.workloads import ESCAPE_T0, WORKLOADS

__all__ = [
    "FULL",
    "KERNEL_ROWS",
    "QUICK",
    "SCALING_ROWS",
    "Timing",
    "TrainRunner",
    "bench_members",
    "default_thread_counts",
    "format_rate",
    "format_report",
    "interrupt_latency",
    "measure_escape",
    "measure_sizes",
    "measure_train",
    "run_bench",
    "thread_scaling",
    "time_runner",
    "with_speedups",
]


@dataclass(frozen=True)
class Timing:
    """How long each measurement runs.

    Attributes
    ----------
    target_s : float
        Seconds per timed repeat of a training row.
    repeats : int
        Timed repeats per training row; the median is reported.
    fixed_cost_factor : float
        Repeats last at least this many times the per-call fixed cost (the final
        observables of ``train``), so that it stays a small part of the timing.
    escape_steps : int
        Steps per slot of an escape run.
    """

    target_s: float
    repeats: int
    fixed_cost_factor: float
    escape_steps: int


QUICK = Timing(target_s=0.15, repeats=3, fixed_cost_factor=5.0, escape_steps=4000)
FULL = Timing(target_s=0.5, repeats=3, fixed_cost_factor=20.0, escape_steps=20000)

# (workload, dtype, moment_gradient) of the per-kernel rows.
KERNEL_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("paper", "float64", True),
    ("paper", "float64", False),
    ("tiny", "float32", True),
    ("tiny", "float64", True),
    ("wide", "float32", True),
)
# (workload, dtype) of the thread-scaling rows (default kernels).
SCALING_ROWS: tuple[tuple[str, str], ...] = (
    ("paper", "float64"),
    ("tiny", "float32"),
    ("escape", "float64"),
)
# Ensemble size per thread and at least: a few hundred members per thread keep the per-call
# fixed cost and the last members' imbalance from deciding a thread-scaling ratio; a wide
# member's record costs ~150 of its steps, so fewer of them keep a row short.
_MEMBERS: dict[str, tuple[int, int]] = {
    "paper": (256, 1024),
    "tiny": (512, 1024),
    "wide": (32, 64),
    "escape": (256, 256),
}


# Steps of one train call in the ensemble-size row (the paper network, B = 64).
SIZE_STEPS = 200


def bench_members(workload: str, threads: int) -> int:
    """Ensemble size (escape: slots) of a workload's rows for a run on `threads` threads."""
    per_thread, least = _MEMBERS[workload]
    return max(least, per_thread * int(threads))


def default_thread_counts(cpu_count: int | None = None) -> list[int]:
    """1, 2, 4, ... up to the machine's cores, and the core count itself."""
    n = max(1, int(cpu_count if cpu_count is not None else (os.cpu_count() or 1)))
    counts = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return counts if counts[-1] == n else [*counts, n]


def timed(fn: Callable[..., Any], *args: Any) -> float:
    """Wall seconds of one call ``fn(*args)``."""
    tic = time.perf_counter()
    fn(*args)
    return time.perf_counter() - tic


class TrainRunner:
    """:meth:`~grokescape.Ensemble.train` of one ensemble, for :func:`time_runner`.

    Parameters
    ----------
    widths, dtype
        The network and its floating-point type.
    weights : list of (M, out, in) arrays
        Starting weights; M is the ensemble size.
    data : Dataset
        Training data.
    lr, beta, batch_size, temperature, seed, n_threads
        As in :meth:`~grokescape.Ensemble.train` (``batch_size=None``: full batch).
    moment_gradient : bool
        As in :class:`~grokescape.Ensemble`.
    """

    granularity = 1  # run() takes any number of steps

    def __init__(
        self,
        widths: Sequence[int],
        dtype: str,
        weights: Sequence[np.ndarray],
        data: Any,
        *,
        lr: float,
        beta: float,
        batch_size: int | None,
        temperature: float = 0.0,
        seed: int = 0,
        moment_gradient: bool = True,
        n_threads: int | None = None,
    ) -> None:
        from grokescape.ensemble import Ensemble

        self.ens = Ensemble(
            list(widths), len(weights[0]), dtype=dtype, moment_gradient=moment_gradient
        )
        self.ens.set_weights(list(weights))
        self.data = data
        self.lr, self.beta, self.batch_size = lr, beta, batch_size
        self.temperature, self.seed, self.n_threads = temperature, seed, n_threads

    @property
    def kernel(self) -> str:
        """The core kernel that :meth:`run` runs (``Ensemble.step_kernel``)."""
        return self.ens.step_kernel(self.data, self.batch_size)

    def fixed_cost(self) -> float:
        """Seconds of a 0-step call: the final observables every call evaluates."""
        self.run(0)
        return min(timed(self.run, 0) for _ in range(2))

    def run(self, steps: int) -> None:
        """Advance every member by `steps` SGD steps."""
        self.ens.train(
            self.data,
            steps,
            self.lr,
            self.beta,
            batch_size=self.batch_size,
            temperature=self.temperature,
            seed=self.seed,
            n_threads=self.n_threads,
        )
        if self.ens.diverged.any():
            raise RuntimeError(f"{int(self.ens.diverged.sum())} members diverged")

    def weights(self) -> list[np.ndarray]:
        """Copies of the current weights, (M, out, in) per layer."""
        return [w.copy() for w in self.ens.weights]


def time_runner(
    runner: Any, n_members: int, target_s: float, repeats: int, fixed_cost_factor: float = 20.0
) -> dict[str, Any]:
    """Time ``runner.run(steps)``: a warm-up (compiles, for peers that do), a run sized to
    about `target_s`, then `repeats` timed repeats.

    Parameters
    ----------
    runner
        Has ``run(steps)`` and ``granularity`` (steps must be a multiple of it), and
        optionally ``fixed_cost()``: seconds a call costs besides its steps. The repeats
        then last at least `fixed_cost_factor` times that cost.
    n_members : int
        Members that every step advances.
    target_s, repeats, fixed_cost_factor
        See :class:`Timing`.

    Returns
    -------
    dict
        ``n_members``, ``steps`` per repeat, ``times_s``, ``median_s``, ``rate``
        (member-steps/s of the median repeat), ``warmup_s``, and with a fixed cost
        ``fixed_cost_s`` and ``fixed_cost_fraction`` (of the median repeat).
    """
    g = int(runner.granularity)
    steps = g
    warmup = timed(runner.run, steps)
    fixed = float(runner.fixed_cost()) if hasattr(runner, "fixed_cost") else 0.0
    target = max(target_s, fixed_cost_factor * fixed)
    for _ in range(12):  # grow the run until one lasts about `target`
        t = min(timed(runner.run, steps) for _ in range(2 if steps == g else 1))
        if t >= 0.7 * target:
            break
        steps = max(steps + g, int(steps * min(50.0, target / max(t, 1e-6))) // g * g)
    times = [timed(runner.run, steps) for _ in range(repeats)]
    if statistics.median(times) < 0.5 * target:  # a slow probe misled the sizing
        steps = max(steps + g, int(steps * target / statistics.median(times)) // g * g)
        times = [timed(runner.run, steps) for _ in range(repeats)]
    med = statistics.median(times)
    out = {
        "n_members": n_members,
        "steps": steps,
        "times_s": times,
        "median_s": med,
        "rate": n_members * steps / med,
        "warmup_s": warmup,
    }
    if fixed:
        out["fixed_cost_s"] = fixed
        out["fixed_cost_fraction"] = fixed / med
    return out


def measure_train(
    workload: str,
    dtype: str,
    n_members: int,
    timing: Timing,
    *,
    n_threads: int | None = None,
    moment_gradient: bool = True,
) -> dict[str, Any]:
    """Member-steps/s of ``Ensemble.train`` on a training workload.

    Returns
    -------
    dict
        ``workload``, ``dtype``, ``kernel``, ``moment_gradient``, ``unit``, ``threads``,
        ``rate`` (member-steps/s), ``gflops`` (in the kernel's flop count) and the timing
        details of :func:`time_runner`.
    """
    wl = WORKLOADS[workload]
    data = wl.data()
    runner = TrainRunner(
        wl.widths,
        dtype,
        wl.initial_weights(data, n_members, dtype),
        data,
        lr=wl.lr,
        beta=wl.beta,
        batch_size=wl.batch_size,
        moment_gradient=moment_gradient,
        n_threads=n_threads,
    )
    kernel = runner.kernel
    res = time_runner(runner, n_members, timing.target_s, timing.repeats, timing.fixed_cost_factor)
    rate = res.pop("rate")
    return {
        "workload": workload,
        "dtype": dtype,
        "kernel": kernel,
        "moment_gradient": moment_gradient,
        "unit": "member-steps/s",
        "threads": n_threads,
        "rate": rate,
        "gflops": rate * wl.flops(kernel) / 1e9,
        **res,
    }


def measure_escape(
    n_slots: int,
    steps: int,
    *,
    temperature: float = ESCAPE_T0,
    seed: int = 0,
    n_threads: int | None = None,
    moment_gradient: bool = True,
) -> dict[str, Any]:
    """Escape trajectories per hour of the escape workload: `n_slots` slots from the trap,
    `steps` steps each under ``run_until_escape`` with ``ModeThreshold(1)`` and refill.

    Returns
    -------
    dict
        ``workload``, ``dtype``, ``kernel``, ``moment_gradient``, ``unit``, ``n_members``
        (slots), ``threads``, ``rate`` (escapes per hour), ``steps``, ``wall_s``,
        ``n_escaped``, ``n_trajectories``, ``temperature``, ``member_steps_per_s``,
        ``mean_escape_steps`` (steps at risk per escape) and ``member_steps_per_escape``.
    """
    from grokescape.ensemble import Ensemble
    from grokescape.escape import ModeThreshold

    wl = WORKLOADS["escape"]
    data = wl.data()
    ens = Ensemble(list(wl.widths), n_slots, dtype="float64", moment_gradient=moment_gradient)
    ens.set_weights(wl.initial_weights(data, n_slots, "float64"))
    tic = time.perf_counter()
    res = ens.run_until_escape(
        data, ModeThreshold(1), steps, wl.lr, wl.beta, batch_size=wl.batch_size,
        temperature=temperature, refill=True, seed=seed, n_threads=n_threads,
    )  # fmt: skip
    wall = time.perf_counter() - tic
    n_escaped = int(res.n_escaped)
    return {
        "workload": "escape",
        "dtype": "float64",
        "kernel": ens.step_kernel(data, wl.batch_size),
        "moment_gradient": moment_gradient,
        "unit": "escape trajectories/h",
        "n_members": n_slots,
        "threads": n_threads,
        "rate": n_escaped / wall * 3600.0,
        "steps": steps,
        "wall_s": wall,
        "n_escaped": n_escaped,
        "n_trajectories": int(res.n_trajectories),
        "temperature": temperature,
        "member_steps_per_s": n_slots * steps / wall,
        "mean_escape_steps": float(res.time_at_risk) / max(n_escaped, 1),
        "member_steps_per_escape": n_slots * steps / max(n_escaped, 1),
    }


def _same_run(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["workload"], row["dtype"], row["moment_gradient"], row["n_members"], row["threads"])


def thread_scaling(
    thread_counts: Iterable[int],
    timing: Timing,
    *,
    temperature: float = ESCAPE_T0,
    known: Iterable[dict[str, Any]] = (),
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """:data:`SCALING_ROWS` at each thread count, on one ensemble size per workload
    (:func:`bench_members` at the largest count).

    Parameters
    ----------
    thread_counts : iterable of int
        Thread counts, each >= 1.
    timing : Timing
        Length of each measurement.
    temperature : float
        Temperature of the escape rows.
    known : iterable of dict
        Rows already measured (by :func:`measure_train` or :func:`measure_escape`); one
        with the same workload, dtype, kernel switch, size and threads is reused.
    on_row : callable, optional
        Called with each new measurement (progress).

    Returns
    -------
    list of dict
        :func:`with_speedups` of the rows, workload by workload in thread order.
    """
    counts = sorted({int(c) for c in thread_counts})
    if not counts or counts[0] < 1:
        raise ValueError(f"thread_counts: expected counts >= 1, got {counts}")
    reuse = {_same_run(r): r for r in known}
    rows = []
    for workload, dtype in SCALING_ROWS:
        m = bench_members(workload, counts[-1])
        for threads in counts:
            row = reuse.get((workload, dtype, True, m, threads))
            if row is None:
                if workload == "escape":
                    row = measure_escape(
                        m, timing.escape_steps, temperature=temperature, n_threads=threads
                    )
                else:
                    row = measure_train(workload, dtype, m, timing, n_threads=threads)
                if on_row is not None:
                    on_row(row)
            rows.append(row)
    return with_speedups(rows)


def with_speedups(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the rows with ``speedup`` (rate over the rate at the fewest threads of the
    same workload) and ``efficiency`` (speed-up per thread, relative to the fewest)."""
    base: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["workload"] not in base or r["threads"] < base[r["workload"]]["threads"]:
            base[r["workload"]] = r
    out = []
    for r in rows:
        b = base[r["workload"]]
        speedup = r["rate"] / b["rate"]
        out.append({**r, "speedup": speedup, "efficiency": speedup * b["threads"] / r["threads"]})
    return out


def measure_sizes(
    sizes: Sequence[int], *, n_threads: int | None = None, steps: int = SIZE_STEPS
) -> list[dict[str, Any]]:
    """Member-steps/s of the paper network at each ensemble size: one ``train`` call of
    `steps` steps (B = 64, final observables included, as a user's call), after a short
    warm-up call. Rows carry ``ratio``: the rate over the smallest size's rate."""
    from grokescape.ensemble import Ensemble

    wl = WORKLOADS["paper"]
    data = wl.data()
    rows: list[dict[str, Any]] = []
    for m in sorted(int(v) for v in sizes):
        ens = Ensemble(list(wl.widths), m)
        ens.set_weights(wl.initial_weights(data, m, "float64"))

        def run(n: int, ens: Ensemble = ens) -> None:
            ens.train(data, n, wl.lr, wl.beta, batch_size=wl.batch_size, n_threads=n_threads)

        run(1)  # warm-up: first-touch of the arrays, thread pool
        wall = timed(run, steps)
        rows.append(
            {
                "workload": "paper",
                "dtype": "float64",
                "kernel": ens.step_kernel(data, wl.batch_size),
                "unit": "member-steps/s",
                "threads": n_threads,
                "n_members": m,
                "steps": steps,
                "wall_s": wall,
                "rate": m * steps / wall,
            }
        )
        del ens
    for r in rows:
        r["ratio"] = r["rate"] / rows[0]["rate"]
    return rows


def interrupt_latency(
    n_members: int, *, after_s: float = 2.0, n_threads: int | None = None
) -> dict[str, Any]:
    """Seconds from a SIGINT (sent `after_s` into a long ``train`` call of the paper network
    on `n_members` members) to the KeyboardInterrupt reaching the caller. Main thread of a
    POSIX process only (signals are delivered there)."""
    import signal
    import threading

    from grokescape.ensemble import Ensemble

    wl = WORKLOADS["paper"]
    data = wl.data()
    ens = Ensemble(list(wl.widths), n_members)
    ens.set_weights(wl.initial_weights(data, n_members, "float64"))
    sent: list[float] = []

    def interrupt() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(after_s, interrupt)
    try:
        timer.start()
        ens.train(data, 10**9, wl.lr, wl.beta, batch_size=wl.batch_size, n_threads=n_threads)
        raise RuntimeError("the train call ended before the interrupt")
    except KeyboardInterrupt:
        latency = time.perf_counter() - sent[0]
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    steps = ens.steps[~ens.diverged]
    return {
        "n_members": n_members,
        "latency_s": latency,
        "steps_done": int(steps[0]),
        "members_in_step": bool(np.all(steps == steps[0])),  # (members that diverged stop)
    }


def run_bench(
    *,
    quick: bool = False,
    thread_counts: Sequence[int] | None = None,
    sizes: Sequence[int] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole bench: the kernel rows and the escape rate at the largest thread
    count, then the thread scaling (with more than one count).

    Parameters
    ----------
    quick : bool
        :data:`QUICK` timing (a few seconds per row) instead of :data:`FULL`.
    thread_counts : sequence of int, optional
        Default :func:`default_thread_counts`.
    sizes : sequence of int, optional
        Ensemble sizes of the paper network's size row (:func:`measure_sizes`) and of the
        interrupt latency (largest size); None skips both.
    on_row : callable, optional
        Called with each measured row (progress).

    Returns
    -------
    dict
        ``benchmark``, ``mode``, ``date``, ``config`` (``grokescape._config.config()``),
        ``cpu_count``, ``thread_counts``, ``kernels`` (rows), ``escape`` (one row) and
        ``thread_scaling`` (rows with speed-ups; empty with one count), ``sizes`` (rows,
        empty without sizes) and ``interrupt`` (a dict, or None).
    """
    from grokescape._config import config

    counts = sorted({int(c) for c in (thread_counts or default_thread_counts())})
    if counts[0] < 1:
        raise ValueError(f"thread_counts: expected counts >= 1, got {counts}")
    timing, top = (QUICK if quick else FULL), counts[-1]
    date = _dt.datetime.now().astimezone().isoformat(timespec="seconds")

    def measured(row: dict[str, Any]) -> dict[str, Any]:
        if on_row is not None:
            on_row(row)
        return row

    kernels = [
        measured(
            measure_train(
                workload,
                dtype,
                bench_members(workload, top),
                timing,
                n_threads=top,
                moment_gradient=moments,
            )
        )  # fmt: skip
        for workload, dtype, moments in KERNEL_ROWS
    ]
    escape = measured(
        measure_escape(bench_members("escape", top), timing.escape_steps, n_threads=top)
    )
    scaling = (
        thread_scaling(counts, timing, known=[*kernels, escape], on_row=on_row)
        if len(counts) > 1
        else []
    )
    size_rows = [measured(r) for r in measure_sizes(sizes, n_threads=top)] if sizes else []
    interrupt = interrupt_latency(max(sizes), n_threads=top) if sizes else None
    return {
        "benchmark": "grokescape bench",
        "mode": "quick" if quick else "full",
        "date": date,
        "config": config(),
        "cpu_count": os.cpu_count(),
        "thread_counts": counts,
        "kernels": kernels,
        "escape": escape,
        "thread_scaling": scaling,
        "sizes": size_rows,
        "interrupt": interrupt,
    }


def format_rate(rate: float | None) -> str:
    """A rate with a k / M suffix and 3 significant digits ("-" if missing)."""
    if rate is None or not math.isfinite(rate):
        return "-"
    if rate >= 1e6:
        return f"{rate / 1e6:.3g} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.3g} k"
    return f"{rate:.3g}"


def format_report(report: dict[str, Any]) -> str:
    """:func:`run_bench`'s report as markdown tables."""
    cfg = report["config"]
    lines = [
        f"# grokescape {cfg['grokescape']} bench ({report['mode']})",
        "",
        f"{report['date']}; {cfg['core_variant']} core, OpenMP {cfg['openmp']}, "
        f"{report['cpu_count']} cores, threads {report['thread_counts']}",
        "",
        "## Member-steps/s per kernel",
        "",
        "| workload | dtype | kernel | M | threads | member-steps/s | GFLOP/s | fixed cost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["kernels"]:
        fixed = r.get("fixed_cost_fraction")
        lines.append(
            f"| {r['workload']} | {r['dtype']} | {r['kernel']} | {r['n_members']} | "
            f"{r['threads']} | {format_rate(r['rate'])} | {r['gflops']:.2f} | "
            f"{'-' if fixed is None else f'{100 * fixed:.0f}%'} |"
        )
    e = report["escape"]
    lines += [
        "",
        "GFLOP/s: member-steps/s x the kernel's flops per member-step "
        "(`grokescape.workloads`). fixed cost: share of a timed call spent on the final "
        "observables that every `train` call evaluates (counted, not subtracted).",
        "",
        "## Escape trajectories per hour",
        "",
        f"{format_rate(e['rate'])} escape trajectories/h ({e['n_escaped']} escapes of "
        f"{e['n_trajectories']} trajectories in {e['wall_s']:.1f} s; {e['n_members']} slots x "
        f"{e['steps']} steps with refill, threads {e['threads']}, T = {e['temperature']:.3g}, "
        f"mean escape {e['mean_escape_steps']:.0f} steps)",
    ]
    if report["thread_scaling"]:
        lines += [
            "",
            "## Thread scaling",
            "",
            "One ensemble per workload; speed-up and efficiency against the fewest threads.",
            "",
            "| workload | M | threads | rate | speed-up | efficiency |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["thread_scaling"]:
            lines.append(
                f"| {r['workload']} | {r['n_members']} | {r['threads']} | "
                f"{format_rate(r['rate'])} {r['unit']} | {r['speedup']:.2f}x | "
                f"{100 * r['efficiency']:.0f}% |"
            )
    if report.get("sizes"):
        lines += [
            "",
            "## Ensemble size",
            "",
            f"The paper network, one train call of {report['sizes'][0]['steps']} steps "
            "(B = 64, final observables included); rate relative to the smallest ensemble.",
            "",
            "| M | threads | member-steps/s | relative |",
            "|---|---|---|---|",
        ]
        for r in report["sizes"]:
            lines.append(
                f"| {r['n_members']:,} | {r['threads']} | {format_rate(r['rate'])} | "
                f"{r['ratio']:.2f} |"
            )
    if report.get("interrupt"):
        i = report["interrupt"]
        lines += [
            "",
            f"Ctrl-C during a train call on {i['n_members']:,} members: stopped "
            f"{i['latency_s']:.2f} s after the signal, every member at step {i['steps_done']}"
            f"{'' if i['members_in_step'] else ' (NOT all members in step)'}.",
        ]
    return "\n".join(lines) + "\n"
