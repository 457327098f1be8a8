"""Argument checks shared by the public API: each raises a ValueError or TypeError that
names the offending argument and says what was expected."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def integer(value: Any, name: str, minimum: int | None = None) -> int:
    """An int (numpy integers accepted, bools and floats refused) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def seed(value: Any, name: str = "seed") -> int:
    """A seed for the counter-based generator: an integer in [0, 2**64)."""
    value = integer(value, name, minimum=0)
    if value >= 2**64:
        raise ValueError(f"{name}: expected an integer below 2**64, got {value}")
    return value


def finite_array(value: ArrayLike, name: str, ndim: int | None = None) -> NDArray[np.float64]:
    """A finite float64 array (a copy only where needed), optionally of a given ndim."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array of real numbers ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


def per_member(
    value: ArrayLike,
    name: str,
    n_members: int,
    *,
    low: float,
    low_inclusive: bool,
) -> NDArray[np.float64]:
    """A scalar or an (n_members,) array of finite values above `low`, as (n_members,)."""
    arr = finite_array(value, name)
    if arr.ndim == 0:
        arr = np.full(n_members, float(arr))
    elif arr.shape != (n_members,):
        raise ValueError(
            f"{name}: expected a scalar or an array of shape ({n_members},) (one per member), "
            f"got shape {arr.shape}"
        )
    bad = arr < low if low_inclusive else arr <= low
    if np.any(bad):
        relation = ">=" if low_inclusive else ">"
        raise ValueError(f"{name}: expected values {relation} {low}, got {arr[bad][0]!r}")
    return np.ascontiguousarray(arr)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations, or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_bytes: int, what: str) -> None:
    """Raise MemoryError before allocating more than the machine has available."""
    free = available_memory()
    if free is not None and n_bytes > 0.9 * free:
        raise MemoryError(
            f"{what} would need {n_bytes / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB is "
            "available; reduce the ensemble, the data or the number of records"
        )


def depth(value: Any, minimum: int = 1) -> int:
    """A network depth L: an integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"depth: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"depth: expected an integer >= {minimum}, got {int(value)}")
    return int(value)


def non_negative(value: Any, name: str) -> float:
    """A finite real number >= 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number >= 0, got {type(value).__name__} {value!r}")
    out = float(value)
    if not np.isfinite(out) or out < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return out
