"""The one place that calls the core to advance an ensemble (private).

:class:`Engine` owns an ensemble's member states (the arrays the core updates in place),
splits long runs into calls of about ``_CHUNK_SECONDS`` of work so that Ctrl-C and progress
bars act between calls, resolves thread counts, keeps the result of the last run
(``last_history``, ``last_escape_result``) and lets only one call at a time run on an
ensemble. :class:`grokescape.Ensemble`'s methods are thin wrappers around it.

A call advances a span: some members by some steps. Small ensembles advance all members
together; once a call would give each member fewer than ``_WINDOW_STEPS`` steps, members go
in blocks through windows of steps, so a member's state is loaded, its epoch's permutation
drawn and its state stored once per window rather than once per quarter second of the
whole ensemble's work. Results do not depend on the split (the core's random draws are
addressed by member and step). Ctrl-C is read between calls: the run stops with every
member at the same step and nothing computed lost (see :class:`_Calls`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from grokescape import _checks
from grokescape._checkpoint import EscapeCheckpoint, fingerprint
from grokescape._checkpoint import Position as _Position
from grokescape._native import core
from grokescape.data import Dataset
from grokescape.escape import EscapeResult, ModeThreshold, TestMSEThreshold
from grokescape.history import History

# pandas is imported where a table is made: at module level it would be most of
# `import grokescape`'s time (tests/test_import.py).
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Engine", "Network", "Stages", "resolve_threads"]

logger = logging.getLogger(__name__)

# Target wall time of one call into the core: Ctrl-C and progress bars act between calls.
_CHUNK_SECONDS = 0.25
# Steps a member takes per call once the ensemble is split into blocks of members: at most
# _WINDOW_STEPS (loading a member's state and drawing its epoch permutation are then a
# small part of a call), and at most about _WINDOW_SECONDS of the whole ensemble's work, the
# time a Ctrl-C waits for the window in progress to finish.
_WINDOW_STEPS = 256
_WINDOW_SECONDS = 1.0
# A window that would end inside an epoch is lengthened to the epoch's end while such windows
# take at most _EPOCH_WINDOW_SECONDS: the next window then starts a new permutation instead of
# drawing this one again, which costs a member several of its steps (most of a 2-step window
# of the paper network at 1e6 members). Ctrl-C waits for such a window too.
_EPOCH_WINDOW_SECONDS = 3.0
# Work of the first call, before a rate has been measured (member-steps).
_FIRST_CALL_WORK = 200_000

ACTIVATIONS = {"linear": core.Activation.linear, "tanh": core.Activation.tanh}
SAMPLING = {"epoch": core.Sampling.epoch, "replacement": core.Sampling.replacement}


def resolve_threads(n_threads: int | None) -> int:
    """None: OpenMP's default (OMP_NUM_THREADS or all cores); else an int >= 1."""
    if n_threads is None:
        return int(core.default_threads())
    return _checks.integer(n_threads, "n_threads", minimum=1)


@dataclass(frozen=True)
class Network:
    """What the core needs to know about an ensemble's networks."""

    widths: tuple[int, ...]
    dtype: np.dtype[Any]
    bias: bool
    decay_bias: bool
    activation: str
    moment_gradient: bool
    generic_kernel: bool
    layout: Any = field(compare=False)

    @property
    def n_params(self) -> int:
        return int(self.layout.n_params)

    def options(
        self, core_batch: int, sampling: str, seed: int, n_threads: int
    ) -> Any:  # core.Options
        return core.Options(
            batch_size=core_batch,
            sampling=SAMPLING[sampling],
            seed=seed,
            decay_bias=self.decay_bias,
            n_threads=n_threads,
            generic_kernel=self.generic_kernel,
            moment_gradient=self.moment_gradient,
        )

    def check_data(self, data: Any) -> Dataset:
        if not isinstance(data, Dataset):
            raise TypeError(f"data: expected a grokescape.Dataset, got {type(data).__name__}")
        if data.d_in != self.widths[0] or data.d_out != self.widths[-1]:
            raise ValueError(
                f"data: has d_in={data.d_in}, d_out={data.d_out} but the networks map "
                f"{self.widths[0]} -> {self.widths[-1]}"
            )
        return data

    def run_data(self, data: Dataset) -> Any:  # core.RunData
        x_tr, y_tr, x_te, y_te = data.arrays(self.dtype)
        return core.RunData(
            x_train=x_tr,
            y_train=y_tr,
            x_test=x_te,
            y_test=y_te,
            mode_out=np.ascontiguousarray(data.mode_out.T),
            mode_in=np.ascontiguousarray(data.mode_in.T),
            eta=np.ascontiguousarray(data.eta_hat),
        )


