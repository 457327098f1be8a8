"""Initial states for escape experiments: aligned traps built from the theory, the paper's
checkpoint protocol (train to convergence at beta = 0, then at beta_trap), and the random
residual that is added to a trap to let it escape.

Physics (physics.md section 5): in a bias-free linear network the set of weights in which
every layer has rank <= r is invariant under SGD, so an exactly trapped state (residual 0)
never escapes under pure SGD. Escape needs a residual in the unlearned directions, additive
noise, or something else that breaks the invariance; here the residual is an explicit,
recorded setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from grokescape import _checks
from grokescape._native import core

if TYPE_CHECKING:
    from grokescape.data import Dataset
    from grokescape.ensemble import Ensemble

__all__ = [
    "add_random_residual",
    "aligned_weights",
    "checkpoint_trap",
    "layer_residuals",
    "random_residual",
]


def _learned_modes(learned: int | Sequence[int], n_modes: int) -> list[int]:
    if isinstance(learned, (int, np.integer)) and not isinstance(learned, bool):
        r = _checks.integer(learned, "learned", minimum=0)
        if r > n_modes:
            raise ValueError(f"learned: rank {r} exceeds the data's {n_modes} modes")
        return list(range(r))
    if isinstance(learned, bool):
        raise TypeError("learned: expected a rank or a sequence of mode indices, got a bool")
    modes = sorted({_checks.integer(i, "learned", minimum=0) for i in learned})
    if modes and modes[-1] >= n_modes:
        raise ValueError(f"learned: mode {modes[-1]} out of range (the data has {n_modes})")
    return modes


def aligned_weights(
    data: Dataset,
    widths: Sequence[int],
    learned: int | Sequence[int],
    beta: float,
    *,
    residual: float = 0.0,
    residual_kind: str = "channel",
    n_members: int | None = None,
    seed: int = 0,
    streams: ArrayLike | None = None,
) -> list[NDArray[np.float64]]:
    """Weights of an aligned trap state built analytically on the data's modes.

    Mode i uses hidden channel i of every hidden layer. A learned mode sits at the theory's
    learned minimum lambda_min(eta_hat_i, beta), balanced: every layer carries
    s_i = lambda_min^(1/L) (the first layer's row is s_i Sigma_xx^(-1) v_i so that the
    amplitude is exact for any data; it is balanced when Sigma_xx = I, e.g. exact-moment
    data). Unlearned modes are at zero plus an explicit residual.

    Parameters
    ----------
    data : Dataset
    widths : sequence of int
        Network widths; every hidden width must be >= the number of modes.
    learned : int or sequence of int
        Rank r (the r strongest modes are learned) or the indices of learned modes.
    beta : float
        L2 strength at which lambda_min is taken (the trap's beta).
    residual : float
        Size of the residual in the unlearned directions (0: exactly trapped).
    residual_kind : {"channel", "random"}
        "channel": each unlearned mode i gets per-layer amplitude `residual` in its own
        hidden channel (so lambda_i = residual^L), the same for every member.
        "random": every layer gets :func:`random_residual` of Frobenius norm `residual` with
        the learned channels excluded (off the learned manifold), drawn per member from the
        stream (seed, member, purpose "residual").
    n_members : int or None
        Number of members for per-member arrays; None returns one network
        (not allowed with residual_kind="random").
    seed : int
    streams : array of int, optional
        With residual_kind="random": the random stream of each member's residual
        (default: member m draws from stream m), see :func:`random_residual`.

    Returns
    -------
    list of arrays
        Layer l as (out, in), or (n_members, out, in) when n_members is given.
    """
    from grokescape import theory

    widths = [_checks.integer(w, "widths", minimum=1) for w in widths]
    depth = len(widths) - 1
    if depth < 1 or widths[0] != data.d_in or widths[-1] != data.d_out:
        raise ValueError(f"widths: expected [{data.d_in}, ..., {data.d_out}], got {widths}")
    r = data.n_modes
    if any(h < r for h in widths[1:-1]):
        raise ValueError(f"widths: every hidden width must be >= the {r} modes (one channel each)")
    modes = _learned_modes(learned, r)
    beta = float(_checks.finite_array(beta, "beta"))
    if beta < 0:
        raise ValueError(f"beta: expected >= 0, got {beta}")
    residual = float(_checks.finite_array(residual, "residual"))
    if residual < 0:
        raise ValueError(f"residual: expected >= 0, got {residual}")
    if residual_kind not in ("channel", "random"):
        raise ValueError(f"residual_kind: expected 'channel' or 'random', got {residual_kind!r}")
    if residual_kind == "random" and n_members is None and residual > 0:
        raise ValueError("n_members: a random residual is drawn per member; give n_members")

    lam_min = np.asarray(theory.stationary_points(data.eta_hat, beta, depth).minimum, dtype=float)
    amp = np.zeros(r)
    for i in modes:
        if not np.isfinite(lam_min[i]) or lam_min[i] <= 0:
            raise ValueError(
                f"learned: mode {i} (eta_hat={data.eta_hat[i]:.4g}) has no learned minimum at "
                f"beta={beta:.4g}"
            )
        amp[i] = lam_min[i] ** (1.0 / depth)
    if residual_kind == "channel":
        for i in range(r):
            if i not in modes:
                amp[i] = residual
    in_dirs = np.linalg.pinv(data.sigma_xx) @ data.mode_in  # columns: Sigma_xx^-1 v_i
    weights = []
    for l in range(depth):
        w = np.zeros((widths[l + 1], widths[l]))
        for i in range(r):
            col = in_dirs[:, i] if l == 0 else np.eye(widths[l])[:, i]
            row = data.mode_out[:, i] if l == depth - 1 else np.eye(widths[l + 1])[:, i]
            w += amp[i] * np.outer(row, col)
        weights.append(w)
    if n_members is None:
        return weights
    n_members = _checks.integer(n_members, "n_members", minimum=1)
    stacked = [np.repeat(w[None], n_members, axis=0) for w in weights]
    if residual_kind == "random" and residual > 0:
        noise = random_residual(
            widths, n_members, residual, seed=seed, exclude_channels=modes, streams=streams
        )
        for layer, extra in zip(stacked, noise, strict=True):
            layer += extra
    return stacked


def random_residual(
    widths: Sequence[int],
    n_members: int,
    size: float,
    *,
    seed: int = 0,
    exclude_channels: Sequence[int] = (),
    streams: ArrayLike | None = None,
) -> list[NDArray[np.float64]]:
    """A random residual: for every member, one Gaussian matrix per layer of Frobenius norm
    `size`.

    Parameters
    ----------
    widths : sequence of int
        Network widths [d_in, h_1, ..., d_out].
    n_members : int
        Number of members; each gets its own draw.
    size : float
        Frobenius norm of every layer's matrix (0 gives zeros).
    seed : int
    exclude_channels : sequence of int
        Hidden channels the residual leaves alone: their rows (where the channel is a
        layer's output) and columns (where it is a layer's input) are zeroed before the
        scaling, so the residual lies off these channels (an aligned trap's learned ones).
    streams : array of int, optional
        The random stream of each member (default 0, 1, ..., n_members - 1): a sweep that
        splits trajectories into tasks draws trajectory i's residual from stream i.

    Returns
    -------
    list of arrays
        Layer l as (n_members, out, in).

    Notes
    -----
    Member m draws from the random stream (seed, streams[m], step 0, purpose "residual"):
    one row of standard normals whose consecutive blocks are the layers' matrices, layer 1
    first, each row-major (out, in). A member's residual therefore depends neither on the
    ensemble's size nor on the thread count. A layer with no entry left free gets zeros.
    """
    widths = [_checks.integer(w, "widths", minimum=1) for w in widths]
    depth = len(widths) - 1
    if depth < 1:
        raise ValueError(f"widths: expected at least [d_in, d_out], got {widths}")
    n_members = _checks.integer(n_members, "n_members", minimum=1)
    size = float(_checks.finite_array(size, "size"))
    if size < 0:
        raise ValueError(f"size: expected >= 0, got {size}")
    channels = sorted({_checks.integer(c, "exclude_channels", minimum=0) for c in exclude_channels})
    hidden = widths[1:-1]
    if channels and hidden and channels[-1] >= min(hidden):
        raise ValueError(
            f"exclude_channels: channel {channels[-1]} out of range (narrowest hidden layer "
            f"has {min(hidden)})"
        )
    if streams is None:
        ids = np.arange(n_members, dtype=np.uint64)
    else:
        arr = np.asarray(streams)
        if arr.shape != (n_members,) or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
            raise ValueError(f"streams: expected {n_members} non-negative integers")
        ids = np.ascontiguousarray(arr, dtype=np.uint64)
    sizes = [widths[l + 1] * widths[l] for l in range(depth)]
    draws = np.empty((n_members, sum(sizes)))
    core.standard_normal(
        _checks.seed(seed),
        ids,
        0,
        core.Purpose.residual,
        draws,
        int(core.default_threads()),
    )
    out = []
    start = 0
    for l in range(depth):
        noise = draws[:, start : start + sizes[l]].reshape(n_members, widths[l + 1], widths[l])
        start += sizes[l]
        if l < depth - 1:
            noise[:, channels, :] = 0.0
        if l > 0:
            noise[:, :, channels] = 0.0
        norm = np.linalg.norm(noise.reshape(n_members, -1), axis=1)
        out.append(size * noise / np.where(norm > 0, norm, 1.0)[:, None, None])
    return out


def add_random_residual(ens: Ensemble, size: float, *, seed: int = 0) -> None:
    """Add a :func:`random_residual` of Frobenius norm `size` to every layer of every member.

    Parameters
    ----------
    ens : Ensemble
        Changed in place; biases are kept, step counters and divergence flags are reset as
        by :meth:`~grokescape.ensemble.Ensemble.set_weights`.
    size : float
        Frobenius norm of each layer's residual.
    seed : int
        Member m draws from the stream (seed, m, step 0, purpose "residual").
    """
    residual = random_residual(ens.widths, ens.n_members, size, seed=seed)
    weights = [np.asarray(w, dtype=float) + r for w, r in zip(ens.weights, residual, strict=True)]
    ens.set_weights(weights, ens.biases)


def layer_residuals(ens: Ensemble, rank: int) -> NDArray[np.float64]:
    """Per-layer residual of the unlearned directions: the largest singular value of each
    layer beyond its `rank` leading ones, shape (M, L). Zero for an exact rank-`rank` trap."""
    rank = _checks.integer(rank, "rank", minimum=0)
    out = np.zeros((ens.n_members, ens.depth))
    for l, w in enumerate(ens.weights):
        sv = np.linalg.svd(np.asarray(w, dtype=float), compute_uv=False)
        out[:, l] = sv[:, rank] if sv.shape[1] > rank else 0.0
    return out


def checkpoint_trap(
    ens: Ensemble,
    data: Dataset,
    beta_trap: float,
    *,
    lr: float = 0.08,
    batch_size: int | None = 64,
    block_epochs: int = 50,
    max_epochs: int = 5000,
    rtol: float = 1e-7,
    seed: int = 0,
    n_threads: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """The paper's trap preparation: train to convergence at beta = 0, then at beta_trap.

    Convergence test (stated, per stage): training runs in blocks of `block_epochs` epochs,
    and the exact full-batch training loss is evaluated 10 times per block. A stage has
    converged when, for every member, the mean loss of the last block differs from that of
    the block before by less than `rtol` (relative) or by less than twice the standard
    error of that difference (estimated from the spread within the blocks): with minibatch
    noise the loss fluctuates and only its level can settle. Otherwise it stops after
    `max_epochs` (reported as not converged).

    Returns
    -------
    DataFrame
        One row per member: epochs and convergence flag of each stage, final loss, per-mode
        amplitudes, singular values of the end-to-end map, and the per-layer residual of
        the unlearned directions (:func:`layer_residuals` at the rank the state ends in).
    """
    beta_trap = float(_checks.finite_array(beta_trap, "beta_trap"))
    if beta_trap < 0:
        raise ValueError(f"beta_trap: expected >= 0, got {beta_trap}")
    block_epochs = _checks.integer(block_epochs, "block_epochs", minimum=1)
    max_epochs = _checks.integer(max_epochs, "max_epochs", minimum=1)
    per_epoch = (
        1 if batch_size is None or batch_size >= data.n_train else data.n_train // batch_size
    )
    report: dict[str, Any] = {}
    block_steps = block_epochs * per_epoch
    probe = max(1, block_steps // 10)
    for name, beta in (("beta0", 0.0), ("trap", beta_trap)):
        previous: NDArray[np.float64] | None = None
        epochs = 0
        converged = False
        while epochs < max_epochs and not converged:
            hist = ens.train(
                data,
                block_steps,
                lr,
                beta,
                batch_size=batch_size,
                seed=seed,
                record_every=probe,
                n_threads=n_threads,
                progress=progress,
            )
            epochs += block_epochs
            current = hist.loss[1:]  # (samples, M), the initial row belongs to the last block
            if previous is not None:
                diff = np.abs(current.mean(axis=0) - previous.mean(axis=0))
                se = np.sqrt(
                    current.var(axis=0, ddof=1) / len(current)
                    + previous.var(axis=0, ddof=1) / len(previous)
                )
                level = np.abs(previous.mean(axis=0))
                converged = bool(np.all((diff <= rtol * level) | (diff <= 2 * se)))
            previous = current
        report[f"epochs_{name}"] = epochs
        report[f"converged_{name}"] = converged
    obs = ens.observables(data, beta_trap)
    sv_cols = [c for c in obs.columns if c.startswith("sv_")]
    rank = (obs[sv_cols].to_numpy() > 1e-3).sum(axis=1)
    obs["rank"] = rank
    for k, v in report.items():
        obs[k] = v
    res = np.stack([layer_residuals(ens, int(rk))[i] for i, rk in enumerate(rank)])
    for l in range(ens.depth):
        obs[f"residual_layer{l}"] = res[:, l]
    return obs
