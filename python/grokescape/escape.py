"""Escape criteria and the table of trajectories an escape run produces.

An escape run (:meth:`grokescape.Ensemble.run_until_escape`) lets every member (slot) run
SGD from its current state and checks an escape criterion inside the C++ loop every
``check_every`` steps. A trajectory has escaped at the first check step at which the
criterion holds and then keeps holding for ``hold`` steps; its slot stops there, or with
``refill=True`` restarts from the same initial state as a new trajectory with a fresh
random stream, so that a rate measurement keeps every core busy. A slot runs at most
``max_steps`` steps; the trajectory in progress then is censored. Trajectories whose
parameters become non-finite are flagged ``diverged``.

Thresholds default to the exact theory of the data's empirical modes: a mode escapes when
its amplitude passes the midpoint between the saddle and the learned minimum; the test MSE
criterion uses the midpoint between the plateau levels of the current and the next rank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# pandas is imported where a table is made: at module level it would be most of
# `import grokescape`'s time (tests/test_import.py).
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EscapeResult", "ModeThreshold", "TestMSEThreshold"]


@dataclass(frozen=True)
class ModeThreshold:
    """Escape when a mode is learned.

    Parameters
    ----------
    mode : int
        With ``on="lambda"``: index of the data mode (0 = strongest) whose amplitude
        lambda_mode = u^T W_L...W_1 v must exceed `value`. With ``on="sv"``: index of the
        singular value of the end-to-end map (0 = largest) that must exceed `value` (the
        paper's sparse-run criterion is ``ModeThreshold(1, 1e-3, on="sv")``).
    value : float or None
        Threshold; None takes the theory's midpoint between the saddle and the learned
        minimum of mode `mode` at the data's eta_hat and each member's beta.
    hold : int
        Steps the criterion must keep holding (checked every `check_every` steps).
    on : {"lambda", "sv"}
    check_every : int or None
        Steps between checks; None checks once per epoch (every step for full-batch
        training). A check costs one matrix-vector chain, or a small SVD for ``on="sv"``.
    """

    mode: int = 1
    value: float | None = None
    hold: int = 0
    on: str = "lambda"
    check_every: int | None = None


@dataclass(frozen=True)
class TestMSEThreshold:
    """Escape when the test MSE falls below `value` (the paper's midpoint criterion).

    Parameters
    ----------
    value : float or None
        None takes the midpoint between the theory's test MSE of the starting rank state
        (modes whose initial amplitude is past their threshold count as learned) and of the
        state with the next mode learned, at each member's beta, on the data's test set.
    hold, check_every : int
        As for :class:`ModeThreshold`; check_every defaults to one epoch (a test-set pass
        costs about as much as a few SGD steps).
    """

    __test__ = False  # not a pytest test class

    value: float | None = None
    hold: int = 0
    check_every: int | None = None


@dataclass
class EscapeResult:
    """Trajectories of an escape run, one row each, with the run's settings.

    Columns of :attr:`table`: member (slot), trajectory (its random stream id), lr, beta,
    temperature, batch_size, escaped, censored, diverged, escape_step (first step of the
    holding run; NaN unless escaped), detect_step (step at which the slot stopped it),
    time (steps at risk: escape step, divergence step or censoring age), time_epochs,
    time_continuous (lr * steps, the time of Langevin theory), escape_epoch.
    """

    table: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def n_trajectories(self) -> int:
        return len(self.table)

    @property
    def n_escaped(self) -> int:
        return int(self.table["escaped"].sum())

    @property
    def time_at_risk(self) -> float:
        """Total steps at risk over all trajectories (diverged ones excluded)."""
        t = self.table
        return float(t.loc[~t["diverged"], "time"].sum())

    def to_pandas(self) -> pd.DataFrame:
        return self.table.copy()

    def rate(self, time: str = "time", confidence: float = 0.95):  # type: ignore[no-untyped-def]
        """Escape rate with its exact Poisson interval (grokescape.stats.escape_rate)."""
        from grokescape.stats import escape_rate

        return escape_rate(self.table, time=time, confidence=confidence)

    def save(self, path: str | Path) -> Path:
        """Write the table and settings: Parquet (``.parquet``, needs pyarrow) or CSV with
        a JSON sidecar (``.csv``). Without an extension, Parquet when pyarrow is installed,
        else CSV. Returns the path written."""
        path = Path(path)
        if path.suffix not in (".parquet", ".csv"):
            path = path.with_suffix(".parquet" if _has_pyarrow() else ".csv")
        meta = json.dumps({"settings": _jsonable(self.settings), "interrupted": self.interrupted})
        if path.suffix == ".parquet":
            if not _has_pyarrow():
                raise ImportError("path: writing Parquet needs pyarrow (pip install pyarrow)")
            import pyarrow as pa
            import pyarrow.parquet as pq

            tab = pa.Table.from_pandas(self.table, preserve_index=False)
            tab = tab.replace_schema_metadata({**(tab.schema.metadata or {}), b"grokescape": meta})
            pq.write_table(tab, path)
        else:
            self.table.to_csv(path, index=False)
            path.with_suffix(".json").write_text(meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EscapeResult:
        """Read a result written by :meth:`save`."""
        path = Path(path)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            tab = pq.read_table(path)
            meta = json.loads(tab.schema.metadata[b"grokescape"])
            table = tab.to_pandas()
        else:
            import pandas as pd

            table = pd.read_csv(path)
            meta = json.loads(path.with_suffix(".json").read_text())
        return cls(table=table, settings=meta["settings"], interrupted=meta["interrupted"])

    def __repr__(self) -> str:
        t = self.table
        return (
            f"EscapeResult(trajectories={len(t)}, escaped={int(t['escaped'].sum())}, "
            f"censored={int(t['censored'].sum())}, diverged={int(t['diverged'].sum())}"
            f"{', interrupted' if self.interrupted else ''})"
        )


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
