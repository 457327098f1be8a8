"""Escape detection in the core and the table of trajectories it produces.

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
import logging
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from grokescape import _checks
from grokescape._native import core

if TYPE_CHECKING:
    from grokescape.data import Dataset
    from grokescape.ensemble import Ensemble

__all__ = ["EscapeResult", "ModeThreshold", "TestMSEThreshold", "run_until_escape"]

logger = logging.getLogger(__name__)

_CHUNK_SECONDS = 0.25


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


# ---------------------------------------------------------------------------- criteria
def _resolve_criterion(
    ens: Ensemble,
    data: Dataset,
    criterion: Any,
    beta: NDArray[np.float64],
    batches_per_epoch: int,
) -> tuple[Any, int, NDArray[np.float64], int, int, dict[str, Any]]:
    """(core kind, index, per-member values, hold, check_every, description)."""
    from grokescape import theory

    depth = ens.depth
    m = ens.n_members
    if isinstance(criterion, ModeThreshold):
        if criterion.on not in ("lambda", "sv"):
            raise ValueError(f"criterion.on: expected 'lambda' or 'sv', got {criterion.on!r}")
        n_idx = data.n_modes if criterion.on == "lambda" else min(ens.widths[0], ens.widths[-1])
        idx = _checks.integer(criterion.mode, "criterion.mode", minimum=0)
        if idx >= n_idx:
            raise ValueError(f"criterion.mode: {idx} is out of range (the data has {n_idx})")
        if criterion.value is None:
            eta = data.eta_hat[min(idx, data.n_modes - 1)]
            values = np.asarray(theory.mode_thresholds(eta, beta, depth).lam, dtype=float)
            values = np.broadcast_to(values, (m,)).copy()
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"criterion.value: mode {idx} (eta_hat={eta:.4g}) has no learned state at "
                    f"some member's beta (max {beta.max():.4g}); give a threshold"
                )
        else:
            values = np.full(m, float(_checks.finite_array(criterion.value, "criterion.value")))
        kind = (
            core.CriterionKind.mode_amplitude
            if criterion.on == "lambda"
            else core.CriterionKind.singular_value
        )
        check = batches_per_epoch if criterion.check_every is None else criterion.check_every
        desc = {"type": "ModeThreshold", "mode": idx, "on": criterion.on}
    elif isinstance(criterion, TestMSEThreshold):
        if data.n_test == 0:
            raise ValueError("criterion: TestMSEThreshold needs test data in the Dataset")
        idx = 0
        if criterion.value is None:
            values = _default_mse_thresholds(ens, data, beta)
        else:
            values = np.full(m, float(_checks.finite_array(criterion.value, "criterion.value")))
        kind = core.CriterionKind.test_mse
        check = batches_per_epoch if criterion.check_every is None else criterion.check_every
        desc = {"type": "TestMSEThreshold"}
    else:
        raise TypeError(
            "criterion: expected a ModeThreshold or TestMSEThreshold, "
            f"got {type(criterion).__name__}"
        )
    hold = _checks.integer(criterion.hold, "criterion.hold", minimum=0)
    check = _checks.integer(check, "criterion.check_every", minimum=1)
    desc.update(hold=hold, check_every=check)
    return kind, idx, np.ascontiguousarray(values), hold, check, desc


def _default_mse_thresholds(
    ens: Ensemble, data: Dataset, beta: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Midpoint between the theory test MSE of the starting rank and the next rank."""
    from grokescape import theory

    obs = ens.observables(data, beta)
    lam = obs[[f"lambda_{i}" for i in range(data.n_modes)]].to_numpy()
    values = np.empty(ens.n_members)
    cache: dict[tuple[float, int], float] = {}
    for k in range(ens.n_members):
        thr = np.asarray(theory.mode_thresholds(data.eta_hat, beta[k], ens.depth).lam)
        rank = int(np.sum(np.nan_to_num(lam[k], nan=0.0) > np.nan_to_num(thr, nan=np.inf)))
        key = (float(beta[k]), rank)
        if key not in cache:
            sp = theory.stationary_points(data.eta_hat, beta[k], ens.depth)
            mins = np.asarray(sp.minimum, dtype=float)
            if rank >= data.n_modes or not np.isfinite(mins[rank]):
                raise ValueError(
                    f"criterion.value: from rank {rank} at beta={beta[k]:.4g} there is no next "
                    "learned mode; give a threshold"
                )
            plateau = np.where(np.arange(data.n_modes) < rank, mins, 0.0)
            after = np.where(np.arange(data.n_modes) <= rank, mins, 0.0)
            _, test_before = theory.state_mse(data, plateau)
            _, test_after = theory.state_mse(data, after)
            cache[key] = 0.5 * (float(test_before) + float(test_after))
        values[k] = cache[key]
    return values


