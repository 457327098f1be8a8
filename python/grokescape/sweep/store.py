"""Durable results of a sweep: one Parquet shard per task in a hive-partitioned dataset,
a manifest, and the checks that make a rerun resume.

Layout of a results directory::

    DIR/manifest.json                      sweep hash, grokescape version, core variant,
                                           creation time, one record per run (start, end,
                                           tasks run, skipped, recomputed, failed)
    DIR/cells.json                         every cell as plain data, with its id and tasks
    DIR/trajectories/cell=<id>/chunk-<j>.parquet     one shard per task

A shard is written as a temporary file in its directory (a name starting with a dot, which
dataset readers skip), flushed to disk and renamed into place, so that it is either absent
or complete. Its Parquet metadata names its task and holds a sha256 of its rows; a shard
that cannot be read, names another task or fails its digest counts as missing (corrupt),
is moved aside to ``DIR/corrupt/`` and its task is run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grokescape._checkpoint import atomic_write
from grokescape.sweep.worker import SHARD_COLUMNS

__all__ = ["SHARD_FORMAT", "SweepMismatch", "Store", "table_digest"]

logger = logging.getLogger(__name__)

SHARD_FORMAT = 1
_META_KEY = b"grokescape.shard"


class SweepMismatch(ValueError):
    """The results directory holds another sweep."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def table_digest(table: pd.DataFrame) -> str:
    """sha256 of a table's column names, dtypes and values (the rows' identity)."""
    h = hashlib.sha256()
    for name in table.columns:
        col = table[name].to_numpy()
        h.update(f"{name}:{col.dtype.str}:{col.shape}".encode())
        h.update(np.ascontiguousarray(col).tobytes())
    return h.hexdigest()


@dataclass
class ShardState:
    """What the directory holds for one task."""

    key: tuple[str, int]
    path: Path
    status: str  # "done", "missing", "corrupt"
    rows: int = 0
    reason: str = ""


