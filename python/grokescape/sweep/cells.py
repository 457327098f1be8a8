"""Sweeps as data: a cell is a complete, hashable description of one escape measurement,
a sweep is a list of cells, written in TOML or built in Python.

A cell says everything :meth:`grokescape.Ensemble.run_until_escape` needs (network, data,
starting state, escape criterion, lr, beta, temperature, batch size, step budget, refill,
seed) and how many trajectories to measure. Its id is a hash of that description, so the
same measurement has the same id in every process and on every machine. A cell is split
into tasks of ``chunk`` trajectories (with refill: slots); task j runs trajectories
``[j chunk, (j + 1) chunk)`` and their random streams are the trajectory ids, so a task's
result depends on the cell and j only, never on where, when or next to what it runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from grokescape import _checks
from grokescape.data import Dataset, teacher_data
from grokescape.ensemble import EnsembleSnapshot
from grokescape.escape import ModeThreshold, TestMSEThreshold

__all__ = [
    "Aligned",
    "Cell",
    "Checkpoint",
    "RandomInit",
    "Snapshot",
    "Sweep",
    "TeacherData",
    "Task",
]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _arrays_digest(arrays: Iterable[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose of a cell (the protocol's training, ...), far from the cell's
    own seed so that the preparation never replays the measured run's noise."""
    return int(_sha256(f"{seed}:{purpose}")[:15], 16)