# ---------------------------------------------------------------------------- the run
def run_until_escape(
    ens: Ensemble,
    data: Dataset,
    criterion: ModeThreshold | TestMSEThreshold,
    max_steps: int,
    lr: ArrayLike,
    beta: ArrayLike,
    *,
    batch_size: int | None = None,
    temperature: ArrayLike = 0.0,
    sampling: str = "epoch",
    seed: int = 0,
    refill: bool = False,
    n_threads: int | None = None,
    progress: bool = False,
) -> EscapeResult:
    """See :meth:`grokescape.Ensemble.run_until_escape`."""
    from grokescape.ensemble import _SAMPLING, _resolve_threads

    data = ens._check_data(data)
    max_steps = _checks.integer(max_steps, "max_steps", minimum=1)
    m = ens.n_members
    lr_arr = _checks.per_member(lr, "lr", m, low=0.0, low_inclusive=False)
    beta_arr = _checks.per_member(beta, "beta", m, low=0.0, low_inclusive=True)
    temp_arr = _checks.per_member(temperature, "temperature", m, low=0.0, low_inclusive=True)
    core_batch, per_epoch = ens._batch_plan(data, batch_size, sampling)
    seed = _checks.seed(seed)
    threads = _resolve_threads(n_threads)
    kind, index, values, hold, check_every, desc = _resolve_criterion(
        ens, data, criterion, beta_arr, per_epoch
    )
    x_tr, y_tr, x_te, y_te = data.arrays(ens.dtype)
    modes = ens._modes(data)
    if ens._diverged.any():
        raise ValueError("ens: some members have diverged; set their weights again first")
    initial = _initial_criterion(ens, data, kind, index, values, modes)
    if initial.any():
        raise ValueError(
            f"criterion: already satisfied at the start by {int(initial.sum())} of {m} members "
            f"(first: member {int(np.argmax(initial))}); the threshold does not separate the "
            "trap from the escaped state"
        )

    init_params = ens._params.copy()
    active = np.ones(m, dtype=np.uint8)
    start_step = ens._steps.copy()
    hold_since = np.full(m, -1, dtype=np.int64)
    trajectories = np.ones(m, dtype=np.int64)
    refill_base = int(ens._streams.max()) + 1
    events: list[dict[str, NDArray[Any]]] = []
    done = 0
    chunk = max(1, min(max_steps, int(2e5 // m) or 1))
    interrupted = False
    bar = tqdm(total=max_steps, unit="step", disable=not progress, desc="escape", leave=False)
    try:
        while done < max_steps:
            n = min(chunk, max_steps - done)
            tic = _time.perf_counter()
            out = core.run_until_escape(
                ens._layout,
                ens._params,
                ens._steps,
                ens._diverged,
                ens._streams,
                init_params,
                x_tr,
                y_tr,
                x_te,
                y_te,
                *modes,
                lr_arr,
                beta_arr,
                temp_arr,
                kind,
                index,
                values,
                hold,
                check_every,
                core_batch,
                _SAMPLING[sampling],
                seed,
                ens.decay_bias,
                refill,
                refill_base,
                n,
                active,
                start_step,
                hold_since,
                trajectories,
                threads,
                ens.generic_kernel,
                ens.moment_gradient,
            )
            events.append(out)
            done += n
            bar.update(n)
            if progress:
                bar.set_postfix(escaped=sum(int((~e["diverged"]).sum()) for e in events))
            if not refill and not active.any():
                break
            elapsed = _time.perf_counter() - tic
            chunk = int(
                max(1, min(chunk * min(_CHUNK_SECONDS / max(elapsed, 1e-6), 4.0), max_steps))
            )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    table = _build_table(
        ens,
        events,
        active,
        start_step,
        lr_arr,
        beta_arr,
        temp_arr,
        batch_size,
        per_epoch,
        max_steps,
        interrupted,
    )
    settings = {
        "criterion": {**desc, "values": values},
        "max_steps": max_steps,
        "batch_size": batch_size,
        "sampling": sampling,
        "seed": seed,
        "refill": refill,
        "batches_per_epoch": per_epoch,
        "widths": list(ens.widths),
        "dtype": ens.dtype.name,
        "bias": ens.bias,
        "decay_bias": ens.decay_bias,
        "activation": ens.activation,
        "n_members": m,
        "n_train": data.n_train,
        "eta_hat": data.eta_hat,
    }
    result = EscapeResult(table=table, settings=settings, interrupted=interrupted)
    ens.last_escape_result = result
    if interrupted:
        raise KeyboardInterrupt(
            "escape run interrupted; the ensemble holds each slot's current state and "
            "Ensemble.last_escape_result the trajectories so far (the running ones censored)"
        )
    return result


def _initial_criterion(
    ens: Ensemble, data: Dataset, kind: Any, index: int, values: NDArray[np.float64], modes: Any
) -> NDArray[np.bool_]:
    obs = ens.observables(data, 0.0)
    if kind == core.CriterionKind.mode_amplitude:
        return obs[f"lambda_{index}"].to_numpy() > values
    if kind == core.CriterionKind.singular_value:
        return obs[f"sv_{index}"].to_numpy() > values
    return obs["test_mse"].to_numpy() < values


def _build_table(
    ens: Ensemble,
    events: list[dict[str, NDArray[Any]]],
    active: NDArray[np.uint8],
    start_step: NDArray[np.int64],
    lr: NDArray[np.float64],
    beta: NDArray[np.float64],
    temperature: NDArray[np.float64],
    batch_size: int | None,
    per_epoch: int,
    max_steps: int,
    interrupted: bool,
) -> pd.DataFrame:
    def cat(key: str, dtype: Any) -> NDArray[Any]:
        parts = [e[key] for e in events]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    slot = cat("slot", np.int64)
    traj = cat("trajectory", np.uint64)
    escape_age = cat("escape_age", np.int64)
    detect_age = cat("detect_age", np.int64)
    diverged = cat("diverged", bool)
    # trajectories still running are censored at their current age
    running = np.flatnonzero(active.astype(bool))
    ages = ens._steps[running] - start_step[running]
    c_slot = running.astype(np.int64)
    slot_all = np.concatenate([slot, c_slot])
    frame = pd.DataFrame(
        {
            "member": slot_all,
            "trajectory": np.concatenate([traj, ens._streams[running]]),
            "lr": lr[slot_all],
            "beta": beta[slot_all],
            "temperature": temperature[slot_all],
            "batch_size": batch_size if batch_size is not None else -1,
            "escaped": np.concatenate([~diverged, np.zeros(running.size, dtype=bool)]),
            "censored": np.concatenate(
                [np.zeros(slot.size, dtype=bool), np.ones(running.size, dtype=bool)]
            ),
            "diverged": np.concatenate([diverged, np.zeros(running.size, dtype=bool)]),
            "escape_step": np.concatenate(
                [np.where(diverged, np.nan, escape_age), np.full(running.size, np.nan)]
            ),
            "detect_step": np.concatenate([detect_age, ages]).astype(np.int64),
            "time": np.concatenate([escape_age, ages]).astype(np.int64),
        }
    )
    frame["time_epochs"] = frame["time"] / per_epoch
    frame["time_continuous"] = frame["time"] * frame["lr"]
    frame["escape_epoch"] = frame["escape_step"] / per_epoch
    frame = frame.sort_values(["member", "trajectory"], kind="stable").reset_index(drop=True)
    return frame