def batch_plan(data: Dataset, batch_size: int | None, sampling: str) -> tuple[int, int]:
    """(core batch size, 0 = full batch; batches per epoch)."""
    if sampling not in SAMPLING:
        raise ValueError(f"sampling: expected one of {sorted(SAMPLING)}, got {sampling!r}")
    n = data.n_train
    if batch_size is None:
        return 0, 1
    batch_size = _checks.integer(batch_size, "batch_size", minimum=1)
    if sampling == "epoch" and batch_size >= n:
        return 0, 1
    return batch_size, max(1, n // batch_size)


@dataclass(frozen=True)
class Stages:
    """A piecewise-constant schedule resolved to arrays: stage k ends at run step end[k]."""

    end: NDArray[np.int64]  # (S,)
    lr: NDArray[np.float64]  # (S, M)
    beta: NDArray[np.float64]
    temperature: NDArray[np.float64]

    @property
    def total(self) -> int:
        return int(self.end[-1]) if self.end.size else 0

    def core(self) -> Any:  # core.Schedule
        return core.Schedule(
            stage_end=np.ascontiguousarray(self.end, dtype=np.int64),
            lr=np.ascontiguousarray(self.lr, dtype=np.float64),
            beta=np.ascontiguousarray(self.beta, dtype=np.float64),
            temperature=np.ascontiguousarray(self.temperature, dtype=np.float64),
        )


_STATE_FIELDS = ("params", "steps", "streams", "order_streams", "order_epochs", "diverged")


class _Interrupts:
    """Ctrl-C during a run as a count read between calls into the core, not as an exception
    that could land between a call and its bookkeeping. Python delivers signals to the
    main thread only; elsewhere the process's handler stays as it is."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Calls:
    """Splits `total` steps of `n_members` members into calls of about _CHUNK_SECONDS.

    ``run(call)`` calls ``call(first, n_steps, member_begin, member_end)`` until every member
    has taken every step, adapting the size of each call to the measured rate, and returns
    whether a Ctrl-C stopped it. Where members go in blocks, a Ctrl-C lets the window in
    progress finish (about _WINDOW_SECONDS of work, up to _EPOCH_WINDOW_SECONDS where a
    window runs to the end of an epoch), so that every member stands at the same step; a
    second Ctrl-C stops after the call in progress.
    """

    def __init__(self, total: int, n_members: int, per_epoch: int, start_step: int, bar: Any):
        self.total = total
        self.n_members = n_members
        self.per_epoch = per_epoch
        self.start_step = start_step  # a member's absolute step at run step 0 (alignment)
        self.bar = bar
        self.work = float(_FIRST_CALL_WORK)  # member-steps per call
        self.done = 0  # run steps every member has completed
        self.in_step = True  # every member stands at run step `done` (false inside a window)
        self.epoch_windows = True  # windows may be lengthened to the end of an epoch

    def _aligned(self, first: int, n: int) -> int:
        """n, shortened so that the call ends where an epoch ends (when that leaves > 0):
        the next call then starts a new permutation instead of drawing this one again."""
        if self.per_epoch <= 1 or n < self.per_epoch or first + n >= self.total:
            return n
        cut = (self.start_step + first + n) % self.per_epoch
        return n - cut if n - cut > 0 else n

    def _window(self, first: int, n: int, remaining: int) -> int:
        """Steps of the window starting at run step `first`: n made to end where an epoch
        ends, shortened as in _aligned() or, where n is shorter than the rest of the epoch,
        lengthened to its end: at most 8-fold, and only while such windows have taken at
        most _EPOCH_WINDOW_SECONDS (the measured rate of windows that each draw a
        permutation understates what a longer window costs, so the first one is a trial)."""
        if self.per_epoch <= 1 or n >= self.per_epoch:
            return self._aligned(first, n)
        to_end = min(remaining, self.per_epoch - (self.start_step + first) % self.per_epoch)
        if to_end <= n or (self.epoch_windows and to_end <= 8 * n):
            return to_end
        return n

    def _timed(self, call: Callable[[int, int, int, int], None], first: int, n: int,
               begin: int, end: int) -> None:  # fmt: skip
        tic = time.perf_counter()
        self.in_step = False
        call(first, n, begin, end)
        elapsed = time.perf_counter() - tic
        rate = n * (end - begin) / max(elapsed, 1e-6)
        self.work = max(1.0, min(rate * _CHUNK_SECONDS, 4.0 * self.work))
        self.bar.update(n * (end - begin) / self.n_members)

    def run(
        self,
        call: Callable[[int, int, int, int], None],
        stop: Callable[[], bool] = lambda: False,
        on_in_step: Callable[[], None] | None = None,
    ) -> bool:
        """`on_in_step()`, when given, is called wherever every member stands at run step
        ``self.done`` (after each call of all members, after each window of blocks): where a
        checkpoint may be written."""
        m = self.n_members
        if self.total == 0:
            call(0, 0, 0, m)
            return False
        with _Interrupts() as ctrl_c:
            while self.done < self.total and not stop():
                if ctrl_c.count:
                    return True
                remaining = self.total - self.done
                per_member = int(self.work // m)
                if per_member >= min(_WINDOW_STEPS, remaining):
                    n = self._aligned(self.done, min(remaining, per_member))
                    self._timed(call, self.done, n, 0, m)
                    self.done += n
                    self.in_step = True
                    if on_in_step is not None:
                        on_in_step()
                    continue
                rate = self.work / _CHUNK_SECONDS
                wanted = min(remaining, _WINDOW_STEPS, max(1, int(rate * _WINDOW_SECONDS / m)))
                n = self._window(self.done, wanted, remaining)
                begin, started = 0, time.perf_counter()
                while begin < m:
                    if ctrl_c.count > 1:
                        return True
                    # blocks of whole lane groups (16 covers every kernel's group size)
                    block = max(16, int(self.work // n) // 16 * 16)
                    end = min(m, begin + block)
                    self._timed(call, self.done, n, begin, end)
                    begin = end
                if n > wanted:
                    self.epoch_windows = time.perf_counter() - started <= _EPOCH_WINDOW_SECONDS
                self.done += n
                self.in_step = True
                if on_in_step is not None:
                    on_in_step()
        return bool(ctrl_c.count)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _exclusive(what: str) -> Callable[[_Method], _Method]:
    """The decorated Engine method runs as the only call on its ensemble (Engine.exclusive)."""

    def wrap(method: _Method) -> _Method:
        @functools.wraps(method)
        def inner(self: Engine, *args: Any, **kwargs: Any) -> Any:
            with self.exclusive(what):
                return method(self, *args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


class Engine:
    """An ensemble's member states and every call that advances or evaluates them.

    Parameters
    ----------
    network : Network
    n_members : int
    """

    def __init__(self, network: Network, n_members: int) -> None:
        self.network = network
        self.n_members = n_members
        p = network.n_params
        self.params = np.zeros((n_members, p), dtype=network.dtype)
        self.steps = np.zeros(n_members, dtype=np.int64)
        self.streams = np.arange(n_members, dtype=np.uint64)
        self.order_streams = np.zeros(n_members, dtype=np.uint64)
        self.order_epochs = np.full(n_members, -1, dtype=np.int64)
        self.diverged = np.zeros(n_members, dtype=np.uint8)
        self.core_state = core.EnsembleState(
            layout=network.layout, **{name: getattr(self, name) for name in _STATE_FIELDS}
        )
        self.last_history: History | None = None
        self.last_escape_result: EscapeResult | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ guard
    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Runs the block as the only call on this ensemble; a second caller (another
        thread) gets a RuntimeError instead of racing on the member states."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(
                f"{what}: this Ensemble is busy with a call in another thread; calls on one "
                "ensemble must not overlap (use one Ensemble per thread)"
            )
        try:
            yield
        finally:
            self._lock.release()

    # ------------------------------------------------------------------ states
    def reset_counters(self) -> None:
        """New parameters: step counters 0, divergence flags and sample orders cleared."""
        self.steps[:] = 0
        self.diverged[:] = 0
        self.order_epochs[:] = -1
        self.order_streams[:] = 0

    def state_arrays(self) -> dict[str, NDArray[Any]]:
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    def copy_members(
        self,
        source: Any,  # core.EnsembleState
        source_members: NDArray[np.int64],
        target: Any,
        target_members: NDArray[np.int64],
        new_streams: NDArray[np.uint64] | None = None,
        batches_per_epoch: int = 0,
    ) -> None:
        """Member states from `source` into `target` in the core (snapshot, restore, clone)."""
        core.copy_members(
            source,
            np.ascontiguousarray(source_members, dtype=np.int64),
            target,
            np.ascontiguousarray(target_members, dtype=np.int64),
            np.zeros(0, np.uint64) if new_streams is None else np.ascontiguousarray(new_streams),
            int(batches_per_epoch),
        )

    # ------------------------------------------------------------------ evaluation
    def _options(self, n_threads: int) -> Any:
        return self.network.options(0, "epoch", 0, n_threads)

    def _run_options(
        self, data: Dataset, batch_size: int | None, sampling: str, seed: int,
        n_threads: int | None,
    ) -> tuple[Any, int, int]:  # fmt: skip
        """(core.Options, batches per epoch, checked seed) of a run."""
        core_batch, per_epoch = batch_plan(data, batch_size, sampling)
        seed = _checks.seed(seed)
        return (
            self.network.options(core_batch, sampling, seed, resolve_threads(n_threads)),
            per_epoch,
            seed,
        )

    def observable_arrays(self, rows: int, n_modes: int) -> dict[str, NDArray[np.float64]]:
        m, w = self.n_members, self.network.widths
        k = min(w[0], w[-1])
        return {
            "train_mse": np.full((rows, m), np.nan),
            "test_mse": np.full((rows, m), np.nan),
            "loss": np.full((rows, m), np.nan),
            "lam": np.full((rows, m, n_modes), np.nan),
            "sv": np.full((rows, m, k), np.nan),
            "energy": np.full((rows, m, n_modes), np.nan),
        }

    def _records(self, arrays: dict[str, NDArray[Any]], at: NDArray[np.int64],
                 diverged_at: NDArray[np.int64]) -> Any:  # fmt: skip
        return core.Records(at=at, diverged_at=diverged_at, **arrays)

    @_exclusive("observables")
    def evaluate(
        self, data: Dataset, beta: NDArray[np.float64], n_threads: int | None
    ) -> dict[str, NDArray[np.float64]]:
        """Exact observables of every member at per-member `beta`: {name: (M[, ...])}."""
        return self._evaluate(data, beta, n_threads)

    def _evaluate(
        self, data: Dataset, beta: NDArray[np.float64], n_threads: int | None
    ) -> dict[str, NDArray[np.float64]]:
        out = self.observable_arrays(1, data.n_modes)
        records = self._records(out, np.zeros(0, np.int64), np.zeros(0, np.int64))
        core.evaluate(
            self.core_state, self.network.run_data(data), beta, records,
            self._options(resolve_threads(n_threads)),
        )  # fmt: skip
        return {k: v[0] for k, v in out.items()}

    @_exclusive("gradients")
    def gradients(
        self, data: Dataset, beta: NDArray[np.float64], n_threads: int | None
    ) -> NDArray[Any]:
        """Exact full-batch gradient of the total loss of every member, (M, P)."""
        grads = np.zeros_like(self.params)
        core.gradients(
            self.core_state, self.network.run_data(data), beta, grads,
            self._options(resolve_threads(n_threads)),
        )  # fmt: skip
        return grads

    @_exclusive("per_sample_gradient_moments")
    def gradient_moments(
        self, data: Dataset, n_threads: int | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(1/n sum_i ||g_i||^2, ||1/n sum_i g_i||^2) of the per-sample gradients g_i."""
        mean_sq = np.empty(self.n_members)
        sq_mean = np.empty(self.n_members)
        core.per_sample_gradient_moments(
            self.core_state, self.network.run_data(data), mean_sq, sq_mean,
            self._options(resolve_threads(n_threads)),
        )  # fmt: skip
        return mean_sq, sq_mean

    def step_kernel(self, data: Dataset, batch_size: int | None, sampling: str) -> str:
        core_batch, _ = batch_plan(data, batch_size, sampling)
        return str(
            core.step_kernel(
                self.network.layout, core_batch, data.n_train,
                self.network.dtype == np.float32, self._options(1),
            )
        )  # fmt: skip

    # ------------------------------------------------------------------ training
    def check_record_memory(self, n_rec: int, data: Dataset) -> None:
        w = self.network.widths
        k = min(w[0], w[-1])
        _checks.check_memory(
            n_rec * self.n_members * (3 + 2 * data.n_modes + k) * 8,
            f"Recording {n_rec} rows of observables for {self.n_members} members",
        )

    @_exclusive("train")
    def train(
        self,
        data: Dataset,
        stages: Stages,
        record_at: NDArray[np.int64],
        *,
        batch_size: int | None,
        sampling: str,
        seed: int,
        n_threads: int | None,
        progress: bool,
    ) -> History:
        """Advance every live member through `stages`, recording at `record_at`."""
        options, per_epoch, seed = self._run_options(data, batch_size, sampling, seed, n_threads)
        total = stages.total
        n_rec = int(record_at.size)
        self.check_record_memory(n_rec, data)
        rec = self.observable_arrays(n_rec, data.n_modes)
        diverged_at = np.full(self.n_members, -1, dtype=np.int64)
        records = self._records(rec, np.ascontiguousarray(record_at, dtype=np.int64), diverged_at)
        start_steps = self.steps.copy()
        was_diverged = self.diverged.astype(bool)
        run_data = self.network.run_data(data)
        schedule = stages.core()

        def call(first: int, n: int, begin: int, end: int) -> None:
            span = core.Span(first=first, n_steps=n, member_begin=begin, member_end=end)
            core.train(self.core_state, run_data, schedule, records, options, span)

        live = np.flatnonzero(~was_diverged)
        start = int(start_steps[live[0]]) if live.size else 0
        calls = _Calls(total, self.n_members, per_epoch, start, _bar(progress, total, "train"))
        try:
            interrupted = calls.run(call)
        except KeyboardInterrupt:  # raised by other code (run() reads Ctrl-C as a count)
            interrupted = True
        finally:
            calls.bar.close()
        # Progress is read from the state the core wrote, not from Python variables that a
        # Ctrl-C may have interrupted between the core's return and their update.
        advanced = self.steps - start_steps
        done = int(advanced[live].max()) if live.size else 0
        keep = record_at <= done if interrupted else np.ones(n_rec, dtype=bool)
        newly = self.diverged.astype(bool) & ~was_diverged
        net = self.network
        hist = History(
            step=record_at[keep].copy(),
            epoch=record_at[keep] / per_epoch,
            start_step=start_steps,
            train_mse=rec["train_mse"][keep],
            test_mse=rec["test_mse"][keep],
            loss=rec["loss"][keep],
            lam=rec["lam"][keep],
            singular_values=rec["sv"][keep],
            energy=rec["energy"][keep],
            diverged=newly,
            diverged_step=diverged_at,
            interrupted=interrupted,
            settings={
                "lr": stages.lr,
                "beta": stages.beta,
                "temperature": stages.temperature,
                "stage_end": stages.end,
                "batch_size": batch_size,
                "sampling": sampling,
                "seed": seed,
                "n_train": data.n_train,
                "batches_per_epoch": per_epoch,
                "widths": list(net.widths),
                "dtype": net.dtype.name,
                "bias": net.bias,
                "decay_bias": net.decay_bias,
                "activation": net.activation,
            },
        )
        hist.stage = np.searchsorted(stages.end, hist.step, side="left")
        self.last_history = hist
        if newly.any():
            logger.warning(
                "%d of %d members diverged (non-finite parameters) and stopped",
                int(newly.sum()),
                self.n_members,
            )
        if interrupted:
            raise KeyboardInterrupt(
                f"training interrupted after {done} of {total} steps; the ensemble holds that "
                "state and Ensemble.last_history the rows recorded so far"
            )
        return hist

    # ------------------------------------------------------------------ escape runs
    @_exclusive("run_until_escape")
    def run_until_escape(
        self,
        data: Dataset,
        criterion: ModeThreshold | TestMSEThreshold,
        max_steps: int,
        lr: NDArray[np.float64],
        beta: NDArray[np.float64],
        temperature: NDArray[np.float64],
        *,
        batch_size: int | None,
        sampling: str,
        seed: int,
        refill: bool,
        n_threads: int | None,
        progress: bool,
        refill_base: int | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: float = 60.0,
    ) -> EscapeResult:
        """Run every member (slot) until its trajectory escapes; see Ensemble.run_until_escape."""
        options, per_epoch, seed = self._run_options(data, batch_size, sampling, seed, n_threads)
        crit = _resolve_criterion(self, data, criterion, beta, per_epoch)
        if self.diverged.any():
            raise ValueError("ens: some members have diverged; set their weights again first")
        initial = _initial_criterion(self, data, crit)
        if initial.any():
            raise ValueError(
                f"criterion: already satisfied at the start by {int(initial.sum())} of "
                f"{self.n_members} members (first: member {int(np.argmax(initial))}); the "
                "threshold does not separate the trap from the escaped state"
            )
        m = self.n_members
        slots_active = np.ones(m, dtype=np.uint8)
        start_step = self.steps.copy()
        slot_arrays: dict[str, NDArray[Any]] = {
            "active": slots_active,
            "start_step": start_step,
            "hold_since": np.full(m, -1, dtype=np.int64),
            "trajectories": np.ones(m, dtype=np.int64),
        }
        if refill_base is None:
            refill_base = int(self.streams.max()) + 1
        first_step = int(start_step[0])
        events: list[dict[str, NDArray[Any]]] = []
        saver, position = None, None
        if checkpoint is not None:
            saver, position = self._escape_checkpoint(
                checkpoint, checkpoint_every, data, crit, max_steps, lr, beta, temperature,
                seed, batch_size, sampling, refill, refill_base,
            )  # fmt: skip
        init_params = self.params.copy()
        if position is not None:  # resume: the members, slots and events where they stood
            for name, arr in self.state_arrays().items():
                arr[...] = position.members[name]
            for name, arr in slot_arrays.items():
                arr[...] = position.slots[name]
            if position.events:
                events.append(position.events)
            first_step = position.first_step
        slots = core.Slots(
            **slot_arrays, init_params=init_params, refill=refill, refill_base=refill_base
        )
        stages = Stages(
            end=np.array([max_steps], dtype=np.int64),
            lr=lr[None, :],
            beta=beta[None, :],
            temperature=temperature[None, :],
        )
        run_data = self.network.run_data(data)
        schedule = stages.core()
        bar = _bar(progress, max_steps, "escape")

        def call(first: int, n: int, begin: int, end: int) -> None:
            span = core.Span(first=first, n_steps=n, member_begin=begin, member_end=end)
            out = core.run_until_escape(
                self.core_state, run_data, schedule, crit.core, slots, options, span
            )
            events.append(out)
            if progress:
                bar.set_postfix(escaped=sum(int((~e["diverged"]).sum()) for e in events))

        calls = _Calls(max_steps, m, per_epoch, first_step, bar)
        on_in_step = None
        if saver is not None:
            if position is not None:
                calls.done = position.done
                bar.update(position.done)

            def save() -> None:
                saver.save(_Position(
                    done=calls.done, first_step=first_step, slots=slot_arrays,
                    members=self.state_arrays(), events=_joined(events),
                ))  # fmt: skip

            def on_in_step() -> None:
                if saver.due():
                    save()

        try:
            interrupted = calls.run(
                call, stop=lambda: not refill and not slots_active.any(), on_in_step=on_in_step
            )
        except KeyboardInterrupt:  # raised by other code (run() reads Ctrl-C as a count)
            interrupted = True
            calls.in_step = False  # the call it interrupted may not be in `events`
        finally:
            bar.close()
        if saver is not None and calls.in_step:  # the end, or a Ctrl-C between windows
            save()
        table = _escape_table(
            self, events, slots_active, start_step, lr, beta, temperature, batch_size, per_epoch
        )
        net = self.network
        settings = {
            "criterion": {**crit.description, "values": crit.values},
            "max_steps": max_steps,
            "batch_size": batch_size,
            "sampling": sampling,
            "seed": seed,
            "refill": refill,
            "refill_base": refill_base,
            "batches_per_epoch": per_epoch,
            "widths": list(net.widths),
            "dtype": net.dtype.name,
            "bias": net.bias,
            "decay_bias": net.decay_bias,
            "activation": net.activation,
            "n_members": m,
            "n_train": data.n_train,
            "eta_hat": data.eta_hat,
        }
        result = EscapeResult(table=table, settings=settings, interrupted=interrupted)
        self.last_escape_result = result
        if interrupted:
            raise KeyboardInterrupt(
                "escape run interrupted; the ensemble holds each slot's current state and "
                "Ensemble.last_escape_result the trajectories so far (the running ones censored)"
            )
        return result

    # ------------------------------------------------------------------ splitting
    def _score_criterion(self, kind: Any, index: int, every: int) -> Any:  # core.Criterion
        return core.Criterion(
            kind=kind, index=index, values=np.zeros(self.n_members), hold=0, check_every=every
        )

    @_exclusive("splitting")
    def splitting(
        self,
        data: Dataset,
        kind: Any,
        index: int,
        options: Any,  # core.SplittingOptions
        n_runs: int,
        first_run_id: int,
        lr: NDArray[np.float64],
        beta: NDArray[np.float64],
        temperature: NDArray[np.float64],
        *,
        batch_size: int | None,
        sampling: str,
        seed: int,
        n_threads: int | None,
        progress: bool,
    ) -> tuple[dict[str, NDArray[Any]], bool]:
        """AMS runs of n replicas each from this ensemble's n_runs x n member states (run r:
        members [r n, (r + 1) n)); see grokescape.splitting. Returns the per-run results
        and whether a Ctrl-C stopped the runs (the ones not done are then left out)."""
        opts, _, seed = self._run_options(data, batch_size, sampling, seed, n_threads)
        run_data = self.network.run_data(data)
        crit = self._score_criterion(kind, index, 1)
        runs = core.Splitting(
            state=self.core_state, n_runs=n_runs, first_run_id=first_run_id, seed=seed,
            options=options,
        )  # fmt: skip
        runs.start(self.core_state, run_data, crit, opts)
        stages = Stages(
            end=np.array([np.iinfo(np.int64).max // 2], dtype=np.int64),
            lr=lr[None, :], beta=beta[None, :], temperature=temperature[None, :],
        )  # fmt: skip
        schedule = stages.core()
        bar = _bar(progress, n_runs, "splitting", unit="run")
        work, left, interrupted = float(_FIRST_CALL_WORK), n_runs, False
        try:
            with _Interrupts() as ctrl_c:
                while left and not ctrl_c.count:
                    tic = time.perf_counter()
                    left = runs.advance(self.core_state, run_data, schedule, crit, opts,
                                        _WINDOW_STEPS, work)  # fmt: skip
                    elapsed = time.perf_counter() - tic
                    work = max(1e3, min(work / max(elapsed, 1e-6) * _CHUNK_SECONDS, 4.0 * work))
                    bar.update(n_runs - left - bar.n)
                interrupted = bool(ctrl_c.count)
        except KeyboardInterrupt:  # raised by other code (the loop reads Ctrl-C as a count)
            interrupted = True
        finally:
            bar.close()
        out = runs.results()
        done = np.asarray(out["done"], dtype=bool)
        return {k: np.asarray(v)[done] for k, v in out.items()}, interrupted

    @_exclusive("trap_loops")
    def trap_loops(
        self,
        data: Dataset,
        kind: Any,
        index: int,
        options: Any,  # core.LoopOptions
        steps: int,
        lr: NDArray[np.float64],
        beta: NDArray[np.float64],
        temperature: NDArray[np.float64],
        *,
        batch_size: int | None,
        sampling: str,
        seed: int,
        n_threads: int | None,
        progress: bool,
    ) -> tuple[pd.DataFrame, dict[str, NDArray[Any]], bool]:
        """Stage 1 of the mean escape time: every member followed through loops A -> Sigma
        -> A for `steps` steps (see grokescape.splitting). Returns the events (member, kind
        "up"/"loop"/"reactive", duration, at), the pooled Sigma states and whether a
        Ctrl-C stopped it."""
        opts, per_epoch, seed = self._run_options(data, batch_size, sampling, seed, n_threads)
        run_data = self.network.run_data(data)
        crit = self._score_criterion(kind, index, 1)
        m = self.n_members
        loop_start = self.steps.copy()  # updated in place by the core
        slots = core.LoopSlots(
            seeking_a=np.zeros(m, np.uint8), loop_start=loop_start,
            sigma_step=np.zeros(m, np.int64), restarts=np.zeros(m, np.int64),
            pooled=np.zeros(m, np.int64), init_params=self.params.copy(),
        )  # fmt: skip
        stages = Stages(
            end=np.array([steps], dtype=np.int64),
            lr=lr[None, :], beta=beta[None, :], temperature=temperature[None, :],
        )  # fmt: skip
        schedule = stages.core()
        outs: list[dict[str, NDArray[Any]]] = []

        def call(first: int, n: int, begin: int, end: int) -> None:
            span = core.Span(first=first, n_steps=n, member_begin=begin, member_end=end)
            outs.append(
                core.trap_loops(
                    self.core_state, run_data, schedule, crit, options, slots, opts, span
                )  # fmt: skip
            )

        calls = _Calls(steps, m, per_epoch, int(self.steps[0]), _bar(progress, steps, "loops"))
        try:
            interrupted = calls.run(call)
        except KeyboardInterrupt:  # raised by other code (run() reads Ctrl-C as a count)
            interrupted = True
        finally:
            calls.bar.close()

        def cat(key: str, dtype: Any, shape: tuple[int, ...] = ()) -> NDArray[Any]:
            parts = [np.asarray(o[key]) for o in outs]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype)

        import pandas as pd

        kinds = np.array(["up", "loop", "reactive", "open"])
        # "open": the loop (or escape) each member is in when the window ends, so far
        members = np.arange(m, dtype=np.int64)
        events = pd.DataFrame(
            {
                "member": np.concatenate([cat("member", np.int64), members]),
                "kind": kinds[np.concatenate([cat("kind", np.int64), np.full(m, 3)])],
                "duration": np.concatenate([cat("duration", np.int64),
                                            self.steps - loop_start]),
                "at": np.concatenate([cat("at", np.int64), self.steps.copy()]),
            }
        ).sort_values(["member", "at"], kind="stable", ignore_index=True)  # fmt: skip
        pool = {
            "params": cat("pool_params", self.network.dtype, (self.network.n_params,)),
            "steps": cat("pool_step", np.int64),
            "streams": cat("pool_stream", np.uint64),
            "order_streams": cat("pool_order_stream", np.uint64),
            "order_epochs": cat("pool_order_epoch", np.int64),
            "member": cat("pool_member", np.int64),
        }
        # a trajectory is (member, stream): a member that restarted after an escape meets
        # the same step counts again, and ties would keep the calls' (thread-dependent) order
        order = np.lexsort((pool["steps"], pool["streams"], pool["member"]))
        pool = {k: v[order] for k, v in pool.items()}
        return events, pool, interrupted

    # ------------------------------------------------------------------ escape checkpoints
    def _escape_checkpoint(
        self, path: str | os.PathLike[str], every: float, data: Dataset, crit: _Criterion,
        max_steps: int, lr: NDArray[np.float64], beta: NDArray[np.float64],
        temperature: NDArray[np.float64], seed: int, batch_size: int | None,
        sampling: str, refill: bool, refill_base: int,
    ) -> tuple[EscapeCheckpoint, _Position | None]:  # fmt: skip
        """The run's checkpoint, keyed by everything the run depends on (its arguments, the
        data, the network and the members' states at its start), and the position saved in
        it (None: no checkpoint yet)."""
        net = self.network
        key = fingerprint(
            {
                **{f"data.{k}": v for k, v in zip("xyXY", data.arrays(np.float64), strict=True)},
                **{f"start.{k}": v for k, v in self.state_arrays().items()},
                "network": (net.widths, net.dtype.str, net.bias, net.decay_bias, net.activation,
                            net.moment_gradient, net.generic_kernel),
                "criterion": sorted(crit.description.items()),
                "criterion.values": crit.values,
                "run": (max_steps, batch_size, sampling, seed, refill, refill_base),
                "lr": lr, "beta": beta, "temperature": temperature,
            }
        )  # fmt: skip
        saver = EscapeCheckpoint(path, key, every)
        return saver, saver.load()


def _joined(events: list[dict[str, NDArray[Any]]]) -> dict[str, NDArray[Any]]:
    """The events of several calls as one (the escape table concatenates them anyway)."""
    if not events:
        return {}
    return {k: np.concatenate([e[k] for e in events if k in e]) for k in events[0]}


def _bar(progress: bool, total: int, desc: str, unit: str = "step") -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit=unit, disable=not progress, desc=desc, leave=False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    )  # fmt: skip


# ---------------------------------------------------------------------------- criteria
@dataclass
class _Criterion:
    """A criterion resolved for the core: kind, index, per-member thresholds."""

    core: Any  # core.Criterion
    kind: Any
    index: int
    values: NDArray[np.float64]
    description: dict[str, Any]


def _resolve_criterion(
    engine: Engine,
    data: Dataset,
    criterion: Any,
    beta: NDArray[np.float64],
    batches_per_epoch: int,
) -> _Criterion:
    from grokescape import theory

    net = engine.network
    depth = len(net.widths) - 1
    m = engine.n_members
    if isinstance(criterion, ModeThreshold):
        if criterion.on not in ("lambda", "sv"):
            raise ValueError(f"criterion.on: expected 'lambda' or 'sv', got {criterion.on!r}")
        n_idx = data.n_modes if criterion.on == "lambda" else min(net.widths[0], net.widths[-1])
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
        desc: dict[str, Any] = {"type": "ModeThreshold", "mode": idx, "on": criterion.on}
    elif isinstance(criterion, TestMSEThreshold):
        if data.n_test == 0:
            raise ValueError("criterion: TestMSEThreshold needs test data in the Dataset")
        idx = 0
        if criterion.value is None:
            values = _default_mse_thresholds(engine, data, beta)
        else:
            values = np.full(m, float(_checks.finite_array(criterion.value, "criterion.value")))
        kind = core.CriterionKind.test_mse
        desc = {"type": "TestMSEThreshold"}
    else:
        raise TypeError(
            "criterion: expected a ModeThreshold or TestMSEThreshold, "
            f"got {type(criterion).__name__}"
        )
    check = batches_per_epoch if criterion.check_every is None else criterion.check_every
    hold = _checks.integer(criterion.hold, "criterion.hold", minimum=0)
    check = _checks.integer(check, "criterion.check_every", minimum=1)
    desc.update(hold=hold, check_every=check)
    values = np.ascontiguousarray(values, dtype=np.float64)
    spec = core.Criterion(kind=kind, index=idx, values=values, hold=hold, check_every=check)
    return _Criterion(core=spec, kind=kind, index=idx, values=values, description=desc)


def _observables_frame(engine: Engine, data: Dataset, beta: NDArray[np.float64]) -> pd.DataFrame:
    out = engine._evaluate(data, beta, None)
    cols: dict[str, NDArray[Any]] = {"test_mse": out["test_mse"]}
    for i in range(out["lam"].shape[1]):
        cols[f"lambda_{i}"] = out["lam"][:, i]
    for k in range(out["sv"].shape[1]):
        cols[f"sv_{k}"] = out["sv"][:, k]
    import pandas as pd

    return pd.DataFrame(cols)


def _default_mse_thresholds(
    engine: Engine, data: Dataset, beta: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Midpoint between the theory test MSE of the starting rank and the next rank."""
    from grokescape import theory

    depth = len(engine.network.widths) - 1
    obs = _observables_frame(engine, data, beta)
    lam = obs[[f"lambda_{i}" for i in range(data.n_modes)]].to_numpy()
    values = np.empty(engine.n_members)
    cache: dict[tuple[float, int], float] = {}
    for k in range(engine.n_members):
        thr = np.asarray(theory.mode_thresholds(data.eta_hat, beta[k], depth).lam)
        rank = int(np.sum(np.nan_to_num(lam[k], nan=0.0) > np.nan_to_num(thr, nan=np.inf)))
        key = (float(beta[k]), rank)
        if key not in cache:
            sp = theory.stationary_points(data.eta_hat, beta[k], depth)
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


def _initial_criterion(engine: Engine, data: Dataset, crit: _Criterion) -> NDArray[np.bool_]:
    obs = _observables_frame(engine, data, np.zeros(engine.n_members))
    if crit.kind == core.CriterionKind.mode_amplitude:
        return obs[f"lambda_{crit.index}"].to_numpy() > crit.values
    if crit.kind == core.CriterionKind.singular_value:
        return obs[f"sv_{crit.index}"].to_numpy() > crit.values
    return obs["test_mse"].to_numpy() < crit.values


def _escape_table(
    engine: Engine,
    events: list[dict[str, NDArray[Any]]],
    active: NDArray[np.uint8],
    start_step: NDArray[np.int64],
    lr: NDArray[np.float64],
    beta: NDArray[np.float64],
    temperature: NDArray[np.float64],
    batch_size: int | None,
    per_epoch: int,
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
    ages = engine.steps[running] - start_step[running]
    c_slot = running.astype(np.int64)
    slot_all = np.concatenate([slot, c_slot])
    import pandas as pd

    frame = pd.DataFrame(
        {
            "member": slot_all,
            "trajectory": np.concatenate([traj, engine.streams[running]]),
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
