"""Sweeps of escape measurements beyond one process: cells as data, any executor (the
embedded process pool, Dask, submitit/Slurm), durable Parquet results, kill and resume.

>>> from grokescape import sweep
>>> s = sweep.Sweep.from_toml("examples/sweep_quick.toml")        # doctest: +SKIP
>>> sweep.run(s, out="sweep_quick")                                # doctest: +SKIP
>>> sweep.table("sweep_quick")                                     # doctest: +SKIP

- :mod:`~grokescape.sweep.cells`: :class:`Cell` (one measurement, hashable, with its
  seed), :class:`Sweep` (``from_toml``, ``grid``), the starts and data specifications;
- :mod:`~grokescape.sweep.worker`: what a worker does with a task;
- :mod:`~grokescape.sweep.store`: the results directory (shards, manifest, checks);
- :mod:`~grokescape.sweep.executors`: the local pool, Dask, submitit;
- :mod:`~grokescape.sweep.run`: :func:`run`, :func:`status`, :func:`load`, :func:`table`;
- :mod:`~grokescape.sweep.points`: the experiments' escape points through the same
  machinery (``grokescape reproduce``).

See docs/sweeps.md.
"""

from grokescape.sweep.cells import (
    Aligned,
    Cell,
    Checkpoint,
    RandomInit,
    Snapshot,
    Sweep,
    Task,
    TeacherData,
)
from grokescape.sweep.executors import local_executor
from grokescape.sweep.run import RunSummary, SweepError, load, run, status, table
from grokescape.sweep.store import SweepMismatch
from grokescape.sweep.worker import run_task

__all__ = [
    "Aligned",
    "Cell",
    "Checkpoint",
    "RandomInit",
    "RunSummary",
    "Snapshot",
    "Sweep",
    "SweepError",
    "SweepMismatch",
    "Task",
    "TeacherData",
    "load",
    "local_executor",
    "run",
    "run_task",
    "status",
    "table",
]
