"""Escape-time data as the statistics take it: checked arrays of times and escape flags,
from arrays or from a trajectory table (one row per trajectory), diverged rows dropped."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = ["check_arrays", "check_confidence", "drop_diverged", "from_frame", "trajectories"]

Array = NDArray[np.float64]


def check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    return confidence


def check_arrays(
    times: ArrayLike, escaped: ArrayLike, time_name: str = "times", escaped_name: str = "escaped"
) -> tuple[Array, NDArray[np.bool_]]:
    """1-d finite non-negative float times and a boolean escape flag of the same length."""
    try:
        t = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{time_name}: expected an array of real numbers ({exc})") from None
    if t.ndim != 1:
        raise ValueError(f"{time_name}: expected a 1-d array, got shape {t.shape}")
    if t.size == 0:
        raise ValueError(f"{time_name}: no trajectories (empty array)")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{time_name}: contains NaN or inf")
    if np.any(t < 0):
        raise ValueError(f"{time_name}: expected times >= 0, got {t[t < 0][0]!r}")
    e = np.asarray(escaped)
    if e.ndim != 1:
        raise ValueError(f"{escaped_name}: expected a 1-d array, got shape {e.shape}")
    if e.shape != t.shape:
        raise ValueError(
            f"{escaped_name}: expected length {t.size} to match {time_name}, got {e.size}"
        )
    if e.dtype != np.bool_:
        try:
            ok = bool(np.isin(e, (0, 1)).all())
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{escaped_name}: expected booleans (or 0/1), got dtype {e.dtype}")
        e = e.astype(bool)
    return t, e


def drop_diverged(df: pd.DataFrame, stacklevel: int = 3) -> pd.DataFrame:
    """The rows of df without ``diverged`` True, warning when any are dropped."""
    if "diverged" not in df.columns:
        return df
    diverged = df["diverged"].fillna(False).astype(bool).to_numpy()
    n = int(diverged.sum())
    if n:
        warnings.warn(
            f"data: {n} of {len(df)} trajectories diverged; they are excluded from the escape "
            "statistics (neither escapes nor clean censoring)",
            stacklevel=stacklevel,
        )
        return df.loc[~diverged]
    return df


def from_frame(df: pd.DataFrame, time: str) -> tuple[Array, NDArray[np.bool_]]:
    for col in (time, "escaped"):
        if col not in df.columns:
            raise ValueError(
                f"data: expected a column {col!r} (one row per trajectory), "
                f"got columns {list(df.columns)}"
            )
    return check_arrays(
        df[time].to_numpy(), df["escaped"].to_numpy(), f"data[{time!r}]", "data['escaped']"
    )


def trajectories(
    times: ArrayLike | pd.DataFrame, escaped: ArrayLike | None, time: str
) -> tuple[Array, NDArray[np.bool_]]:
    """(times, escaped) from arrays or from a trajectory DataFrame (diverged rows dropped)."""
    if isinstance(times, pd.DataFrame):
        if escaped is not None:
            raise ValueError("escaped: give it only with an array of times, not with a DataFrame")
        return from_frame(drop_diverged(times, stacklevel=4), time)
    if escaped is None:
        raise ValueError("escaped: required when times is an array")
    return check_arrays(times, escaped)
