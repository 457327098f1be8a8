"""Run a sweep into a results directory, resume it, and read it back.

:func:`run` checks the directory (a different sweep there is refused), finds the tasks
whose shards are done, moves corrupt shards aside, submits the remaining tasks to the
executor and writes each result as it arrives (the driver is the only writer: workers need
no shared file system). Killing the driver at any moment loses only the tasks in flight;
running the same command again resumes. Results do not depend on the executor, the number
of workers, the order in which tasks finish or how often the sweep was resumed: a task's
rows are fixed by its cell and chunk (:mod:`grokescape.sweep.worker`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from grokescape import stats
from grokescape.sweep.cells import Sweep, Task
from grokescape.sweep.executors import Submitted, open_executor
from grokescape.sweep.store import Store, _now
from grokescape.sweep.worker import TaskOutput, describe_output, run_task

__all__ = ["RunSummary", "SweepError", "load", "run", "run_tasks", "status", "table"]

logger = logging.getLogger(__name__)


class SweepError(RuntimeError):
    """Some tasks failed; the others are saved and a rerun retries the failed ones."""


@dataclass
class RunSummary:
    """What one call of :func:`run` did."""

    out: Path
    tasks: int  # tasks of the sweep
    skipped: int  # done before this run
    ran: int  # run and written by this run
    recomputed: int  # of those, tasks whose shard was corrupt
    failed: list[tuple[tuple[str, int], str]] = field(default_factory=list)
    trajectories: int = 0  # rows written by this run
    escaped: int = 0
    seconds: float = 0.0
    executor: str = ""

    def __str__(self) -> str:
        return (
            f"{self.out}: {self.tasks} tasks, {self.skipped} done before, {self.ran} run "
            f"({self.recomputed} recomputed from corrupt shards), {len(self.failed)} failed; "
            f"{self.trajectories} trajectories, {self.escaped} escaped, {self.seconds:.1f} s "
            f"on {self.executor}"
        )


class SweepBar:
    """One progress bar over a whole sweep: tasks, with trajectories and escapes."""

    def __init__(self, total: int, done: int, desc: str, enabled: bool) -> None:
        self.trajectories = 0
        self.escaped = 0
        self.bar = tqdm(total=total, initial=done, unit="task", desc=desc, disable=not enabled)

    def add_total(self, n: int) -> None:
        self.bar.total = (self.bar.total or 0) + n
        self.bar.refresh()

    def add_done(self, n: int) -> None:
        self.bar.update(n)

    def task(self, table: pd.DataFrame) -> None:
        self.trajectories += len(table)
        self.escaped += int(table["escaped"].sum())
        self.bar.set_postfix(trajectories=self.trajectories, escaped=self.escaped, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_tasks(
    store: Store,
    tasks: list[Task],
    executor: Any,
    *,
    n_threads: int | None = None,
    bar: SweepBar | None = None,
) -> RunSummary:
    """Run the tasks whose shards are not done and write each result as it arrives."""
    tic = time.perf_counter()
    states = store.scan([t.key for t in tasks])
    corrupt = [s for s in states.values() if s.status == "corrupt"]
    for s in corrupt:
        moved = store.quarantine(s)
        logger.warning("shard %s is corrupt (%s); moved to %s, rerunning", s.path, s.reason, moved)
    todo = [t for t in tasks if states[t.key].status != "done"]
    summary = RunSummary(
        out=store.root,
        tasks=len(tasks),
        skipped=len(tasks) - len(todo),
        ran=0,
        recomputed=len(corrupt),
    )
    if bar is not None:
        bar.add_done(summary.skipped)
    submitted = Submitted(executor)
    submitted.submit_all(run_task, ((t.key, (t, n_threads)) for t in todo))
    try:
        for key, out, exc in submitted.as_completed():
            if exc is not None:
                logger.error("task %s chunk %d failed: %r", key[0], key[1], exc)
                summary.failed.append((key, repr(exc)))
                continue
            assert isinstance(out, TaskOutput) and out.key == key
            store.write_shard(key, out.table, describe_output(out))
            summary.ran += 1
            summary.trajectories += len(out.table)
            summary.escaped += int(out.table["escaped"].sum())
            if bar is not None:
                bar.task(out.table)
    finally:
        submitted.cancel()
        summary.seconds = time.perf_counter() - tic
    return summary


def run(
    sweep: Sweep | str | os.PathLike[str],
    out: str | os.PathLike[str],
    executor: Any = None,
    *,
    workers: int | None = None,
    n_threads: int | None = None,
    progress: bool = True,
) -> RunSummary:
    """Run a sweep into `out`, or resume it there.

    Parameters
    ----------
    sweep : Sweep or path of a TOML file
    out : path
        The results directory (created). Holding another sweep's results, it is refused
        (:class:`~grokescape.sweep.store.SweepMismatch`).
    executor : None, "local", "tcp://HOST:PORT", distributed.Client, or an executor
        None or "local": the embedded process pool (`workers` processes, default one per
        core). A Dask scheduler address or Client: Dask through
        ``Client.get_executor(pure=False)``. Any ``concurrent.futures.Executor``, or a
        submitit executor (Slurm), is used as it is and left open.
    n_threads : int or None
        Core threads per task; None: the worker's (see
        :func:`~grokescape.sweep.worker.worker_threads`).
    progress : bool
        One progress bar over the sweep: tasks, trajectories, escapes.

    Returns
    -------
    RunSummary
        Raises SweepError after the run when some tasks failed (the others are saved).
    """
    if not isinstance(sweep, Sweep):
        sweep = Sweep.from_toml(sweep)
    store = Store(out)
    with store.lock():
        store.open(sweep.hash, sweep.name, sweep.describe())
        tasks = sweep.tasks()
        started = _now()
        with open_executor(executor, workers) as (ex, description):
            record = {"started": started, "executor": description, "finished": None}
            store.record_run(record)
            bar = SweepBar(len(tasks), 0, sweep.name, progress)
            try:
                summary = run_tasks(store, tasks, ex, n_threads=n_threads, bar=bar)
            finally:
                bar.close()
        summary.executor = description
        store.record_run(
            {
                **record,
                "finished": _now(),
                "tasks": summary.tasks,
                "skipped": summary.skipped,
                "ran": summary.ran,
                "recomputed": summary.recomputed,
                "failed": len(summary.failed),
                "seconds": round(summary.seconds, 3),
                "complete": not summary.failed,
            }
        )
    if summary.failed:
        first = summary.failed[0]
        raise SweepError(
            f"{len(summary.failed)} of {summary.tasks} tasks failed (first: cell {first[0][0]} "
            f"chunk {first[0][1]}: {first[1]}); the {summary.ran} others are saved in {out}: "
            "run the same command again to retry the failed ones"
        )
    return summary


def status(out: str | os.PathLike[str]) -> dict[str, Any]:
    """What a results directory holds: the manifest, and tasks done, missing and corrupt
    (with trajectories and escapes so far)."""
    store = Store(out)
    manifest = store.manifest()
    if manifest is None:
        raise FileNotFoundError(f"{out}: no sweep results here (no manifest.json)")
    states = store.scan(store.expected_keys())
    counts = {
        k: sum(s.status == k for s in states.values()) for k in ("done", "missing", "corrupt")
    }
    rows = sum(s.rows for s in states.values())
    frame = store.load(complete=False) if counts["done"] else None
    return {
        "manifest": manifest,
        "cells": len(store.cells()),
        "tasks": len(states),
        **counts,
        "trajectories": rows,
        "escaped": int(frame["escaped"].sum()) if frame is not None else 0,
        "corrupt_shards": [str(s.path) for s in states.values() if s.status == "corrupt"],
    }


def load(out: str | os.PathLike[str], *, complete: bool = True) -> pd.DataFrame:
    """Every trajectory of a sweep's results as one pandas table (through a pyarrow
    dataset): the cell id, the task's chunk, the slot, the trajectory (its random stream),
    the escape table's columns (:class:`grokescape.escape.EscapeResult`) and the cells'
    labels. `complete`: raise unless every task is done."""
    return Store(out).load(complete=complete)


def _varying(cells: list[dict[str, Any]]) -> list[str]:
    """Dotted names of the settings that differ between cells."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v if not isinstance(v, list) else str(v)
        return out

    flats = [flat(c["cell"]) for c in cells]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]


