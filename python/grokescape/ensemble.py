"""Ensembles of independent deep networks trained by minibatch SGD with L2 in the core."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from grokescape import _checks
from grokescape._engine import ACTIVATIONS, Engine, Network, Stages, batch_plan
from grokescape._native import core
from grokescape.data import Dataset
from grokescape.escape import EscapeResult, ModeThreshold, TestMSEThreshold
from grokescape.history import History
from grokescape.schedule import resolve_stages

__all__ = ["Ensemble", "EnsembleSnapshot"]

_DTYPES = {"float64": np.float64, "float32": np.float32}
_SNAPSHOT_FIELDS = ("params", "steps", "streams", "order_streams", "order_epochs", "diverged")


@dataclass(frozen=True)
class EnsembleSnapshot:
    """The complete dynamical state of an ensemble's members, as copies.

    A member's state is its parameters, its step counter, its random stream, its sample
    order (whose permutation the epoch in progress uses; ``order_epoch`` -1 means its own
    stream's) and its divergence flag: everything the next SGD step depends on besides the
    run's arguments (data, lr, beta, temperature, batch size, sampling, seed). Restoring a
    snapshot and running on gives bit for bit what the uninterrupted run gives.

    Attributes
    ----------
    params : ndarray, shape (M, n_params)
    steps, order_epochs : ndarray of int64, shape (M,)
    streams, order_streams : ndarray of uint64, shape (M,)
    diverged : ndarray of uint8, shape (M,)
    widths, dtype, bias, activation
        The networks the states belong to; :meth:`Ensemble.restore` checks them.
    """

    params: NDArray[Any]
    steps: NDArray[np.int64]
    streams: NDArray[np.uint64]
    order_streams: NDArray[np.uint64]
    order_epochs: NDArray[np.int64]
    diverged: NDArray[np.uint8]
    widths: tuple[int, ...]
    dtype: str
    bias: bool
    activation: str

    @property
    def n_members(self) -> int:
        return int(self.steps.shape[0])

    def save(self, path: str | Path) -> Path:
        """Write the snapshot to ``path`` (NumPy ``.npz``); returns the path written."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        np.savez(
            path,
            **{name: getattr(self, name) for name in _SNAPSHOT_FIELDS},
            widths=np.asarray(self.widths, dtype=np.int64),
            meta=np.array([self.dtype, str(self.bias), self.activation]),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> EnsembleSnapshot:
        """Read a snapshot written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as f:
            dtype, bias, activation = (str(v) for v in f["meta"])
            return cls(
                **{name: f[name].copy() for name in _SNAPSHOT_FIELDS},
                widths=tuple(int(w) for w in f["widths"]),
                dtype=dtype,
                bias=bias == "True",
                activation=activation,
            )


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

    One call at a time runs on an ensemble: a second call from another thread while one is
    running raises RuntimeError (use one Ensemble per thread).
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
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        self.bias = bool(bias)
        self.decay_bias = bool(decay_bias)
        self.moment_gradient = bool(moment_gradient)
        self.generic_kernel = bool(generic_kernel)
        self.widths = widths_list
        layout = core.Layout(widths_list, self.bias, ACTIVATIONS[activation])
        self._network = Network(
            widths=tuple(widths_list),
            dtype=dt,
            bias=self.bias,
            decay_bias=self.decay_bias,
            activation=activation,
            moment_gradient=self.moment_gradient,
            generic_kernel=self.generic_kernel,
            layout=layout,
        )
        _checks.check_memory(
            self.n_members * (int(layout.n_params) * dt.itemsize + 48),
            f"Ensemble of {self.n_members} members",
        )
        self._engine = Engine(self._network, self.n_members)

    @property
    def last_history(self) -> History | None:
        """The History of the last :meth:`train` / :meth:`train_schedule` call (also when it
        was interrupted)."""
        return self._engine.last_history

    @property
    def last_escape_result(self) -> EscapeResult | None:
        """The result of the last :meth:`run_until_escape` call (also when interrupted)."""
        return self._engine.last_escape_result

    # ------------------------------------------------------------------ shape and state
    @property
    def depth(self) -> int:
        """Number of weight matrices L."""
        return len(self.widths) - 1

    @property
    def n_params(self) -> int:
        """Parameters per member (weights and biases)."""
        return self._network.n_params

    @property
    def weight_offsets(self) -> list[int]:
        """Where W_l starts in a member's flat parameter vector (see :attr:`params`)."""
        return [int(o) for o in self._network.layout.w_offset]

    @property
    def bias_offsets(self) -> list[int] | None:
        """Where b_l starts in a member's flat parameter vector, or None without biases."""
        return [int(o) for o in self._network.layout.b_offset] if self.bias else None

    @staticmethod
    def _read_only(array: NDArray[Any]) -> NDArray[Any]:
        view = array.view()
        view.flags.writeable = False
        return view

    @property
    def steps(self) -> NDArray[np.int64]:
        """SGD steps each member has taken since its weights were last set (read-only)."""
        return self._read_only(self._engine.steps)

    @property
    def diverged(self) -> NDArray[np.bool_]:
        """Members whose parameters became non-finite; they are skipped by training."""
        return self._engine.diverged.astype(bool)

    @property
    def params(self) -> NDArray[Any]:
        """All parameters, shape (M, n_params), in the order W_1, b_1, ..., W_L, b_L (read-only)."""
        return self._read_only(self._engine.params)

    def _layer_view(self, start: int, shape: tuple[int, ...]) -> NDArray[Any]:
        size = int(np.prod(shape))
        view = self._engine.params[:, start : start + size].reshape((self.n_members, *shape))
        view.flags.writeable = False
        return view

    @property
    def weights(self) -> list[NDArray[Any]]:
        """Read-only views of the weights, one (M, out, in) array per layer."""
        return [
            self._layer_view(o, (self.widths[l + 1], self.widths[l]))
            for l, o in enumerate(self.weight_offsets)
        ]

    @property
    def biases(self) -> list[NDArray[Any]] | None:
        """Read-only views of the biases, one (M, out) array per layer, or None without biases."""
        offsets = self.bias_offsets
        if offsets is None:
            return None
        return [self._layer_view(o, (self.widths[l + 1],)) for l, o in enumerate(offsets)]

    def __repr__(self) -> str:
        extra = ", bias=True" if self.bias else ""
        extra += "" if self.activation == "linear" else f", activation={self.activation!r}"
        return (
            f"Ensemble(widths={self.widths}, n_members={self.n_members}, "
            f"dtype={self.dtype.name!r}{extra})"
        )

    # ------------------------------------------------------------------ setting parameters
    def _set_all(self, params: NDArray[Any]) -> None:
        """New parameters for every member: step counters 0, flags and sample orders cleared."""
        with self._engine.exclusive("set parameters"):
            self._engine.params[...] = params
            self._engine.reset_counters()

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
        new = np.zeros_like(self._engine.params)
        for l, w in enumerate(weights):
            shape = (self.widths[l + 1], self.widths[l])
            self._place(
                new,
                _checks.finite_array(w, f"weights[{l}]"),
                self.weight_offsets[l],
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
            offsets = self.bias_offsets or []
            for l, b in enumerate(biases):
                self._place(
                    new,
                    _checks.finite_array(b, f"biases[{l}]"),
                    offsets[l],
                    (self.widths[l + 1],),
                    f"biases[{l}]",
                )
        self._set_all(new)

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
        new = np.empty_like(self._engine.params)
        with np.errstate(over="ignore"):
            new[...] = arr
        if not np.all(np.isfinite(new)):
            raise ValueError("params: values overflow float32")
        self._set_all(new)

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
            seed, self._engine.streams, 0, core.Purpose.init, draws, int(core.default_threads())
        )
        new = np.zeros((self.n_members, self.n_params), dtype=np.float64)
        for l, start in enumerate(self.weight_offsets):
            size = self.widths[l + 1] * self.widths[l]
            new[:, start : start + size] = stds[l] * draws[:, start : start + size]
        self._set_all(new.astype(self.dtype))

    # ------------------------------------------------------------------ evaluation
    def _check_data(self, data: Any) -> Dataset:
        return self._network.check_data(data)

    def _beta(self, beta: ArrayLike) -> NDArray[np.float64]:
        return _checks.per_member(beta, "beta", self.n_members, low=0.0, low_inclusive=True)

    def observables(self, data: Dataset, beta: ArrayLike = 0.0, *, n_threads: int | None = None):
        """Exact full-batch observables of every member as a DataFrame (one row per member).

        Columns: train_mse, test_mse, loss (data term + L2 at `beta`), lambda_i (per-mode
        amplitudes), sv_k (singular values of the end-to-end map), energy_i (per-mode
        reduced energies at the data's eta_hat).
        """
        data = self._check_data(data)
        out = self._engine.evaluate(data, self._beta(beta), n_threads)
        hist = History(
            step=np.zeros(1, dtype=np.int64),
            epoch=np.zeros(1),
            start_step=self._engine.steps.copy(),
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

    def loss(
        self, data: Dataset, beta: ArrayLike, *, n_threads: int | None = None
    ) -> NDArray[np.float64]:
        """Total training loss of every member, shape (M,):
        1/(2n) sum_n ||y_n - f(x_n)||^2 + beta/2 sum_l ||W_l||^2 (+ beta/2 ||b||^2 with
        ``decay_bias``), exact over the whole training set."""
        data = self._check_data(data)
        return self._engine.evaluate(data, self._beta(beta), n_threads)["loss"]

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
        grads = self._engine.gradients(data, self._beta(beta), n_threads)
        m = self.n_members
        w = [
            grads[:, o : o + self.widths[l + 1] * self.widths[l]]
            .reshape(m, self.widths[l + 1], self.widths[l])
            .copy()
            for l, o in enumerate(self.weight_offsets)
        ]
        offsets = self.bias_offsets
        b = None
        if offsets is not None:
            b = [grads[:, o : o + self.widths[l + 1]].copy() for l, o in enumerate(offsets)]
        return w, b

    def per_sample_gradient_moments(
        self, data: Dataset, *, n_threads: int | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Moments of the per-sample gradients g_i (all parameters) of the data term
        1/2 ||y_i - f(x_i)||^2 of each training sample, at every member's current state.

        Returns
        -------
        (mean_sq, sq_mean) : ndarrays, shape (M,)
            mean_sq = (1/n) sum_i ||g_i||^2 and sq_mean = ||(1/n) sum_i g_i||^2, so that
            tr Cov(g) = mean_sq - sq_mean (see :func:`grokescape.sgd_noise.gradient_noise_scale`).
        """
        data = self._check_data(data)
        return self._engine.gradient_moments(data, n_threads)

    # ------------------------------------------------------------------ member states
    def snapshot(self) -> EnsembleSnapshot:
        """Copies of every member's complete dynamical state (see :class:`EnsembleSnapshot`).

        ``ens.restore(snap)`` (or restoring into another ensemble of the same networks) and
        running on gives bit for bit what running on from the moment of the snapshot gives.
        """
        with self._engine.exclusive("snapshot"):
            arrays = {name: a.copy() for name, a in self._engine.state_arrays().items()}
        return EnsembleSnapshot(
            **arrays,
            widths=tuple(self.widths),
            dtype=self.dtype.name,
            bias=self.bias,
            activation=self.activation,
        )

    def restore(self, snapshot: EnsembleSnapshot, members: ArrayLike | None = None) -> None:
        """Set members' states from a snapshot.

        Parameters
        ----------
        snapshot : EnsembleSnapshot
            Of networks with the same widths, dtype, biases and activation.
        members : array of int, optional
            Member members[k] takes the snapshot's member k. None: the snapshot has one state
            per member and member k takes state k.
        """
        if not isinstance(snapshot, EnsembleSnapshot):
            raise TypeError(
                f"snapshot: expected an EnsembleSnapshot, got {type(snapshot).__name__}"
            )
        mine = (tuple(self.widths), self.dtype.name, self.bias, self.activation)
        theirs = (snapshot.widths, snapshot.dtype, snapshot.bias, snapshot.activation)
        if mine != theirs:
            raise ValueError(
                f"snapshot: of networks {theirs} (widths, dtype, bias, activation), "
                f"this ensemble has {mine}"
            )
        n = snapshot.n_members
        if members is None:
            if n != self.n_members:
                raise ValueError(
                    f"snapshot: holds {n} members, this ensemble has {self.n_members}; "
                    "say which members take them (members=...)"
                )
            target = np.arange(n, dtype=np.int64)
        else:
            target = self._member_indices(members, "members")
            if target.size != n:
                raise ValueError(f"members: expected {n} indices (one per snapshot member)")
        source = core.EnsembleState(
            layout=self._network.layout,
            **{name: np.ascontiguousarray(getattr(snapshot, name)) for name in _SNAPSHOT_FIELDS},
        )
        with self._engine.exclusive("restore"):
            self._engine.copy_members(source, np.arange(n), self._engine.core_state, target)

    def clone(
        self,
        source: ArrayLike,
        target: ArrayLike,
        *,
        streams: ArrayLike | None = None,
        data: Dataset | None = None,
        batch_size: int | None = None,
        sampling: str = "epoch",
    ) -> None:
        """Member target[k] takes the state of member source[k] (copied first, so a member
        may be both a source and a target).

        Parameters
        ----------
        source, target : arrays of int, the same length
        streams : array of int, optional
            Continue target[k] with the fresh random stream streams[k] (a branch, as
            splitting methods need): its Langevin noise, with-replacement batches and
            later epochs' permutations come from that stream, while the epoch in progress
            finishes in the order it began (the samples left in it are part of the Markov
            state). Without streams the clone replays its source exactly.
        data, batch_size, sampling
            With streams and epoch sampling: the run the clone continues, which fixes where
            the epoch in progress ends.
        """
        src = self._member_indices(source, "source")
        dst = self._member_indices(target, "target")
        if src.size != dst.size:
            raise ValueError(f"target: expected {src.size} indices (one per source member)")
        new_streams = None
        per_epoch = 0
        if streams is not None:
            arr = np.asarray(streams)
            if (
                arr.shape != src.shape
                or not np.issubdtype(arr.dtype, np.integer)
                or np.any(arr < 0)
            ):
                raise ValueError(f"streams: expected {src.size} non-negative integers")
            new_streams = arr.astype(np.uint64)
            if data is None:
                raise ValueError("data: a branch (streams=...) needs the run's data and batch size")
            core_batch, per_epoch = batch_plan(self._check_data(data), batch_size, sampling)
            if core_batch == 0 or sampling != "epoch":
                per_epoch = 0  # no epoch order to keep
        with self._engine.exclusive("clone"):
            self._engine.copy_members(
                self._engine.core_state, src, self._engine.core_state, dst, new_streams, per_epoch
            )

    def _member_indices(self, members: ArrayLike, name: str) -> NDArray[np.int64]:
        arr = np.asarray(members)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise ValueError(f"{name}: expected a 1-d array of member indices")
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_members):
            raise ValueError(f"{name}: member indices must lie in [0, {self.n_members})")
        return arr.astype(np.int64)

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
        temp_arr = _checks.per_member(temperature, "temperature", m, low=0.0, low_inclusive=True)
        stages = Stages(
            end=np.array([steps], dtype=np.int64),
            lr=lr_arr[None, :],
            beta=self._beta(beta)[None, :],
            temperature=temp_arr[None, :],
        )
        record_every = _checks.integer(record_every, "record_every", minimum=0)
        n_rec = steps // record_every + 2 if record_every > 0 else 1
        self._engine.check_record_memory(n_rec, data)
        if record_every > 0:
            record_at = np.unique(np.append(np.arange(0, steps + 1, record_every), steps))
        else:
            record_at = np.array([steps], dtype=np.int64)
        return self._engine.train(
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
        data = self._check_data(data)
        end, lr, beta, temp = resolve_stages(schedule, self.n_members)
        stages = Stages(end=end, lr=lr, beta=beta, temperature=temp)
        total = stages.total
        record_every = _checks.integer(record_every, "record_every", minimum=0)
        n_rec = len(end) + 1 + (total // record_every if record_every else 0)
        self._engine.check_record_memory(n_rec, data)
        marks = [np.array([0]), end]
        if record_every:
            marks.append(np.arange(record_every, total + 1, record_every))
        record_at = np.unique(np.concatenate(marks)).astype(np.int64)
        return self._engine.train(
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
        refill_base: int | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: float = 60.0,
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
            refill_base + (k - 1) M + m, so results do not depend on threads or chunking.
        refill_base : int, optional
            Stream of slot 0's first refilled trajectory; default max(initial streams) + 1.
            Runs that share a cell of a sweep give each run its own range
            (:mod:`grokescape.sweep`).
        checkpoint : path, optional
            Save the run's position (member states, slots, the trajectories that ended,
            the step reached) to this ``.npz`` file every `checkpoint_every` seconds of wall
            time, at a point where every member stands at the same step, at a Ctrl-C and at
            the end; each write is atomic (a temporary file, fsync, rename). If the file
            exists when the run starts, the run resumes from it and its result is bit for
            bit that of an uninterrupted run; a finished run's checkpoint gives its result
            again without computing. A checkpoint of another run (other arguments, data,
            network or starting states) is refused with a ValueError.
        checkpoint_every : float
            Seconds between checkpoints (0: at every such point, about every call).

        Returns
        -------
        EscapeResult
            One row per trajectory. Afterwards each member holds the final state of its
            last trajectory (its stream and step counter continue it under :meth:`train`).
            On Ctrl-C the partial result is kept in ``last_escape_result``.
        """
        data = self._check_data(data)
        max_steps = _checks.integer(max_steps, "max_steps", minimum=1)
        m = self.n_members
        return self._engine.run_until_escape(
            data,
            criterion,
            max_steps,
            _checks.per_member(lr, "lr", m, low=0.0, low_inclusive=False),
            self._beta(beta),
            _checks.per_member(temperature, "temperature", m, low=0.0, low_inclusive=True),
            batch_size=batch_size,
            sampling=sampling,
            seed=seed,
            refill=refill,
            n_threads=n_threads,
            progress=progress,
            refill_base=None if refill_base is None else _checks.seed(refill_base, "refill_base"),
            checkpoint=checkpoint,
            checkpoint_every=_checks.non_negative(checkpoint_every, "checkpoint_every"),
        )

    # ------------------------------------------------------------------ splitting (low level)
    def ams_runs(
        self,
        data: Dataset,
        criterion: ModeThreshold | TestMSEThreshold,
        *,
        n: int,
        k: int,
        runs: int,
        z_a: float,
        z_b: float,
        lr: ArrayLike,
        beta: ArrayLike,
        temperature: ArrayLike,
        batch_size: int | None = None,
        sampling: str = "epoch",
        seed: int = 0,
        horizon: int = 0,
        score_every: int = 1,
        quantum: float = 0.0,
        max_iterations: int = -1,
        first_run: int = 0,
        naive: bool = False,
        n_threads: int | None = None,
        progress: bool = False,
    ) -> tuple[dict[str, NDArray[Any]], bool]:
        """Adaptive multilevel splitting runs from this ensemble's member states: the
        building block of :mod:`grokescape.splitting` (use its functions).

        The ensemble holds ``runs x n`` members; run r's n replicas start from members
        [r n, (r + 1) n) (each continued with a fresh random stream). The score is the
        criterion's (mode amplitude, singular value or minus the test MSE); A = {score <=
        z_a}, B = {score >= z_b}, scores every `score_every` steps, rounded down to
        multiples of `quantum` (0: exact); with a `horizon` replicas also end at that age.
        Run ids first_run, first_run + 1, ... address the runs' random streams.
        ``naive=True`` is the biased variant the tests use as a negative control.

        Returns
        -------
        (results, interrupted)
            Per finished run: run, p, weight, iterations, killed, in_b, reactive_age (sum of
            the ages at which replicas reached B), member_steps, last_level, done.
        """
        data = self._check_data(data)
        kind, index = _score_of(self, data, criterion)
        if self.n_members != runs * n:
            raise ValueError(
                f"runs: this ensemble holds {self.n_members} members, not {runs} x {n}"
            )
        core_batch, per_epoch = batch_plan(data, batch_size, sampling)
        options = core.SplittingOptions(
            n_replicas=n, n_kill=k, z_a=float(z_a), z_b=float(z_b), horizon=int(horizon),
            score_every=int(score_every), quantum=float(quantum),
            max_iterations=int(max_iterations), naive=bool(naive),
            batches_per_epoch=per_epoch if core_batch and sampling == "epoch" else 0,
        )  # fmt: skip
        m = self.n_members
        return self._engine.splitting(
            data, kind, index, options, runs, first_run,
            _checks.per_member(lr, "lr", m, low=0.0, low_inclusive=False), self._beta(beta),
            _checks.per_member(temperature, "temperature", m, low=0.0, low_inclusive=True),
            batch_size=batch_size, sampling=sampling, seed=seed, n_threads=n_threads,
            progress=progress,
        )  # fmt: skip

    def trap_loops(
        self,
        data: Dataset,
        criterion: ModeThreshold | TestMSEThreshold,
        steps: int,
        *,
        z_a: float,
        z_sigma: float,
        z_b: float,
        lr: ArrayLike,
        beta: ArrayLike,
        temperature: ArrayLike,
        batch_size: int | None = None,
        sampling: str = "epoch",
        seed: int = 0,
        score_every: int = 1,
        quantum: float = 0.0,
        pool_per_member: int = 16,
        n_threads: int | None = None,
        progress: bool = False,
    ) -> tuple[Any, dict[str, NDArray[Any]], bool]:
        """Stage 1 of :func:`grokescape.splitting.mean_escape_time` (use that): every member,
        starting in A, is followed for `steps` steps through loops A -> Sigma -> A, with
        A = {score <= z_a}, Sigma = {score >= z_sigma}; a member reaching B = {score >=
        z_b} starts again from its initial state with a fresh stream.

        Returns
        -------
        (events, pool, interrupted)
            events: a DataFrame with member, kind ("up": A -> Sigma, "loop": A -> Sigma ->
            A, "reactive": Sigma -> B, "open": the loop each member is in when the steps
            end, so far), duration and at (steps); pool: the member states at
            the first `pool_per_member` Sigma crossings of each member (arrays params,
            steps, streams, order_streams, order_epochs, member).
        """
        data = self._check_data(data)
        kind, index = _score_of(self, data, criterion)
        steps = _checks.integer(steps, "steps", minimum=1)
        m = self.n_members
        options = core.LoopOptions(
            z_a=float(z_a), z_sigma=float(z_sigma), z_b=float(z_b), score_every=int(score_every),
            quantum=float(quantum), pool_per_member=int(pool_per_member),
            refill_base=int(self._engine.streams.max()) + 1,
        )  # fmt: skip
        return self._engine.trap_loops(
            data, kind, index, options, steps,
            _checks.per_member(lr, "lr", m, low=0.0, low_inclusive=False), self._beta(beta),
            _checks.per_member(temperature, "temperature", m, low=0.0, low_inclusive=True),
            batch_size=batch_size, sampling=sampling, seed=seed, n_threads=n_threads,
            progress=progress,
        )  # fmt: skip

    @property
    def streams(self) -> NDArray[np.uint64]:
        """Random stream (trajectory id) of each member (read-only)."""
        return self._read_only(self._engine.streams)

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
        new_steps = None
        if steps is not None:
            st = np.asarray(steps)
            if (
                st.shape != (self.n_members,)
                or not np.issubdtype(st.dtype, np.integer)
                or np.any(st < 0)
            ):
                raise ValueError(f"steps: expected {self.n_members} non-negative integers")
            new_steps = st
        with self._engine.exclusive("set_streams"):
            self._engine.streams[:] = arr.astype(np.uint64)
            self._engine.order_epochs[:] = -1  # a new stream starts its own sample order
            if new_steps is not None:
                self._engine.steps[:] = new_steps

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
        return self._engine.step_kernel(data, batch_size, sampling)


def _score_of(ens: Ensemble, data: Dataset, criterion: Any) -> tuple[Any, int]:
    """The core's score kind and index of a criterion (its threshold is not used)."""
    if isinstance(criterion, ModeThreshold):
        if criterion.on not in ("lambda", "sv"):
            raise ValueError(f"criterion.on: expected 'lambda' or 'sv', got {criterion.on!r}")
        n_idx = data.n_modes if criterion.on == "lambda" else min(ens.widths[0], ens.widths[-1])
        idx = _checks.integer(criterion.mode, "criterion.mode", minimum=0)
        if idx >= n_idx:
            raise ValueError(f"criterion.mode: {idx} is out of range (the data has {n_idx})")
        kind = (
            core.CriterionKind.mode_amplitude
            if criterion.on == "lambda"
            else core.CriterionKind.singular_value
        )
        return kind, idx
    if isinstance(criterion, TestMSEThreshold):
        if data.n_test == 0:
            raise ValueError("criterion: TestMSEThreshold needs test data in the Dataset")
        return core.CriterionKind.test_mse, 0
    raise TypeError(
        f"criterion: expected a ModeThreshold or TestMSEThreshold, got {type(criterion).__name__}"
    )
