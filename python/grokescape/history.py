"""The record of a training run: observables of every member at the recorded steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

# pandas is imported where a table is made: at module level it would be most of
# `import grokescape`'s time (tests/test_import.py).
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["History"]


@dataclass
class History:
    """Observables recorded by :meth:`grokescape.Ensemble.train`, evaluated in the core.

    Arrays are indexed (record, member[, mode]). Members that diverged have NaN rows after
    their divergence. MSE is the mean over samples and outputs of the squared error; loss
    is the total training loss (data term plus L2) at the beta in force at that step.

    Attributes
    ----------
    step : ndarray of int, shape (R,)
        Steps since the start of this run at which the row was recorded (0 = initial state).
    epoch : ndarray of float, shape (R,)
        The same in epochs (steps / batches per epoch).
    start_step : ndarray of int, shape (M,)
        Each member's absolute step counter when the run started.
    train_mse, test_mse, loss : ndarray, shape (R, M)
    lam : ndarray, shape (R, M, r)
        Per-mode amplitudes lambda_i = u_i^T W_L ... W_1 v_i on the data's modes.
    singular_values : ndarray, shape (R, M, min(d_in, d_out))
        Singular values of the end-to-end map, descending.
    energy : ndarray, shape (R, M, r)
        Reduced per-mode energies E_i(lambda_i) (physics.md section 4) at the data's eta_hat.
    diverged : ndarray of bool, shape (M,)
        Members whose parameters became non-finite during this run (they stopped there).
    diverged_step : ndarray of int, shape (M,)
        Run step after which a member diverged, -1 otherwise.
    interrupted : bool
        True when the run was stopped by Ctrl-C; rows up to the last completed chunk are kept.
    settings : dict
        The run's arguments (lr, beta, temperature per member, batch size, sampling, seed...).
    stage : ndarray of int, shape (R,), optional
        For schedules: the stage each row was recorded in (the stage just finished).
    """

    step: NDArray[np.int64]
    epoch: NDArray[np.float64]
    start_step: NDArray[np.int64]
    train_mse: NDArray[np.float64]
    test_mse: NDArray[np.float64]
    loss: NDArray[np.float64]
    lam: NDArray[np.float64]
    singular_values: NDArray[np.float64]
    energy: NDArray[np.float64]
    diverged: NDArray[np.bool_]
    diverged_step: NDArray[np.int64]
    interrupted: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    stage: NDArray[np.int64] | None = None

    @property
    def n_records(self) -> int:
        return int(self.step.shape[0])

    @property
    def n_members(self) -> int:
        return int(self.train_mse.shape[1])

    def final(self) -> pd.DataFrame:
        """The last recorded row of every member as a DataFrame (one row per member)."""
        if self.n_records == 0:
            raise ValueError("History has no records")
        return self._frame(slice(self.n_records - 1, self.n_records))

    def to_pandas(self) -> pd.DataFrame:
        """Long table: one row per (record, member) with every observable as a column."""
        return self._frame(slice(None))

    def _frame(self, rows: slice) -> pd.DataFrame:
        step = self.step[rows]
        n_rec, m = step.shape[0], self.n_members
        cols: dict[str, NDArray[Any]] = {
            "step": np.repeat(step, m),
            "epoch": np.repeat(self.epoch[rows], m),
            "member": np.tile(np.arange(m), n_rec),
            **({"stage": np.repeat(self.stage[rows], m)} if self.stage is not None else {}),
            "train_mse": self.train_mse[rows].ravel(),
            "test_mse": self.test_mse[rows].ravel(),
            "loss": self.loss[rows].ravel(),
        }
        for i in range(self.lam.shape[2]):
            cols[f"lambda_{i}"] = self.lam[rows, :, i].ravel()
        for k in range(self.singular_values.shape[2]):
            cols[f"sv_{k}"] = self.singular_values[rows, :, k].ravel()
        for i in range(self.energy.shape[2]):
            cols[f"energy_{i}"] = self.energy[rows, :, i].ravel()
        cols["diverged"] = np.tile(self.diverged, n_rec)
        import pandas as pd

        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        flag = ", interrupted" if self.interrupted else ""
        return (
            f"History(records={self.n_records}, members={self.n_members}, "
            f"last step={int(self.step[-1]) if self.n_records else 'none'}, "
            f"diverged={int(self.diverged.sum())}{flag})"
        )