def table(
    out: str | os.PathLike[str],
    *,
    time: str = "time_epochs",
    confidence: float = 0.95,
    complete: bool = False,
) -> pd.DataFrame:
    """Per-cell escape rates with exact Poisson intervals
    (:func:`grokescape.stats.escape_rate`): the cell id, the settings that vary between
    cells, trajectories, escapes, censored, the rate and the mean escape time tau (in
    units of `time`) with their intervals, and tasks done of the cell's tasks."""
    store = Store(out)
    cells = store.cells()
    frame = store.load(complete=complete)
    varying = _varying(cells)
    rows = []
    for c in cells:
        flat: dict[str, Any] = {}
        stack = [("", c["cell"])]
        while stack:
            prefix, d = stack.pop()
            for k, v in d.items():
                if isinstance(v, dict):
                    stack.append((f"{prefix}{k}.", v))
                else:
                    flat[f"{prefix}{k}"] = v if not isinstance(v, list) else str(v)
        t = frame[frame["cell"] == c["id"]]
        row: dict[str, Any] = {"cell": c["id"], **{k: flat.get(k) for k in varying}}
        done = int(t["chunk"].nunique()) if len(t) else 0
        if len(t):
            r = stats.escape_rate(t, time=time, confidence=confidence)
            row.update(
                n=len(t),
                escaped=int(t["escaped"].sum()),
                censored=int(t["censored"].sum()),
                rate=r.rate,
                rate_lower=r.rate_lower,
                rate_upper=r.rate_upper,
                tau=r.tau,
                tau_lower=r.tau_lower,
                tau_upper=r.tau_upper,
            )
        else:
            row.update(n=0, escaped=0, censored=0)
            row.update({k: np.nan for k in ("rate", "rate_lower", "rate_upper", "tau")})
            row.update(tau_lower=np.nan, tau_upper=np.nan)
        row["tasks_done"] = f"{done}/{c['tasks']}"
        rows.append(row)
    return pd.DataFrame(rows)
