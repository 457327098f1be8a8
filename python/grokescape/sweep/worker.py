"""What a worker does with a task: build the cell's data and starting states for the task's
trajectories, run them until escape, and return their rows.

Trajectory i of a cell starts from the cell's start for member i and runs on random stream
i (the start's own stream for saved states), so a task's rows depend only on the cell and
the task's chunk. With refill, slot s's k-th refilled trajectory of task j uses stream
``first + j * chunk * (max_steps + 1) + (k - 1) * n_j + (s - j * chunk)``, with ``first``
the first stream after the starts' and ``n_j`` the task's slots: a slot starts at most
``max_steps + 1`` trajectories, so the tasks' ranges never overlap, and a cell run as one
task uses the streams of a plain ``run_until_escape``.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from grokescape import traps
from grokescape._native import core
from grokescape.data import Dataset
from grokescape.ensemble import Ensemble, EnsembleSnapshot
from grokescape.sweep.cells import (
    Aligned,
    Cell,
    Checkpoint,
    RandomInit,
    Snapshot,
    Task,
    TeacherData,
)

__all__ = ["SHARD_COLUMNS", "TaskOutput", "run_task", "worker_threads"]

#: Columns of a task's rows, in order (the escape table's, with the cell's slot and chunk).
SHARD_COLUMNS = (
    "chunk",
    "slot",
    "trajectory",
    "lr",
    "beta",
    "temperature",
    "batch_size",
    "escaped",
    "censored",
    "diverged",
    "escape_step",
    "detect_step",
    "time",
    "time_epochs",
    "time_continuous",
    "escape_epoch",
)


@dataclass
class TaskOutput:
    """A finished task: its rows and where and how fast it ran."""

    key: tuple[str, int]
    table: pd.DataFrame
    seconds: float
    threads: int
    host: str
    pid: int


def worker_threads(n_threads: int | None = None) -> int:
    """Threads a task gives the core: `n_threads` when the driver fixed it; else
    OMP_NUM_THREADS (Dask's nanny sets 1 per worker process), else SLURM_CPUS_PER_TASK (a
    Slurm job's share), else OpenMP's default (all cores)."""
    if n_threads is not None:
        return int(n_threads)
    for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(var, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return int(core.default_threads())


def _dataset(cell: Cell) -> Dataset:
    if isinstance(cell.data, TeacherData):
        return cell.data.build()
    d = cell.data  # rebuilt from its arrays: see `rows` in _start (pickled dtypes)
    x_train, y_train, x_test, y_test = (
        np.ascontiguousarray(a, dtype=np.float64)
        for a in (d.x_train, d.y_train, d.x_test, d.y_test)
    )
    return Dataset(x_train, y_train, x_test, y_test, eta=d.eta, pool_size=d.pool_size)


def _uniform_biases(ens: Ensemble, seed: int, threads: int) -> list[np.ndarray]:
    """Biases uniform in +-1/sqrt(fan_in) (PyTorch's default), from each member's stream
    (step 1 of purpose "init": the weights use step 0)."""
    sizes = [ens.widths[l + 1] for l in range(ens.depth)]
    z = np.empty((ens.n_members, sum(sizes)))
    core.standard_normal(seed, np.ascontiguousarray(ens.streams), 1, core.Purpose.init, z, threads)
    u = 2.0 * ndtr(z) - 1.0
    out, start = [], 0
    for l, size in enumerate(sizes):
        out.append(u[:, start : start + size] / np.sqrt(ens.widths[l]))
        start += size
    return out


def _start(ens: Ensemble, cell: Cell, data: Dataset, lo: int, threads: int) -> int:
    """Put trajectories lo, lo + 1, ... of the cell into `ens`; returns the first stream
    after the cell's starts (where refilled trajectories begin)."""
    n = ens.n_members
    start = cell.start
    if isinstance(start, Snapshot | EnsembleSnapshot):
        snap = start.load() if isinstance(start, Snapshot) else start
        if snap.n_members < cell.trajectories:
            raise ValueError(
                f"start: the snapshot holds {snap.n_members} members, the cell asks for "
                f"{cell.trajectories} trajectories"
            )
        part = slice(lo, lo + n)

        def rows(a: np.ndarray) -> np.ndarray:
            # a writeable copy with the dtype named again: an array that came pickled may be
            # read-only and carries an equal but distinct dtype object (refused by the core)
            return a[part].astype(np.dtype(a.dtype.str), copy=True)

        ens.restore(
            EnsembleSnapshot(
                params=rows(snap.params),
                steps=rows(snap.steps),
                streams=rows(snap.streams),
                order_streams=rows(snap.order_streams),
                order_epochs=rows(snap.order_epochs),
                diverged=rows(snap.diverged),
                widths=snap.widths,
                dtype=snap.dtype,
                bias=snap.bias,
                activation=snap.activation,
            )
        )
        return int(snap.streams.max()) + 1
    ens.set_streams(np.arange(lo, lo + n, dtype=np.uint64))
    if isinstance(start, Aligned):
        beta = cell.beta if start.beta is None else start.beta
        ens.set_weights(traps.aligned_weights(data, ens.widths, start.rank, beta, n_members=n))
    elif isinstance(start, RandomInit | Checkpoint):
        ens.init_random(start.std if isinstance(start, RandomInit) else None, seed=cell.seed)
        if ens.bias:
            ens.set_weights(ens.weights, _uniform_biases(ens, cell.seed, threads))
        if isinstance(start, Checkpoint):
            traps.checkpoint_trap(
                ens,
                data,
                start.trap_beta,
                lr=start.lr,
                batch_size=start.batch_size,
                block_epochs=start.block_epochs,
                max_epochs=start.max_epochs,
                seed=cell.prep_seed(),
                n_threads=threads,
            )
            ens.set_params(ens.params)  # the measured run starts at step 0, as a new start
    else:  # pragma: no cover - Cell checks the kinds
        raise TypeError(f"start: unknown kind {type(start).__name__}")
    return cell.trajectories


def run_task(task: Task, n_threads: int | None = None) -> TaskOutput:
    """Run one task (on a worker) and return its rows (:data:`SHARD_COLUMNS`)."""
    tic = time.perf_counter()
    cell, chunk = task.cell, task.chunk
    threads = worker_threads(n_threads)
    lo, hi = cell.task_range(chunk)
    data = _dataset(cell)
    ens = Ensemble(
        list(cell.widths),
        hi - lo,
        dtype=cell.dtype,
        bias=cell.bias,
        decay_bias=cell.decay_bias,
        activation=cell.activation,
    )
    first_free = _start(ens, cell, data, lo, threads)
    if cell.residual > 0:
        extra = traps.random_residual(
            ens.widths, ens.n_members, cell.residual, seed=cell.seed, streams=ens.streams
        )
        weights = [np.asarray(w, dtype=float) + r for w, r in zip(ens.weights, extra, strict=True)]
        ens.set_weights(weights, ens.biases)
    result = ens.run_until_escape(
        data,
        cell.criterion,
        cell.max_steps,
        cell.lr,
        cell.beta,
        batch_size=cell.batch_size,
        temperature=cell.temperature,
        sampling=cell.sampling,
        seed=cell.seed,
        refill=cell.refill,
        n_threads=threads,
        refill_base=first_free + chunk * cell.chunk_size * (cell.max_steps + 1),
    )
    table = result.table
    table.insert(0, "slot", table.pop("member").to_numpy() + lo)
    table.insert(0, "chunk", np.full(len(table), chunk, dtype=np.int64))
    table["batch_size"] = table["batch_size"].astype(np.int64)
    table = table[list(SHARD_COLUMNS)]
    return TaskOutput(
        key=task.key,
        table=table,
        seconds=time.perf_counter() - tic,
        threads=threads,
        host=socket.gethostname(),
        pid=os.getpid(),
    )


def describe_output(out: TaskOutput) -> dict[str, Any]:
    return {"seconds": out.seconds, "threads": out.threads, "host": out.host, "pid": out.pid}
