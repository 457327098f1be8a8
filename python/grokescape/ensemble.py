"""Ensembles of independent deep networks trained by minibatch SGD with L2 in the core."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from grokescape import _checks
from grokescape._native import core
from grokescape.data import Dataset
from grokescape.history import History

if TYPE_CHECKING:
    from grokescape.escape import EscapeResult, ModeThreshold, TestMSEThreshold

__all__ = ["Ensemble"]

logger = logging.getLogger(__name__)

_DTYPES = {"float64": np.float64, "float32": np.float32}
_ACTIVATIONS = {"linear": core.Activation.linear, "tanh": core.Activation.tanh}
_SAMPLING = {"epoch": core.Sampling.epoch, "replacement": core.Sampling.replacement}
_INIT_SCHEMES = ("fan_in", "paper")
# Target wall time of one call into the core: Ctrl-C and progress bars act between calls.
_CHUNK_SECONDS = 0.25


def _resolve_threads(n_threads: int | None) -> int:
    if n_threads is None:
        return int(core.default_threads())
    return _checks.integer(n_threads, "n_threads", minimum=1)


@dataclass(frozen=True)
class _Stages:
    """A piecewise-constant schedule resolved to arrays: stage k ends at run step end[k]."""

    end: NDArray[np.int64]  # (S,)
    lr: NDArray[np.float64]  # (S, M)
    beta: NDArray[np.float64]
    temperature: NDArray[np.float64]

    @property
    def total(self) -> int:
        return int(self.end[-1]) if self.end.size else 0


class Ensemble:
    """M independent deep networks of the same shape, trained in parallel in C++.

    Parameters
    ----------
    widths : sequence of int
        Layer widths [d_in, h_1, ..., h_{L-1}, d_out]; depth L = len(widths) - 1.
    n_members : int
        Number of independent networks M.
    dtype : {"float64", "float32"}
        Floating-point type of the parameters and of the arithmetic of the training steps.
        Observables (MSEs, loss, modes, singular values) are evaluated in double from the
        stored parameters; the forward passes of tanh networks, and of linear ones narrower
        inside than at their ends, run in this type.
    bias : bool, default False
        Add a bias vector to every layer (as ``torch.nn.Linear`` does by default). The
        networks of the paper's theory are bias-free.
    decay_bias : bool, default True
        With ``bias=True``, apply the L2 term to the biases too (as
        ``torch.optim.SGD(weight_decay=beta)`` does); False excludes them.
    activation : {"linear", "tanh"}
        Nonlinearity of the hidden layers (the output layer is linear). Linear is the
        model of the theory.
    moment_gradient : bool, default True
        Bias-free linear networks take their minibatch gradient from the batch's second
        moments where that takes fewer operations
        (``cpp/include/grokescape/kernels/moment_step.hpp``); False runs per-sample
        backpropagation instead (the same steps to rounding; for tests and benchmarks).
    generic_kernel : bool, default False
        Run the kernels with run-time sizes even where a compile-time shape matches (the
        same steps to rounding; for tests).

    Notes
    -----
    Parameters start at zero; call :meth:`init_random` or :meth:`set_weights`. Member k uses
    random stream k, so its trajectory does not depend on the ensemble size.
    """

    def __init__(
        self,
        widths: Sequence[int],
        n_members: int,
        *,
        dtype: str | type | np.dtype[Any] = "float64",
        bias: bool = False,
        decay_bias: bool = True,
        activation: str = "linear",
        moment_gradient: bool = True,
        generic_kernel: bool = False,
    ) -> None:
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence | np.ndarray):
            raise TypeError(f"widths: expected a sequence of ints, got {type(widths).__name__}")
        widths_list = [_checks.integer(w, "widths", minimum=1) for w in widths]
        if len(widths_list) < 2:
            raise ValueError(f"widths: expected at least [d_in, d_out], got {widths_list}")
        self.n_members = _checks.integer(n_members, "n_members", minimum=1)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected 'float64' or 'float32', got {dtype!r}") from None
        if dt.name not in _DTYPES:
            raise ValueError(f"dtype: expected 'float64' or 'float32', got {dt.name!r}")
        self.dtype = dt
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        self.bias = bool(bias)
        self.decay_bias = bool(decay_bias)
        self.moment_gradient = bool(moment_gradient)
        self.generic_kernel = bool(generic_kernel)
        self.widths = widths_list
        self._layout = core.Layout(widths_list, self.bias, _ACTIVATIONS[activation])
        n_params = int(self._layout.n_params)
        _checks.check_memory(
            self.n_members * (n_params * dt.itemsize + 32), f"Ensemble of {self.n_members} members"
        )
        self._params = np.zeros((self.n_members, n_params), dtype=dt)
        self._steps = np.zeros(self.n_members, dtype=np.int64)
        self._diverged = np.zeros(self.n_members, dtype=np.uint8)
        self._streams = np.arange(self.n_members, dtype=np.uint64)
        self.last_history: History | None = None
        self.last_escape_result: EscapeResult | None = None

    # ------------------------------------------------------------------ shape and state
    @property
    def depth(self) -> int:
        """Number of weight matrices L."""
        return len(self.widths) - 1

    @property
    def n_params(self) -> int:
        """Parameters per member (weights and biases)."""
        return int(self._layout.n_params)

    @property
    def steps(self) -> NDArray[np.int64]:
        """SGD steps each member has taken since its weights were last set (read-only)."""
        view = self._steps.view()
        view.flags.writeable = False
        return view

    @property
    def diverged(self) -> NDArray[np.bool_]:
        """Members whose parameters became non-finite; they are skipped by training."""
        return self._diverged.astype(bool)

    @property
    def params(self) -> NDArray[Any]:
        """All parameters, shape (M, n_params), in the order W_1, b_1, ..., W_L, b_L (read-only)."""
        view = self._params.view()
        view.flags.writeable = False
        return view

    def _layer_view(self, start: int, shape: tuple[int, ...]) -> NDArray[Any]:
        size = int(np.prod(shape))
        view = self._params[:, start : start + size].reshape((self.n_members, *shape))
        view.flags.writeable = False
        return view

    @property
    def weights(self) -> list[NDArray[Any]]:
        """Read-only views of the weights, one (M, out, in) array per layer."""
        lay = self._layout
        return [
            self._layer_view(lay.w_offset[l], (self.widths[l + 1], self.widths[l]))
            for l in range(self.depth)
        ]

    @property
    def biases(self) -> list[NDArray[Any]] | None:
        """Read-only views of the biases, one (M, out) array per layer, or None without biases."""
        if not self.bias:
            return None
        lay = self._layout
        return [self._layer_view(lay.b_offset[l], (self.widths[l + 1],)) for l in range(self.depth)]

    def __repr__(self) -> str:
        extra = ", bias=True" if self.bias else ""
        extra += "" if self.activation == "linear" else f", activation={self.activation!r}"
        return (
            f"Ensemble(widths={self.widths}, n_members={self.n_members}, "
            f"dtype={self.dtype.name!r}{extra})"
        )

    # ------------------------------------------------------------------ setting parameters
    def _reset_state(self) -> None:
        self._steps[:] = 0
        self._diverged[:] = 0

    def set_weights(
        self, weights: Sequence[ArrayLike], biases: Sequence[ArrayLike] | None = None
    ) -> None:
        """Set every member's weights (and biases).

        Parameters
        ----------
        weights : sequence of L arrays
            Layer l as (out, in) (one network, copied to every member) or (M, out, in).
        biases : sequence of L arrays, optional
            Layer l as (out,) or (M, out); required to be None without biases. Biases not
            given are set to zero.

        Resets each member's step counter to 0 and clears divergence flags.
        """
        if len(weights) != self.depth:
            raise ValueError(
                f"weights: expected {self.depth} arrays (one per layer), got {len(weights)}"
            )
        new = np.zeros_like(self._params)
        lay = self._layout
        for l, w in enumerate(weights):
            shape = (self.widths[l + 1], self.widths[l])
            self._place(
                new,
                _checks.finite_array(w, f"weights[{l}]"),
                lay.w_offset[l],
                shape,
                f"weights[{l}]",
            )
        if biases is not None:
            if not self.bias:
                raise ValueError("biases: this ensemble has no biases (create it with bias=True)")
            if len(biases) != self.depth:
                raise ValueError(
                    f"biases: expected {self.depth} arrays (one per layer), got {len(biases)}"
                )
            for l, b in enumerate(biases):
                self._place(
                    new,
                    _checks.finite_array(b, f"biases[{l}]"),
                    lay.b_offset[l],
                    (self.widths[l + 1],),
                    f"biases[{l}]",
                )
        self._params[...] = new
        self._reset_state()

    def _place(
        self,
        dest: NDArray[Any],
        arr: NDArray[np.float64],
        start: int,
        shape: tuple[int, ...],
        name: str,
    ) -> None:
        size = int(np.prod(shape))
        with np.errstate(over="ignore"):
            self._place_values(dest, arr, start, size, shape, name)
        if self.dtype == np.float32 and not np.all(np.isfinite(dest[:, start : start + size])):
            raise ValueError(f"{name}: values overflow float32")

    def _place_values(
        self,
        dest: NDArray[Any],
        arr: NDArray[np.float64],
        start: int,
        size: int,
        shape: tuple[int, ...],
        name: str,
    ) -> None:
        if arr.shape == shape:
            dest[:, start : start + size] = arr.reshape(1, size)
        elif arr.shape == (self.n_members, *shape):
            dest[:, start : start + size] = arr.reshape(self.n_members, size)
        else:
            raise ValueError(
                f"{name}: expected shape {shape} (one network) or {(self.n_members, *shape)} "
                f"(per member), got {arr.shape}"
            )

    def set_params(self, params: ArrayLike) -> None:
        """Set the flat parameters of every member, shape (M, n_params) or (n_params,)."""
        arr = _checks.finite_array(params, "params")
        if arr.shape not in ((self.n_params,), (self.n_members, self.n_params)):
            raise ValueError(
                f"params: expected shape ({self.n_params},) or "
                f"({self.n_members}, {self.n_params}), "
                f"got {arr.shape}"
            )
        self._params[...] = arr
        self._reset_state()

    def init_random(self, std: float | str | None = None, *, seed: int = 0) -> None:
        """Draw every weight independently from a zero-mean normal; biases are set to zero.

        Parameters
        ----------
        std : float, "fan_in", "paper" or None
            None or "fan_in" (default): W_l ~ N(0, 1/fan_in), fan_in = widths[l], i.e. the
            standard deviation of layer l is 1/sqrt(widths[l]).
            "paper": the paper's "standard normal scaled by 1/sqrt(hidden width)", the same
            standard deviation 1/sqrt(h) for every layer (all hidden widths must equal h).
            A float: that standard deviation for every layer.
        seed : int
            Draws come from the stream (seed, member, step 0, purpose "init"), so member k's
            initial weights do not depend on the ensemble size.

        Resets step counters and divergence flags.
        """
        seed = _checks.seed(seed)
        if std is None or std == "fan_in":
            stds = [1.0 / np.sqrt(self.widths[l]) for l in range(self.depth)]
        elif std == "paper":
            hidden = set(self.widths[1:-1])
            if len(hidden) != 1:
                raise ValueError(
                    f"std: 'paper' scaling needs one common hidden width, got widths {self.widths}"
                )
            stds = [1.0 / np.sqrt(hidden.pop())] * self.depth
        elif isinstance(std, str):
            raise ValueError(f"std: expected a float, 'fan_in', 'paper' or None, got {std!r}")
        else:
            value = float(_checks.finite_array(std, "std"))
            if value < 0:
                raise ValueError(f"std: expected a standard deviation >= 0, got {value}")
            stds = [value] * self.depth
        draws = np.empty((self.n_members, self.n_params), dtype=np.float64)
        core.standard_normal(
            seed, self._streams, 0, core.Purpose.init, draws, _resolve_threads(None)
        )
        new = np.zeros((self.n_members, self.n_params), dtype=np.float64)
        lay = self._layout
        for l in range(self.depth):
            start, size = lay.w_offset[l], self.widths[l + 1] * self.widths[l]
            new[:, start : start + size] = stds[l] * draws[:, start : start + size]
        self._params[...] = new
        self._reset_state()

    # ------------------------------------------------------------------ evaluation
    def _check_data(self, data: Any) -> Dataset:
        if not isinstance(data, Dataset):
            raise TypeError(f"data: expected a grokescape.Dataset, got {type(data).__name__}")
        if data.d_in != self.widths[0] or data.d_out != self.widths[-1]:
            raise ValueError(
                f"data: has d_in={data.d_in}, d_out={data.d_out} but the networks map "
                f"{self.widths[0]} -> {self.widths[-1]}"
            )
        return data

    def _modes(
        self, data: Dataset
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        return (
            np.ascontiguousarray(data.mode_out.T),
            np.ascontiguousarray(data.mode_in.T),
            np.ascontiguousarray(data.eta_hat),
        )

    def _observable_arrays(self, rows: int, n_modes: int) -> dict[str, NDArray[np.float64]]:
        m, k = self.n_members, min(self.widths[0], self.widths[-1])
        return {
            "train_mse": np.full((rows, m), np.nan),
            "test_mse": np.full((rows, m), np.nan),
            "loss": np.full((rows, m), np.nan),
            "lam": np.full((rows, m, n_modes), np.nan),
            "sv": np.full((rows, m, k), np.nan),
            "energy": np.full((rows, m, n_modes), np.nan),
        }

    def observables(self, data: Dataset, beta: ArrayLike = 0.0, *, n_threads: int | None = None):
        """Exact full-batch observables of every member as a DataFrame (one row per member).

        Columns: train_mse, test_mse, loss (data term + L2 at `beta`), lambda_i (per-mode
        amplitudes), sv_k (singular values of the end-to-end map), energy_i (per-mode
        reduced energies at the data's eta_hat).
        """
        data = self._check_data(data)
        beta_arr = _checks.per_member(beta, "beta", self.n_members, low=0.0, low_inclusive=True)
        out = self._evaluate(data, beta_arr, _resolve_threads(n_threads))
        hist = History(
            step=np.zeros(1, dtype=np.int64),
            epoch=np.zeros(1),
            start_step=self._steps.copy(),
            train_mse=out["train_mse"][None],
            test_mse=out["test_mse"][None],
            loss=out["loss"][None],
            lam=out["lam"][None],
            singular_values=out["sv"][None],
            energy=out["energy"][None],
            diverged=self.diverged,
            diverged_step=np.full(self.n_members, -1, dtype=np.int64),
        )
        return hist.final().drop(columns=["step", "epoch"])

    def _evaluate(
        self, data: Dataset, beta: NDArray[np.float64], n_threads: int
    ) -> dict[str, NDArray[np.float64]]:
        x_tr, y_tr, x_te, y_te = data.arrays(self.dtype)
        out = self._observable_arrays(1, data.n_modes)
        core.evaluate(
            self._layout,
            self._params,
            x_tr,
            y_tr,
            x_te,
            y_te,
            beta,
            self.decay_bias,
            *self._modes(data),
            out["train_mse"],
            out["test_mse"],
            out["loss"],
            out["lam"],
            out["sv"],
            out["energy"],
            n_threads,
        )
        return {k: v[0] for k, v in out.items()}

    def loss(
        self, data: Dataset, beta: ArrayLike, *, n_threads: int | None = None
    ) -> NDArray[np.float64]:
        """Total training loss of every member, shape (M,):
        1/(2n) sum_n ||y_n - f(x_n)||^2 + beta/2 sum_l ||W_l||^2 (+ beta/2 ||b||^2 with
        ``decay_bias``), exact over the whole training set."""
        data = self._check_data(data)
        beta_arr = _checks.per_member(beta, "beta", self.n_members, low=0.0, low_inclusive=True)
        return self._evaluate(data, beta_arr, _resolve_threads(n_threads))["loss"]

    def gradients(
        self, data: Dataset, beta: ArrayLike, *, n_threads: int | None = None
    ) -> tuple[list[NDArray[Any]], list[NDArray[Any]] | None]:
        """Exact full-batch gradient of :meth:`loss` for every member.

        Returns
        -------
        (weight_grads, bias_grads)
            weight_grads: one (M, out, in) array per layer; bias_grads: one (M, out) array
            per layer, or None without biases.
        """
        data = self._check_data(data)
        beta_arr = _checks.per_member(beta, "beta", self.n_members, low=0.0, low_inclusive=True)
        x_tr, y_tr, _, _ = data.arrays(self.dtype)
        grads = np.zeros_like(self._params)
        core.gradients(
            self._layout,
            self._params,
            x_tr,
            y_tr,
            beta_arr,
            self.decay_bias,
            grads,
            _resolve_threads(n_threads),
        )
        lay, m = self._layout, self.n_members
        w = [
            grads[:, lay.w_offset[l] : lay.w_offset[l] + self.widths[l + 1] * self.widths[l]]
            .reshape(m, self.widths[l + 1], self.widths[l])
            .copy()
            for l in range(self.depth)
        ]
        b = None
        if self.bias:
            b = [
                grads[:, lay.b_offset[l] : lay.b_offset[l] + self.widths[l + 1]].copy()
                for l in range(self.depth)
            ]
        return w, b

    # ------------------------------------------------------------------ training
    def train(
        self,
        data: Dataset,
        steps: int,
        lr: ArrayLike,
        beta: ArrayLike,
        *,
        batch_size: int | None = None,
        temperature: ArrayLike = 0.0,
        sampling: str = "epoch",
        seed: int = 0,
        record_every: int = 0,
        n_threads: int | None = None,
        progress: bool = False,
    ) -> History:
        """Train every member for `steps` SGD steps (physics.md section 2).

        Each step: W <- (1 - lr beta) W - lr grad_data(W) + sqrt(2 lr T) xi on a minibatch,
        with grad_data the gradient of 1/(2B) sum ||y - f(x)||^2 and xi standard normal
        per parameter (only when T > 0).

        Parameters
        ----------
        data : Dataset
        steps : int
            SGD steps (>= 0).
        lr, beta, temperature : float or (M,) array
            Learning rate (> 0), L2 strength (>= 0), Langevin temperature (>= 0).
        batch_size : int or None
            None, or >= n_train with epoch sampling: full batch in stored order (no
            randomness). Otherwise B samples per step.
        sampling : {"epoch", "replacement"}
            "epoch": a fresh permutation per epoch, cut into floor(n/B) batches (remainder
            dropped). "replacement": B indices drawn uniformly per step.
        seed : int
            Random draws are addressed by (seed, member, step, purpose): runs are
            reproducible bit for bit, whatever the thread count or chunking, and calling
            train twice for 1000 steps equals one call for 2000 with the same seed.
        record_every : int
            Record observables every this many steps (and at step 0); 0 records only the end.
            The final state is always recorded.
        n_threads : int or None
            None uses OpenMP's default (OMP_NUM_THREADS or all cores); 1 is serial.
        progress : bool
            Show a progress bar.

        Returns
        -------
        History
            Also stored as ``self.last_history``. On Ctrl-C the run stops within about a
            chunk (a quarter of a second of work), the ensemble is left in the consistent
            state of the last completed chunk, ``self.last_history`` holds the rows
            recorded so far (``interrupted=True``) and KeyboardInterrupt is re-raised.
        """
        data = self._check_data(data)
        steps = _checks.integer(steps, "steps", minimum=0)
        m = self.n_members
        lr_arr = _checks.per_member(lr, "lr", m, low=0.0, low_inclusive=False)
        beta_arr = _checks.per_member(beta, "beta", m, low=0.0, low_inclusive=True)
        temp_arr = _checks.per_member(temperature, "temperature", m, low=0.0, low_inclusive=True)
        stages = _Stages(
            end=np.array([steps], dtype=np.int64),
            lr=lr_arr[None, :],
            beta=beta_arr[None, :],
            temperature=temp_arr[None, :],
        )
        record_every = _checks.integer(record_every, "record_every", minimum=0)
        n_rec = steps // record_every + 2 if record_every > 0 else 1
        self._check_record_memory(n_rec, data)
        if record_every > 0:
            record_at = np.unique(np.append(np.arange(0, steps + 1, record_every), steps))
        else:
            record_at = np.array([steps], dtype=np.int64)
        return self._run(
            data,
            stages,
            record_at.astype(np.int64),
            batch_size=batch_size,
            sampling=sampling,
            seed=seed,
            n_threads=n_threads,
            progress=progress,
        )

    def train_schedule(
        self,
        data: Dataset,
        schedule: Sequence[Any],
        *,
        batch_size: int | None = None,
        sampling: str = "epoch",
        seed: int = 0,
        record_every: int = 0,
        n_threads: int | None = None,
        progress: bool = False,
    ) -> History:
        """Train through piecewise-constant stages in one call into the core.

        Parameters
        ----------
        schedule : sequence of stages
            Each stage is a tuple ``(steps, lr, beta)`` or ``(steps, lr, beta, temperature)``
            or a dict with those keys (temperature defaults to 0); lr, beta and temperature
            are scalars or (M,) arrays. See :func:`grokescape.schedule.beta_sweep` for
            hysteresis sweeps.
        record_every : int
            Also record every this many steps; observables are always recorded at step 0
            and at the end of every stage (``History.settings["stage_end"]`` says where).

        Other parameters and the return value are those of :meth:`train`; the History's
        ``stage`` array gives the stage each record belongs to (the one just finished).
        """
        from grokescape.schedule import resolve_stages

        data = self._check_data(data)
        end, lr, beta, temp = resolve_stages(schedule, self.n_members)
        stages = _Stages(end=end, lr=lr, beta=beta, temperature=temp)
        total = stages.total
        record_every = _checks.integer(record_every, "record_every", minimum=0)
        n_rec = len(end) + 1 + (total // record_every if record_every else 0)
        self._check_record_memory(n_rec, data)
        marks = [np.array([0]), end]
        if record_every:
            marks.append(np.arange(record_every, total + 1, record_every))
        record_at = np.unique(np.concatenate(marks)).astype(np.int64)
        return self._run(
            data,
            stages,
            record_at,
            batch_size=batch_size,
            sampling=sampling,
            seed=seed,
            n_threads=n_threads,
            progress=progress,
        )

    def run_until_escape(
        self,
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
        """Run SGD until each member escapes, detecting escapes inside the core.

        Parameters
        ----------
        criterion : ModeThreshold or TestMSEThreshold
            What counts as escaped (see :mod:`grokescape.escape`); thresholds default to
            the exact theory of the data's eta_hat at each member's beta.
        max_steps : int
            Steps each member (slot) runs at most; the trajectory running then is censored.
        lr, beta, temperature : float or (M,) array
            As in :meth:`train` (temperature adds Langevin noise sqrt(2 lr T) xi).
        refill : bool
            Restart a slot whose trajectory escaped (or diverged) from the slot's initial
            state as a new trajectory with a new random stream, until max_steps.
        batch_size, sampling, seed, n_threads, progress
            As in :meth:`train`. Trajectory k >= 1 of slot m uses random stream
            max(initial streams) + 1 + (k - 1) M + m, so results do not depend on threads
            or chunking.

        Returns
        -------
        EscapeResult
            One row per trajectory. Afterwards each member holds the final state of its
            last trajectory (its stream and step counter continue it under :meth:`train`).
            On Ctrl-C the partial result is kept in ``last_escape_result``.
        """
        from grokescape.escape import run_until_escape

        return run_until_escape(
            self,
            data,
            criterion,
            max_steps,
            lr,
            beta,
            batch_size=batch_size,
            temperature=temperature,
            sampling=sampling,
            seed=seed,
            refill=refill,
            n_threads=n_threads,
            progress=progress,
        )

    @property
    def streams(self) -> NDArray[np.uint64]:
        """Random stream (trajectory id) of each member (read-only)."""
        view = self._streams.view()
        view.flags.writeable = False
        return view

    def set_streams(self, streams: ArrayLike, steps: ArrayLike | None = None) -> None:
        """Set each member's random stream (trajectory id) and, optionally, its step counter,
        e.g. to replay a trajectory of an escape run with :meth:`train`."""
        arr = np.asarray(streams)
        if (
            arr.shape != (self.n_members,)
            or not np.issubdtype(arr.dtype, np.integer)
            or np.any(arr < 0)
        ):
            raise ValueError(f"streams: expected {self.n_members} non-negative integers")
        self._streams[:] = arr.astype(np.uint64)
        if steps is not None:
            st = np.asarray(steps)
            if (
                st.shape != (self.n_members,)
                or not np.issubdtype(st.dtype, np.integer)
                or np.any(st < 0)
            ):
                raise ValueError(f"steps: expected {self.n_members} non-negative integers")
            self._steps[:] = st

    def _check_record_memory(self, n_rec: int, data: Dataset) -> None:
        k = min(self.widths[0], self.widths[-1])
        _checks.check_memory(
            n_rec * self.n_members * (3 + 2 * data.n_modes + k) * 8,
            f"Recording {n_rec} rows of observables for {self.n_members} members",
        )

    def step_kernel(
        self, data: Dataset, batch_size: int | None = None, sampling: str = "epoch"
    ) -> str:
        """Which core kernel :meth:`train` runs for these data and batch size (the choice
        depends on the network and the batch only): ``"moments"`` (bias-free linear
        networks: the gradient from the batch's second moments, where that takes fewer
        operations than backpropagation), ``"lane_batches"`` / ``"lanes"`` (linear, one
        member per vector lane, minibatch / single-sample steps), ``"rows"`` or
        ``"samples"`` (one member at a time)."""
        data = self._check_data(data)
        core_batch, _ = self._batch_plan(data, batch_size, sampling)
        return str(
            core.step_kernel(
                self._layout,
                core_batch,
                data.n_train,
                self.dtype == np.float32,
                self.generic_kernel,
                self.moment_gradient,
            )
        )

    def _batch_plan(self, data: Dataset, batch_size: int | None, sampling: str) -> tuple[int, int]:
        """(core batch size, 0 = full batch; batches per epoch)."""
        if sampling not in _SAMPLING:
            raise ValueError(f"sampling: expected one of {sorted(_SAMPLING)}, got {sampling!r}")
        n = data.n_train
        if batch_size is None:
            return 0, 1
        batch_size = _checks.integer(batch_size, "batch_size", minimum=1)
        if sampling == "epoch" and batch_size >= n:
            return 0, 1
        return batch_size, max(1, n // batch_size)

    def _run(
        self,
        data: Dataset,
        stages: _Stages,
        record_at: NDArray[np.int64],
        *,
        batch_size: int | None,
        sampling: str,
        seed: int,
        n_threads: int | None,
        progress: bool,
    ) -> History:
        """Advance every member through a schedule in chunks, recording at `record_at`."""
        core_batch, per_epoch = self._batch_plan(data, batch_size, sampling)
        seed = _checks.seed(seed)
        threads = _resolve_threads(n_threads)
        total = stages.total
        x_tr, y_tr, x_te, y_te = data.arrays(self.dtype)
        n_rec = int(record_at.size)
        self._check_record_memory(n_rec, data)
        rec = self._observable_arrays(n_rec, data.n_modes)
        diverged_at = np.full(self.n_members, -1, dtype=np.int64)
        start_steps = self._steps.copy()
        was_diverged = self._diverged.astype(bool)
        modes = self._modes(data)
        stage_end = np.ascontiguousarray(stages.end)
        lr, beta, temp = (
            np.ascontiguousarray(a) for a in (stages.lr, stages.beta, stages.temperature)
        )
        chunk = max(1, min(total, int(2e5 // self.n_members) or 1))
        interrupted = False
        bar = tqdm(total=total, unit="step", disable=not progress, desc="train", leave=False)
        try:
            done = 0
            while done < total or (total == 0 and done == 0):
                n = min(chunk, total - done)
                tic = time.perf_counter()
                core.train(
                    self._layout,
                    self._params,
                    self._steps,
                    self._diverged,
                    self._streams,
                    x_tr,
                    y_tr,
                    x_te,
                    y_te,
                    stage_end,
                    lr,
                    beta,
                    temp,
                    core_batch,
                    _SAMPLING[sampling],
                    seed,
                    self.decay_bias,
                    done,
                    n,
                    record_at,
                    *modes,
                    rec["train_mse"],
                    rec["test_mse"],
                    rec["loss"],
                    rec["lam"],
                    rec["sv"],
                    rec["energy"],
                    diverged_at,
                    threads,
                    self.generic_kernel,
                    self.moment_gradient,
                )
                elapsed = time.perf_counter() - tic
                done += n
                bar.update(n)
                if total == 0:
                    break
                scale = _CHUNK_SECONDS / max(elapsed, 1e-6)
                chunk = int(max(1, min(chunk * min(scale, 4.0), total)))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        # Progress is read from the state the core wrote, not from Python variables that a
        # Ctrl-C may have interrupted between the core's return and their update.
        advanced = self._steps - start_steps
        live = ~was_diverged
        done = int(advanced[live].max()) if live.any() else 0
        keep = record_at <= done if interrupted else np.ones(n_rec, dtype=bool)
        newly = self._diverged.astype(bool) & ~was_diverged
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
                "widths": list(self.widths),
                "dtype": self.dtype.name,
                "bias": self.bias,
                "decay_bias": self.decay_bias,
                "activation": self.activation,
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
