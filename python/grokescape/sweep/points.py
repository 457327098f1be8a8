"""The escape experiments' points through the sweep machinery (``grokescape reproduce``).

An experiment prepares its starting ensembles in the driver (trap protocols, residuals)
and hands its points to :func:`grokescape.experiments.escape_sweep.escape_sweep`. Inside
:meth:`PointsRunner.active`, escape_sweep passes the points here instead of running them:
each point becomes a cell whose start is the ensemble's member states and whose data are
the point's arrays (its id hashes both), split into tasks of `chunk` members (refill
points stay whole, so their refilled trajectories use the streams of a plain run), run on
the executor and written to the experiment's results directory. A rerun after a kill
prepares the same states again (the preparation is deterministic) and so finds the same
cells: finished tasks are skipped.

A point's rows are those of ``point.ensemble.run_until_escape`` (members run on their own
streams; a chunk of members gives the same trajectories as the whole ensemble); the
point's ensemble is not advanced.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from grokescape.experiments import escape_sweep as es
from grokescape.experiments.escape_sweep import EscapePoint
from grokescape.sweep.cells import Cell
from grokescape.sweep.run import SweepBar, SweepError, run_tasks
from grokescape.sweep.store import Store

__all__ = ["PointsRunner", "point_cell"]

#: Members per task of a point (refill points run whole).
POINT_CHUNK = 250


def point_cell(point: EscapePoint, chunk: int | None = POINT_CHUNK) -> Cell:
    """The cell of an escape point: its ensemble's states, data and run settings."""
    ens = point.ensemble
    return Cell(
        data=point.data,
        start=ens.snapshot(),
        criterion=point.criterion,
        lr=point.lr,
        beta=point.beta,
        max_steps=point.max_steps,
        trajectories=ens.n_members,
        temperature=point.temperature,
        batch_size=point.batch_size,
        refill=point.refill,
        seed=point.seed,
        widths=tuple(ens.widths),
        dtype=ens.dtype.name,
        bias=ens.bias,
        decay_bias=ens.decay_bias,
        activation=ens.activation,
        chunk=None if point.refill else chunk,
        labels=point.labels,
    )


def _escape_table(shards: pd.DataFrame) -> pd.DataFrame:
    """A cell's shard rows as run_until_escape's escape table."""
    t = shards.drop(columns="chunk").rename(columns={"slot": "member"})
    return t.sort_values(["member", "trajectory"], kind="stable").reset_index(drop=True)


class PointsRunner:
    """Runs escape points on an executor into a results directory.

    Parameters
    ----------
    out : path
        The results directory (one per experiment).
    executor : executor
        Where tasks run (see :func:`grokescape.sweep.run`).
    identity : str
        What the directory holds (e.g. a hash of the experiment's configuration): another
        identity there is refused.
    name : str
        The progress bar's label.
    progress : bool
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        executor: Any,
        *,
        identity: str,
        name: str,
        progress: bool = True,
        chunk: int | None = POINT_CHUNK,
    ) -> None:
        self.store = Store(out)
        self.executor = executor
        self.identity = identity
        self.name = name
        self.progress = progress
        self.chunk = chunk
        self.bar: SweepBar | None = None
        self.ran = 0
        self.skipped = 0  # tasks found done, written before this runner started
        self._seen: set[tuple[str, int]] = set()
        self._held = contextlib.ExitStack()

    def __call__(self, points: Sequence[EscapePoint]) -> list[pd.DataFrame]:
        cells = [point_cell(p, self.chunk) for p in points]
        unique = list({c.id: c for c in cells}.values())
        if self.bar is None:  # the first points: hold the directory until active() ends
            self._held.enter_context(self.store.lock())
            self.bar = SweepBar(0, 0, self.name, self.progress)
        self.store.open(
            self.identity,
            self.name,
            [
                {
                    "id": c.id,
                    "tasks": c.n_tasks,
                    "trajectories": c.trajectories,
                    "cell": c.describe(),
                }
                for c in unique
            ],
            append=True,
        )
        tasks = [t for c in unique for t in c.tasks()]
        assert self.bar is not None
        self.bar.add_total(len(tasks))
        again = sum(t.key in self._seen for t in tasks)  # a point met twice runs once
        self._seen.update(t.key for t in tasks)
        summary = run_tasks(self.store, tasks, self.executor, bar=self.bar)
        self.ran += summary.ran
        self.skipped += summary.skipped - again
        if summary.failed:
            key, why = summary.failed[0]
            raise SweepError(
                f"{self.name}: {len(summary.failed)} escape tasks failed (first: cell {key[0]} "
                f"chunk {key[1]}: {why}); finished tasks are saved, run again to resume"
            )
        tables = {}
        for c in unique:
            parts = [
                self.store.read_shard(self.store.shard_path(c.id, j))[0] for j in range(c.n_tasks)
            ]
            tables[c.id] = _escape_table(pd.concat(parts, ignore_index=True))
        return [tables[c.id] for c in cells]

    @contextlib.contextmanager
    def active(self) -> Iterator[PointsRunner]:
        """Within the block, escape_sweep runs its points through this runner (the
        results directory, created at the first points, is held by this process only)."""
        with self._held, es.points_runner(self):
            try:
                yield self
            finally:
                if self.bar is not None:
                    self.bar.close()