# ---------------------------------------------------------------------------- data
@dataclass(frozen=True)
class TeacherData:
    """The paper's Gaussian teacher data (:func:`grokescape.teacher_data`)."""

    eta: tuple[float, ...] = (0.9, 0.8)
    n_train: int = 512
    n_test: int = 0
    seed: int = 0
    exact_moments: bool = False
    pool: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "eta", tuple(float(e) for e in np.atleast_1d(self.eta)))
        object.__setattr__(self, "n_train", _checks.integer(self.n_train, "data.n_train", 1))
        object.__setattr__(self, "n_test", _checks.integer(self.n_test, "data.n_test", 0))
        object.__setattr__(self, "seed", _checks.seed(self.seed, "data.seed"))
        if self.pool is not None:
            object.__setattr__(self, "pool", _checks.integer(self.pool, "data.pool", 1))

    def build(self) -> Dataset:
        return teacher_data(
            self.eta,
            self.n_train,
            self.n_test,
            self.seed,
            exact_moments=self.exact_moments,
            pool=self.pool,
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": "teacher", **dataclasses.asdict(self), "eta": list(self.eta)}


def _dataset_description(data: Dataset) -> dict[str, Any]:
    digest = _arrays_digest([data.x_train, data.y_train, data.x_test, data.y_test])
    return {"kind": "arrays", "n_train": data.n_train, "n_test": data.n_test, "sha256": digest}


# ---------------------------------------------------------------------------- starts
@dataclass(frozen=True)
class Aligned:
    """The aligned trap of the `rank` strongest modes at `beta` (default: the cell's beta),
    built from the theory (:func:`grokescape.traps.aligned_weights`); the unlearned
    directions are exactly zero unless the cell adds a residual."""

    rank: int = 1
    beta: float | None = None
    kind: str = field(default="aligned", init=False)


@dataclass(frozen=True)
class RandomInit:
    """Random initial weights (:meth:`grokescape.Ensemble.init_random`), drawn per
    trajectory; biases, where the network has them, uniform in +-1/sqrt(fan_in)."""

    std: float | str = "fan_in"
    kind: str = field(default="random", init=False)


@dataclass(frozen=True)
class Checkpoint:
    """The paper's checkpoint protocol (:func:`grokescape.traps.checkpoint_trap`) from a
    random initialisation: train to convergence at beta = 0, then at `trap_beta`.

    The protocol decides convergence for all members of a task together, so a trajectory's
    start depends on the other trajectories of its task: on the cell's chunk size, which is
    part of the cell.
    """

    trap_beta: float = 0.361
    lr: float = 0.08
    batch_size: int | None = 64
    block_epochs: int = 50
    max_epochs: int = 2000
    kind: str = field(default="checkpoint", init=False)


@dataclass(frozen=True)
class Snapshot:
    """Member states saved with :meth:`grokescape.EnsembleSnapshot.save`: trajectory i
    starts from the snapshot's member i (with its step counter, stream and sample order).
    `sha256`, when given, is checked against the file's bytes."""

    path: str = ""
    sha256: str | None = None
    kind: str = field(default="snapshot", init=False)

    def load(self) -> EnsembleSnapshot:
        raw = Path(self.path).read_bytes()
        if self.sha256 is not None and _sha256(raw) != self.sha256:
            raise ValueError(f"start.path: {self.path} does not match start.sha256")
        return EnsembleSnapshot.load(self.path)


Start = Aligned | RandomInit | Checkpoint | Snapshot | EnsembleSnapshot
_STARTS: dict[str, type] = {
    "aligned": Aligned,
    "random": RandomInit,
    "checkpoint": Checkpoint,
    "snapshot": Snapshot,
}


def _start_description(start: Start) -> dict[str, Any]:
    if isinstance(start, EnsembleSnapshot):
        arrays = [getattr(start, k) for k in ("params", "steps", "streams")]
        arrays += [start.order_streams, start.order_epochs, start.diverged]
        return {"kind": "states", "n_members": start.n_members, "sha256": _arrays_digest(arrays)}
    return {"kind": start.kind, **{k: v for k, v in dataclasses.asdict(start).items()}}


# ---------------------------------------------------------------------------- criteria
def _criterion_description(c: ModeThreshold | TestMSEThreshold) -> dict[str, Any]:
    if isinstance(c, ModeThreshold):
        return {"kind": "mode", **dataclasses.asdict(c)}
    return {"kind": "test_mse", **dataclasses.asdict(c)}


def _criterion_from(spec: Any) -> ModeThreshold | TestMSEThreshold:
    if isinstance(spec, ModeThreshold | TestMSEThreshold):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"criterion: expected a table with a kind, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("kind", "mode")
    if kind == "mode":
        return ModeThreshold(**spec)
    if kind == "test_mse":
        return TestMSEThreshold(**spec)
    raise ValueError(f"criterion.kind: expected 'mode' or 'test_mse', got {kind!r}")


def _start_from(spec: Any) -> Start:
    if isinstance(spec, Aligned | RandomInit | Checkpoint | Snapshot | EnsembleSnapshot):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"start: expected a table with a kind, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("kind", "aligned")
    if kind not in _STARTS:
        raise ValueError(f"start.kind: expected one of {sorted(_STARTS)}, got {kind!r}")
    try:
        return _STARTS[kind](**spec)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ValueError(f"start: {exc}") from None


def _data_from(spec: Any) -> TeacherData | Dataset:
    if isinstance(spec, TeacherData | Dataset):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"data: expected a table, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("kind", "teacher")
    if kind != "teacher":
        raise ValueError(f"data.kind: expected 'teacher', got {kind!r}")
    try:
        return TeacherData(**spec)
    except TypeError as exc:
        raise ValueError(f"data: {exc}") from None


# ---------------------------------------------------------------------------- cells
def batches_per_epoch(n_train: int, batch_size: int | None) -> int:
    """SGD steps per epoch (as the core counts them: full batch is one step)."""
    if batch_size is None or batch_size >= n_train:
        return 1
    return max(1, n_train // batch_size)


@dataclass(frozen=True)
class Cell:
    """One escape measurement: `trajectories` runs of SGD from a trap until escape.

    Parameters
    ----------
    data : TeacherData or Dataset
    start : Aligned, RandomInit, Checkpoint, Snapshot or EnsembleSnapshot
        Where each trajectory starts (an EnsembleSnapshot in memory: member i for
        trajectory i; such cells run but cannot be written as TOML).
    criterion : ModeThreshold or TestMSEThreshold
    lr, beta, temperature, batch_size, sampling, max_steps, refill, seed
        As in :meth:`~grokescape.Ensemble.run_until_escape`; the run's seed is `seed`.
    trajectories : int
        Trajectories to measure; with ``refill=True``, slots (each runs trajectories until
        `max_steps`).
    residual : float
        Frobenius norm of a random residual added to every layer of every start (the
        "residual" mechanism), drawn per trajectory.
    widths, dtype, bias, decay_bias, activation
        The networks.
    chunk : int or None
        Trajectories (slots) per task; None runs the cell as one task.
    labels : mapping
        Names of the cell (e.g. ``{"mechanism": "noise"}``): columns of the results.
    """

    data: TeacherData | Dataset
    start: Start
    criterion: ModeThreshold | TestMSEThreshold
    lr: float
    beta: float
    max_steps: int
    trajectories: int
    temperature: float = 0.0
    batch_size: int | None = None
    sampling: str = "epoch"
    refill: bool = False
    seed: int = 0
    residual: float = 0.0
    widths: tuple[int, ...] = (2, 10, 10, 2)
    dtype: str = "float64"
    bias: bool = False
    decay_bias: bool = True
    activation: str = "linear"
    chunk: int | None = None
    labels: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()  # kept as sorted pairs

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "data", _data_from(self.data))
        set_(self, "start", _start_from(self.start))
        set_(self, "criterion", _criterion_from(self.criterion))
        for name in ("lr", "beta", "temperature", "residual"):
            set_(self, name, _checks.non_negative(getattr(self, name), name))
        if self.lr <= 0:
            raise ValueError(f"lr: expected > 0, got {self.lr}")
        set_(self, "max_steps", _checks.integer(self.max_steps, "max_steps", 1))
        set_(self, "trajectories", _checks.integer(self.trajectories, "trajectories", 1))
        set_(self, "seed", _checks.seed(self.seed))
        set_(self, "widths", tuple(_checks.integer(w, "widths", 1) for w in self.widths))
        if self.batch_size is not None:
            set_(self, "batch_size", _checks.integer(self.batch_size, "batch_size", 1))
        if self.chunk is not None:
            set_(self, "chunk", _checks.integer(self.chunk, "chunk", 1))
        if self.sampling not in ("epoch", "replacement"):
            raise ValueError(f"sampling: expected 'epoch' or 'replacement', got {self.sampling!r}")
        labels = self.labels.items() if isinstance(self.labels, Mapping) else self.labels
        labels = tuple(
            sorted((str(k), v.item() if isinstance(v, np.generic) else v) for k, v in labels)
        )
        for k, v in labels:
            if not isinstance(v, str | int | float | bool):
                raise TypeError(f"labels.{k}: expected a string or a number, got {v!r}")
        set_(self, "labels", labels)
        if isinstance(self.start, EnsembleSnapshot) and self.start.n_members < self.trajectories:
            raise ValueError(
                f"start: the snapshot holds {self.start.n_members} members, the cell asks for "
                f"{self.trajectories} trajectories"
            )

    # ------------------------------------------------------------------ identity
    def describe(self) -> dict[str, Any]:
        """The cell as plain data (JSON/TOML types); arrays appear as their sha256."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "data":
                v = v.describe() if isinstance(v, TeacherData) else _dataset_description(v)
            elif f.name == "start":
                v = _start_description(v)
            elif f.name == "criterion":
                v = _criterion_description(v)
            elif f.name == "labels":
                v = dict(v)
            elif f.name == "widths":
                v = list(v)
            out[f.name] = v
        return out

    @property
    def id(self) -> str:
        """16 hex digits of the sha256 of :meth:`describe` (the same on every machine)."""
        return _sha256(_canonical(self.describe()))[:16]

    @property
    def label_dict(self) -> dict[str, Any]:
        return dict(self.labels)

    def replace(self, **changes: Any) -> Cell:
        """A copy with some settings changed; nested ones by dotted name, e.g.
        ``cell.replace(**{"start.rank": 0, "criterion.mode": 0})``."""
        flat: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            head, _, rest = key.replace("__", ".").partition(".")
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                flat[head] = value
        for head, sub in nested.items():
            if head == "labels":
                flat["labels"] = {**self.label_dict, **flat.get("labels", {}), **sub}
                continue
            base = flat.get(head, getattr(self, head))
            if not dataclasses.is_dataclass(base) or isinstance(base, type):
                raise ValueError(f"{head}: has no settings to change ({'.'.join(sub)})")
            desc = {k: v for k, v in dataclasses.asdict(base).items() if k != "kind"}
            desc.update(sub)
            kind = getattr(base, "kind", None)
            if head == "criterion":
                kind = "mode" if isinstance(base, ModeThreshold) else "test_mse"
            flat[head] = {"kind": kind, **desc} if kind else desc
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ValueError(f"cell: unknown settings {unknown}; a cell has {sorted(names)}")
        return dataclasses.replace(self, **flat)

    # ------------------------------------------------------------------ tasks
    @property
    def chunk_size(self) -> int:
        return self.trajectories if self.chunk is None else min(self.chunk, self.trajectories)

    @property
    def n_tasks(self) -> int:
        return math.ceil(self.trajectories / self.chunk_size)

    def task_range(self, chunk: int) -> tuple[int, int]:
        """Trajectories (slots) [lo, hi) of task `chunk`."""
        lo = chunk * self.chunk_size
        return lo, min(self.trajectories, lo + self.chunk_size)

    def tasks(self) -> list[Task]:
        return [Task(self, j) for j in range(self.n_tasks)]

    def prep_seed(self) -> int:
        return _derived_seed(self.seed, "prep")


@dataclass(frozen=True)
class Task:
    """Task `chunk` of a cell: trajectories ``cell.task_range(chunk)``."""

    cell: Cell
    chunk: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.cell.id, self.chunk)


# ---------------------------------------------------------------------------- sweeps
_TOP_LEVEL = {"name", "cell", "grid", "cells"}


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"start": {"residual": [..]}} -> {"start.residual": [..]} (lists are leaves)."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _cell_from_settings(settings: Mapping[str, Any]) -> Cell:
    """A cell from a TOML-like table: nested tables for data, start, criterion, labels;
    ``max_epochs`` instead of ``max_steps`` counts epochs of the cell's data and batch."""
    s = dict(settings)
    names = {f.name for f in dataclasses.fields(Cell)}
    max_epochs = s.pop("max_epochs", None)
    if max_epochs is not None:
        if "max_steps" in s:
            raise ValueError("cell: give max_steps or max_epochs, not both")
        data = _data_from(s.get("data", {}))
        n_train = data.n_train
        epochs = _checks.integer(max_epochs, "max_epochs", 1)
        s["max_steps"] = epochs * batches_per_epoch(n_train, s.get("batch_size"))
    unknown = sorted(set(s) - names)
    if unknown:
        raise ValueError(f"cell: unknown settings {unknown}; a cell has {sorted(names)}")
    missing = [n for n in ("start", "criterion", "lr", "beta", "trajectories") if n not in s]
    if "max_steps" not in s:
        missing.append("max_steps (or max_epochs)")
    if missing:
        raise ValueError(f"cell: missing settings {missing}")
    s.setdefault("data", {})
    if "widths" in s:
        s["widths"] = tuple(s["widths"])
    return Cell(**s)


def _apply(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Settings `base` (nested) with dotted `changes` applied."""
    out = json.loads(json.dumps(base))  # deep copy of plain data
    for key, value in changes.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"grid: {key} sets inside {p}, which is not a table")
        node[parts[-1]] = value
    return out


def _expand_axis(name: str, values: Any) -> list[dict[str, Any]]:
    """The changes of each value of a grid axis. An axis named after a setting (dotted
    for nested ones) takes that setting's values; any other name is a labelled axis whose
    values are tables of settings with a "name" (the label's value), or plain labels."""
    if not isinstance(values, list) or not values:
        raise ValueError(f"grid.{name}: expected a non-empty list of values")
    head = name.split(".")[0]
    if head in {f.name for f in dataclasses.fields(Cell)} | {"max_epochs"}:
        return [{name: v} for v in values]
    out = []
    for v in values:
        if isinstance(v, Mapping):
            v = dict(v)
            if "name" not in v:
                raise ValueError(f"grid.{name}: each table needs a name (the label's value)")
            label = v.pop("name")
            out.append({f"labels.{name}": label, **_flatten(v)})
        else:
            out.append({f"labels.{name}": v})
    return out


class Sweep:
    """A list of cells: the unit that :func:`grokescape.sweep.run` runs and resumes.

    Parameters
    ----------
    cells : sequence of Cell
    name : str
    """

    def __init__(self, cells: Sequence[Cell], name: str = "sweep") -> None:
        self.cells = list(cells)
        self.name = str(name)
        if not self.cells:
            raise ValueError("cells: a sweep needs at least one cell")
        for c in self.cells:
            if not isinstance(c, Cell):
                raise TypeError(f"cells: expected Cell objects, got {type(c).__name__}")
        ids = [c.id for c in self.cells]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"cells: cell {dup} appears twice (the same settings)")

    def __len__(self) -> int:
        return len(self.cells)

    def __repr__(self) -> str:
        return (
            f"Sweep({self.name!r}, cells={len(self.cells)}, tasks={self.n_tasks}, "
            f"trajectories={sum(c.trajectories for c in self.cells)})"
        )

    @property
    def hash(self) -> str:
        """sha256 of the sorted cell ids: the sweep's identity (cell order does not count)."""
        return _sha256("\n".join(sorted(c.id for c in self.cells)))

    @property
    def n_tasks(self) -> int:
        return sum(c.n_tasks for c in self.cells)

    def tasks(self) -> list[Task]:
        return [t for c in self.cells for t in c.tasks()]

    # ------------------------------------------------------------------ building
    @classmethod
    def grid(
        cls,
        base: Cell,
        axes: Mapping[str, Sequence[Any]] | None = None,
        *,
        name: str = "sweep",
        **more_axes: Sequence[Any],
    ) -> Sweep:
        """Every combination of the axes' values applied to `base` (:meth:`Cell.replace`
        names; ``start__rank`` in keywords stands for ``start.rank``)."""
        all_axes = {**(axes or {}), **{k.replace("__", "."): v for k, v in more_axes.items()}}
        keys = list(all_axes)
        cells = [
            base.replace(**dict(zip(keys, combo, strict=True)))
            for combo in product(*(list(all_axes[k]) for k in keys))
        ]
        return cls(cells, name=name)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], name: str | None = None) -> Sweep:
        """A sweep from a TOML-like table: ``[cell]`` (every cell's settings), ``[grid]``
        (lists of values; every combination is a cell) and ``[[cells]]`` (further cells,
        each as changes to ``[cell]``); see docs/sweeps.md."""
        unknown = sorted(set(config) - _TOP_LEVEL)
        if unknown:
            raise ValueError(f"sweep: unknown tables {unknown}; expected {sorted(_TOP_LEVEL)}")
        base = dict(config.get("cell", {}))
        grid = _flatten(config.get("grid", {}))
        extra = config.get("cells", [])
        settings: list[dict[str, Any]] = []
        if grid:
            axes = [_expand_axis(k, v) for k, v in grid.items()]
            for combo in product(*axes):
                changes: dict[str, Any] = {}
                for c in combo:
                    changes.update(c)
                settings.append(_apply(base, changes))
        for i, table in enumerate(extra):
            if not isinstance(table, Mapping):
                raise ValueError(f"cells[{i}]: expected a table")
            settings.append(_apply(base, _flatten(table)))
        if not grid and not extra:
            settings.append(base)
        cells = []
        for i, s in enumerate(settings):
            try:
                cells.append(_cell_from_settings(s))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"sweep cell {i}: {exc}") from None
        return cls(cells, name=str(config.get("name", name or "sweep")))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Sweep:
        """Read a sweep written in TOML (see :meth:`from_dict` and docs/sweeps.md)."""
        path = Path(path)
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
        return cls.from_dict(config, name=path.stem)

    def describe(self) -> list[dict[str, Any]]:
        """Every cell as plain data with its id and its number of tasks."""
        return [
            {"id": c.id, "tasks": c.n_tasks, "trajectories": c.trajectories, "cell": c.describe()}
            for c in self.cells
        ]