class Store:
    """A sweep's results directory.

    Parameters
    ----------
    root : path
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "trajectories"
        self.manifest_path = self.root / "manifest.json"
        self.cells_path = self.root / "cells.json"

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())  # type: ignore[no-any-return]

    def cells(self) -> list[dict[str, Any]]:
        if not self.cells_path.exists():
            return []
        return json.loads(self.cells_path.read_text())  # type: ignore[no-any-return]

    def _write_json(self, path: Path, value: Any) -> None:
        text = json.dumps(value, indent=1, sort_keys=False, default=str) + "\n"
        atomic_write(path, lambda fh: fh.write(text.encode()))

    def open(
        self, sweep_hash: str, name: str, cells: list[dict[str, Any]], *, append: bool = False
    ) -> dict[str, Any]:
        """Create the directory for a sweep, or check that it holds this sweep.

        With `append`, the cells are added to those already recorded (a sweep whose cells
        come in several batches under one identity, as ``grokescape reproduce`` runs them).
        Raises SweepMismatch when the directory holds another sweep.
        """
        from grokescape._config import config

        self.root.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        if manifest is not None and manifest.get("sweep") != sweep_hash:
            raise SweepMismatch(
                f"out: {self.root} holds the results of another sweep "
                f"({manifest.get('name')!r}, hash {str(manifest.get('sweep'))[:12]}...; this "
                f"sweep is {name!r}, hash {sweep_hash[:12]}...). Give another directory, or "
                "delete this one to start over"
            )
        if manifest is None:
            build = config()
            manifest = {
                "format": SHARD_FORMAT,
                "sweep": sweep_hash,
                "name": name,
                "grokescape": build["grokescape"],
                "core_variant": build["core_variant"],
                "created": _now(),
                "runs": [],
            }
            self._write_json(self.manifest_path, manifest)
        known = {c["id"]: c for c in self.cells()} if append else {}
        merged = list(known.values()) + [c for c in cells if c["id"] not in known]
        if not self.cells_path.exists() or merged != self.cells():
            self._write_json(self.cells_path, merged)
        return manifest

    def record_run(self, record: dict[str, Any]) -> None:
        """Append (or update, by its "started" time) one run's record in the manifest."""
        manifest = self.manifest() or {}
        runs = [r for r in manifest.get("runs", []) if r.get("started") != record["started"]]
        manifest["runs"] = [*runs, record]
        self._write_json(self.manifest_path, manifest)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory for one driver at a time (released when the process dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fh = open(path, "a+")
        try:
            try:
                import fcntl

                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - not POSIX: no lock
                pass
            except OSError:
                fh.seek(0)
                raise RuntimeError(
                    f"out: {self.root} is in use by another sweep run ({fh.read().strip()})"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} since {_now()}\n")
            fh.flush()
            yield
        finally:
            fh.close()

    # ------------------------------------------------------------------ shards
    def shard_path(self, cell_id: str, chunk: int) -> Path:
        return self.data_dir / f"cell={cell_id}" / f"chunk-{chunk:05d}.parquet"

    def write_shard(
        self, key: tuple[str, int], table: pd.DataFrame, info: dict[str, Any] | None = None
    ) -> Path:
        """Write a task's rows atomically (temporary file, fsync, rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        cell_id, chunk = key
        path = self.shard_path(cell_id, chunk)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": SHARD_FORMAT,
            "cell": cell_id,
            "chunk": int(chunk),
            "rows": len(table),
            "sha256": table_digest(table),
            "written": _now(),
            **(info or {}),
        }
        tab = pa.Table.from_pandas(table, preserve_index=False)
        tab = tab.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
        atomic_write(path, lambda fh: pq.write_table(tab, fh))
        return path

    def read_shard(self, path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
        import pyarrow.parquet as pq

        tab = pq.read_table(path)
        meta = json.loads((tab.schema.metadata or {})[_META_KEY])
        return tab.to_pandas(), meta

    def check_shard(self, cell_id: str, chunk: int) -> ShardState:
        """Whether task (cell_id, chunk) is done: its shard exists, reads, names the task
        and matches its digest."""
        path = self.shard_path(cell_id, chunk)
        key = (cell_id, chunk)
        if not path.exists():
            return ShardState(key, path, "missing")
        try:
            table, meta = self.read_shard(path)
        except Exception as exc:  # noqa: BLE001 - any failure to read is a corrupt shard
            return ShardState(key, path, "corrupt", reason=f"unreadable ({exc.__class__.__name__})")
        if meta.get("cell") != cell_id or meta.get("chunk") != chunk:
            return ShardState(key, path, "corrupt", reason="names another task")
        if list(table.columns) != list(SHARD_COLUMNS) or len(table) != meta.get("rows"):
            return ShardState(key, path, "corrupt", reason="columns or rows differ")
        if table_digest(table) != meta.get("sha256"):
            return ShardState(key, path, "corrupt", reason="digest differs")
        return ShardState(key, path, "done", rows=len(table))

    def quarantine(self, state: ShardState) -> Path:
        """Move a corrupt shard aside to DIR/corrupt/ (kept for inspection)."""
        target = self.root / "corrupt" / f"{state.key[0]}-{state.key[1]:05d}-{time.time_ns()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(state.path, target)
        return target

    def scan(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], ShardState]:
        return {k: self.check_shard(*k) for k in keys}

    def expected_keys(self) -> list[tuple[str, int]]:
        return [(c["id"], j) for c in self.cells() for j in range(int(c["tasks"]))]

    # ------------------------------------------------------------------ reading
    def load(self, *, complete: bool = True) -> pd.DataFrame:
        """All rows as one table (a pyarrow dataset over the shards that are done), with
        the cell id and its labels; `complete` raises unless every task is done."""
        import pyarrow.dataset as ds

        cells = self.cells()
        if not cells:
            raise FileNotFoundError(f"{self.root}: no sweep results here (no cells.json)")
        states = self.scan(self.expected_keys())
        bad = [s for s in states.values() if s.status != "done"]
        if complete and bad:
            raise ValueError(
                f"{self.root}: {len(bad)} of {len(states)} tasks are not done "
                f"({sum(s.status == 'corrupt' for s in bad)} corrupt); run the sweep again to "
                "finish them, or load(..., complete=False)"
            )
        files = [str(s.path) for s in states.values() if s.status == "done"]
        import pyarrow as pa

        part = ds.partitioning(pa.schema([("cell", pa.string())]), flavor="hive")
        if files:
            dataset = ds.dataset(
                files, format="parquet", partitioning=part, partition_base_dir=str(self.data_dir)
            )
            frame = dataset.to_table().to_pandas()
        else:
            frame = pd.DataFrame({c: [] for c in ("cell", *SHARD_COLUMNS)})
        frame = frame[["cell", *SHARD_COLUMNS]]
        labels = {c["id"]: c["cell"].get("labels", {}) for c in cells}
        # a label that names a column (e.g. "beta") is already in the rows
        names = sorted({k for v in labels.values() for k in v} - set(frame.columns))
        for name in names:
            frame[name] = frame["cell"].map(lambda i, n=name: labels[i].get(n))
        order = {c["id"]: i for i, c in enumerate(cells)}
        frame["_order"] = frame["cell"].map(order)
        frame = frame.sort_values(["_order", "slot", "trajectory"], kind="stable")
        return frame.drop(columns="_order").reset_index(drop=True)
