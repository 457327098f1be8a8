"""Checkpoints of a long escape run (private): written atomically between calls into the
core, read back to resume the run bit for bit.

An escape run's position is the member states, the slots' arrays (active, start step, hold
start, trajectories started), the trajectories that ended so far and the run step every
member has reached. Those are what :class:`EscapeCheckpoint` writes. A checkpoint belongs
to one run: a fingerprint of the run's arguments and of the members' states at its start
is stored with it, and a checkpoint with another fingerprint is refused instead of being
continued with the wrong settings.

Files are written as a temporary file beside the target, flushed to disk and renamed over
it, so that a crash (``kill -9``, a power cut) leaves either the previous checkpoint or the
new one, never a torn file.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["EscapeCheckpoint", "Position", "atomic_write", "fingerprint"]

_VERSION = 1


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside `path`, fsync it, rename it over
    `path` and fsync the directory (POSIX; elsewhere the rename is still atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if os.name == "posix":
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fingerprint(parts: Mapping[str, Any]) -> str:
    """sha256 of named values (arrays by dtype, shape and bytes; anything else by repr)."""
    h = hashlib.sha256()
    for name in sorted(parts):
        value = parts[name]
        h.update(name.encode() + b"\0")
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(repr(value).encode())
        h.update(b"\1")
    return h.hexdigest()


@dataclass
class Position:
    """Where an escape run stands: run steps done, member states, slot arrays, events."""

    done: int
    first_step: int  # member 0's step at the run's start (aligns calls with epochs)
    members: dict[str, NDArray[Any]]
    slots: dict[str, NDArray[Any]]
    events: dict[str, NDArray[Any]]


class EscapeCheckpoint:
    """The checkpoint file of one escape run.

    Parameters
    ----------
    path : path
        The file (NumPy ``.npz``).
    key : str
        The run's :func:`fingerprint`.
    every : float
        Seconds of wall time between checkpoints (0: at every point where the members
        stand at the same step).
    """

    def __init__(self, path: str | os.PathLike[str], key: str, every: float) -> None:
        self.path = Path(path)
        self.key = key
        self.every = float(every)
        self._last = time.monotonic()
        self.saved = 0  # checkpoints written by this run

    def load(self) -> Position | None:
        """The position saved for this run, or None when there is no checkpoint file."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as f:
                arrays = {name: f[name].copy() for name in f.files}
        except Exception as exc:  # zipfile/ValueError/OSError: not a checkpoint we wrote
            raise ValueError(
                f"checkpoint: {self.path} is not a readable checkpoint ({exc})"
            ) from None
        version = int(arrays.pop("version", np.array(-1)))
        key = str(arrays.pop("key", np.array("")))
        if version != _VERSION or key != self.key:
            raise ValueError(
                f"checkpoint: {self.path} belongs to another run (other settings, data, "
                "network or starting states); remove it or give another path"
            )
        out = Position(
            done=int(arrays.pop("done")),
            first_step=int(arrays.pop("first_step")),
            members={},
            slots={},
            events={},
        )
        for name, arr in arrays.items():
            group, _, field = name.partition(".")
            getattr(out, group)[field] = arr
        return out

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def save(self, position: Position) -> None:
        """Write `position` atomically."""
        arrays: dict[str, Any] = {
            "version": np.array(_VERSION),
            "key": np.array(self.key),
            "done": np.array(position.done, dtype=np.int64),
            "first_step": np.array(position.first_step, dtype=np.int64),
        }
        for group in ("members", "slots", "events"):
            for field, arr in getattr(position, group).items():
                arrays[f"{group}.{field}"] = arr
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda fh: np.savez(fh, **arrays))
        self._last = time.monotonic()
        self.saved += 1
