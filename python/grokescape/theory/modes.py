"""The exact per-mode theory of a deep linear network under weight decay (physics.md 4, 5).

With Sigma_xx = I and aligned, balanced weights, mode i of the end-to-end map has singular
value lambda and every layer carries s = |lambda|^(1/L). The loss of one mode is

    E(lambda) = 1/2 (lambda - eta)^2 + (L beta / 2) |lambda|^(2/L)

(the *consistent* convention, the default), or in per-layer coordinates
E(s) = 1/2 (s^L - eta)^2 + (L beta / 2) s^2. The paper's printed Eq. (1) has beta / 2
instead of L beta / 2 (the *as_printed* convention); its Eqs. (2), (3), (10) and its
measured critical points follow the consistent form. The as-printed form is offered only
to show the difference: it is the consistent form with beta replaced by beta / L.

Stationary points (lambda > 0, eta > 0) solve lambda - eta + beta lambda^(2/L - 1) = 0,
or, with lambda = s^L and multiplied by s^(L-2),

    g(s) = s^(2L-2) - eta s^(L-2) + beta = 0.

- L = 1: ridge regression, lambda = eta / (1 + beta); no transition.
- L = 2: soft threshold, lambda = max(eta - beta, 0); a second-order transition at
  beta = eta.
- L >= 3: lambda = 0 (the *trap*) is a local minimum for every beta > 0. g has a single
  interior minimum at s*^L = eta (L-2) / (2L-2); for beta <= beta_c (the spinodal) it has
  two roots, the *saddle* in (0, s*) and the learned *minimum* in (s*, eta^(1/L)).
  The transition is first order; the learned state is the global minimum for
  beta < beta* (coexistence).

Negative eta is handled by the symmetry E(lambda; eta) = E(-lambda; -eta): the end-to-end
values carry the sign of eta, per-layer values are magnitudes s = |lambda|^(1/L) >= 0, and
energies, barriers and critical betas depend on |eta| only. At eta = 0 there is no learned
branch (for L >= 3 and L = 2 with beta > 0 every branch but lambda = 0 is absent).

Section 5's width-1 chain (every width 1) gives :func:`kramers_escape_time`, the
parameter-free Kramers-Langer mean escape time from the trap under Langevin noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from grokescape import _checks

if TYPE_CHECKING:
    from grokescape.data import Dataset

__all__ = [
    "CONVENTIONS",
    "KramersEscape",
    "ModeThresholds",
    "StationaryPoints",
    "aligned_map",
    "barrier",
    "chain_hessian",
    "chain_loss",
    "coexistence_beta",
    "energy",
    "energy_per_layer",
    "expected_observables",
    "kramers_escape_time",
    "mode_thresholds",
    "order_of_transition",
    "phase_diagram",
    "spinodal_beta",
    "state_mse",
    "stationary_points",
]

Array = NDArray[np.float64]

#: The two forms of the regulariser: ``"consistent"`` (L beta / 2, the default, which the
#: paper's Eqs. (2), (3), (10) use) and ``"as_printed"`` (beta / 2, the paper's Eq. (1)).
CONVENTIONS = ("consistent", "as_printed")


# ---------------------------------------------------------------------- argument checks
def _real(value: ArrayLike, name: str) -> Array:
    try:
        return _checks.finite_array(value, name)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _nonneg(value: ArrayLike, name: str) -> Array:
    arr = _real(value, name)
    if np.any(arr < 0):
        raise ValueError(f"{name}: expected values >= 0, got {arr[arr < 0].flat[0]!r}")
    return arr


def _positive(value: ArrayLike, name: str) -> Array:
    arr = _real(value, name)
    if np.any(arr <= 0):
        raise ValueError(f"{name}: expected values > 0, got {arr[arr <= 0].flat[0]!r}")
    return arr


def _convention(convention: Any) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    return str(convention)


def _beta_eff(beta: Array, depth: int, convention: str) -> Array:
    """The beta of the consistent form that reproduces `convention`."""
    return beta / depth if convention == "as_printed" else beta


def _out(arr: Array) -> Any:
    """0-d arrays become Python floats; everything else stays an array."""
    return float(arr) if np.ndim(arr) == 0 else arr


# ---------------------------------------------------------------------- energies
def energy(
    lam: ArrayLike,
    eta: ArrayLike,
    beta: ArrayLike,
    depth: int,
    convention: str = "consistent",
) -> Any:
    """Loss of one mode as a function of its end-to-end singular value.

    E(lambda) = 1/2 (lambda - eta)^2 + (L beta / 2) |lambda|^(2/L) (``"consistent"``), or
    with beta / 2 in place of L beta / 2 (``"as_printed"``, the paper's Eq. (1), offered
    only to show the difference; it contradicts the paper's later equations).

    Parameters
    ----------
    lam, eta, beta : array_like
        End-to-end amplitude, mode strength and weight decay (beta >= 0); broadcast.
    depth : int
        Number of weight matrices L >= 1.
    convention : {"consistent", "as_printed"}
        Form of the regulariser.

    Returns
    -------
    float or ndarray
        E, with the broadcast shape of the inputs.
    """
    depth = _checks.depth(depth)
    b = _beta_eff(_nonneg(beta, "beta"), depth, _convention(convention))
    lam_a, eta_a = _real(lam, "lam"), _real(eta, "eta")
    return _out(0.5 * (lam_a - eta_a) ** 2 + 0.5 * depth * b * np.abs(lam_a) ** (2.0 / depth))


def energy_per_layer(
    s: ArrayLike,
    eta: ArrayLike,
    beta: ArrayLike,
    depth: int,
    convention: str = "consistent",
) -> Any:
    """Loss of one mode in per-layer coordinates, every layer carrying amplitude s.

    E(s) = 1/2 (s^L - eta)^2 + (L beta / 2) s^2 (``"consistent"``), or with beta / 2 in
    place of L beta / 2 (``"as_printed"``, the paper's Eq. (1), only to show the
    difference). E(s) = energy(s^L, ...) for s >= 0.

    Parameters
    ----------
    s, eta, beta : array_like
        Per-layer amplitude, mode strength and weight decay (beta >= 0); broadcast.
    depth : int
        Number of weight matrices L >= 1.
    convention : {"consistent", "as_printed"}
        Form of the regulariser.

    Returns
    -------
    float or ndarray
        E, with the broadcast shape of the inputs.
    """
    depth = _checks.depth(depth)
    b = _beta_eff(_nonneg(beta, "beta"), depth, _convention(convention))
    s_a, eta_a = _real(s, "s"), _real(eta, "eta")
    return _out(0.5 * (s_a**depth - eta_a) ** 2 + 0.5 * depth * b * s_a**2)


def _delta_energy(s: Array, eta_abs: Array, beta: Array, depth: int) -> Array:
    """E(s) - E(0) (consistent form) without the cancellation of two O(eta^2) terms."""
    lam = s**depth
    return lam * (0.5 * lam - eta_abs) + 0.5 * depth * beta * s**2


# ---------------------------------------------------------------------- critical betas
def order_of_transition(depth: int) -> int | None:
    """Order of the per-mode phase transition in beta.

    Parameters
    ----------
    depth : int
        Number of weight matrices L >= 1.

    Returns
    -------
    int or None
        None for L = 1 (ridge regression: no transition), 2 for L = 2 (continuous soft
        threshold at beta = eta), 1 for L >= 3 (discontinuous, with metastability).
    """
    depth = _checks.depth(depth)
    return None if depth == 1 else (2 if depth == 2 else 1)


def _spinodal(eta_abs: Array, depth: int) -> Array:
    if depth == 1:
        return np.full_like(eta_abs, np.inf)
    if depth == 2:
        return eta_abs.copy()
    k = 2.0 / depth
    return (1.0 / (1.0 - k)) * (eta_abs * (1.0 - k) / (2.0 - k)) ** (2.0 - k)


def _coexistence(eta_abs: Array, depth: int) -> Array:
    if depth == 1:
        return np.full_like(eta_abs, np.inf)
    if depth == 2:
        return eta_abs.copy()
    return (eta_abs / (depth - 1)) * (eta_abs * (depth - 2) / (depth - 1)) ** (1.0 - 2.0 / depth)


def spinodal_beta(eta: ArrayLike, depth: int, convention: str = "consistent") -> Any:
    """Spinodal beta_c: the largest beta at which the learned branch exists.

    For L >= 3, with k = 2/L, beta_c = (1/(1-k)) (|eta| (1-k)/(2-k))^(2-k)
    (L = 3: 3 (|eta|/4)^(4/3)); above it only lambda = 0 remains. For L = 2 the
    (continuous) transition is at beta_c = |eta|; for L = 1 there is none and beta_c = inf.

    Parameters
    ----------
    eta : array_like
        Mode strengths.
    depth : int
        Number of weight matrices L >= 1.
    convention : {"consistent", "as_printed"}
        With ``"as_printed"`` the value is L times the consistent one.

    Returns
    -------
    float or ndarray
    """
    depth = _checks.depth(depth)
    scale = depth if _convention(convention) == "as_printed" else 1
    return _out(scale * _spinodal(np.abs(_real(eta, "eta")), depth))


def coexistence_beta(eta: ArrayLike, depth: int, convention: str = "consistent") -> Any:
    """Coexistence beta*: where the learned minimum and lambda = 0 have equal loss.

    For L >= 3, beta* = (|eta|/(L-1)) (|eta| (L-2)/(L-1))^(1 - 2/L) (L = 3: (|eta|/2)^(4/3));
    there the order parameter jumps by |eta| (L-2)/(L-1). For L = 2 it equals the
    spinodal |eta|; for L = 1 it is inf (the learned state is always the global minimum).

    Parameters
    ----------
    eta : array_like
        Mode strengths.
    depth : int
        Number of weight matrices L >= 1.
    convention : {"consistent", "as_printed"}
        With ``"as_printed"`` the value is L times the consistent one.

    Returns
    -------
    float or ndarray
    """
    depth = _checks.depth(depth)
    scale = depth if _convention(convention) == "as_printed" else 1
    return _out(scale * _coexistence(np.abs(_real(eta, "eta")), depth))


# ---------------------------------------------------------------------- stationary points
@dataclass(frozen=True)
class StationaryPoints:
    """Stationary points of the per-mode loss, arrays of the broadcast shape of eta, beta.

    End-to-end values carry the sign of eta; per-layer values are magnitudes
    s = |lambda|^(1/L). NaN marks a branch that does not exist.

    Attributes
    ----------
    eta, beta : ndarray
        The inputs, broadcast (beta as given, whatever the convention).
    depth : int
    convention : str
    trap, s_trap : ndarray
        lambda = 0 where it is a local minimum (or, at beta = 0, the degenerate stationary
        point the trap and saddle merge into), for L >= 3; NaN for L <= 2.
    saddle, s_saddle : ndarray
        The barrier top between trap and learned minimum (L >= 3, beta <= beta_c); at
        beta = 0 it merges with the trap (0); NaN for L <= 2.
    minimum, s_minimum : ndarray
        The learned minimum: eta / (1 + beta) for L = 1, sign(eta) max(|eta| - beta, 0)
        for L = 2, the upper root for L >= 3 (NaN above beta_c or at eta = 0).
    global_minimum : ndarray
        lambda of the global minimum: the learned minimum where beta < beta*, else 0.
    learned_is_global : ndarray of bool
        global_minimum != 0.
    energy_trap, energy_saddle, energy_minimum : ndarray
        E at the three points (in the chosen convention).
    barrier_trap, barrier_learned : ndarray
        E(saddle) - E(trap) and E(saddle) - E(minimum), computed without cancellation.
    """

    eta: Array
    beta: Array
    depth: int
    convention: str
    trap: Array
    saddle: Array
    minimum: Array
    s_trap: Array
    s_saddle: Array
    s_minimum: Array
    global_minimum: Array
    learned_is_global: NDArray[np.bool_]
    energy_trap: Array
    energy_saddle: Array
    energy_minimum: Array
    barrier_trap: Array
    barrier_learned: Array


def _bisect(func: Any, lo: Array, hi: Array, max_iter: int = 200) -> Array:
    """Vectorised bisection to adjacent doubles; func(lo) and func(hi) differ in sign."""
    f_lo = np.sign(func(lo))
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        done = (mid == lo) | (mid == hi)
        if np.all(done):
            break
        move_lo = (np.sign(func(mid)) == f_lo) & ~done
        lo = np.where(move_lo, mid, lo)
        hi = np.where(~move_lo & ~done, mid, hi)
    return np.where(np.abs(func(lo)) <= np.abs(func(hi)), lo, hi)


def _deep_roots(eta_abs: Array, beta: Array, depth: int) -> tuple[Array, Array]:
    """Per-layer saddle and learned roots of g(s) = s^(L-2)(s^L - eta) + beta for L >= 3.

    The brackets are exact: the saddle lies in [(beta/eta)^(1/(L-2)), s*] (and below
    (beta (2L-2)/(eta L))^(1/(L-2))), the learned root in [s*, eta^(1/L)]. Existence is
    decided by the closed-form spinodal; where rounding puts g(s*) above 0 although
    beta <= beta_c, both roots are s* (they merge there).
    """
    L = depth
    s_sad = np.full(eta_abs.shape, np.nan)
    s_min = np.full(eta_abs.shape, np.nan)
    zero_beta = (beta == 0) & (eta_abs > 0)
    s_sad[zero_beta] = 0.0
    s_min[zero_beta] = eta_abs[zero_beta] ** (1.0 / L)
    ok = (beta > 0) & (eta_abs > 0) & (beta <= _spinodal(eta_abs, L))
    if np.any(ok):
        e, b = eta_abs[ok], beta[ok]

        def g(s: Array) -> Array:
            return s ** (L - 2) * (s**L - e) + b

        s_star = (e * (L - 2) / (2 * L - 2)) ** (1.0 / L)
        merged = g(s_star) >= 0
        lo = np.minimum((b / e) ** (1.0 / (L - 2)), s_star)
        hi = np.minimum((b * (2 * L - 2) / (e * L)) ** (1.0 / (L - 2)), s_star)
        sad = _bisect(g, lo, hi)
        mn = _bisect(g, s_star, e ** (1.0 / L))
        sad[merged] = s_star[merged]
        mn[merged] = s_star[merged]
        s_sad[ok], s_min[ok] = sad, mn
    return s_sad, s_min


def stationary_points(
    eta: ArrayLike,
    beta: ArrayLike,
    depth: int,
    convention: str = "consistent",
) -> StationaryPoints:
    """All stationary points of the per-mode loss E(lambda) (module docstring).

    Roots are found by vectorised bisection on exact brackets to adjacent doubles, so
    they are accurate to rounding wherever the root is well conditioned (everywhere but
    within ~sqrt(eps) of the spinodal, where saddle and minimum merge).

    Parameters
    ----------
    eta, beta : array_like
        Mode strengths (any sign; see the module docstring) and weight decay (>= 0);
        broadcast against each other.
    depth : int
        Number of weight matrices L >= 1.
    convention : {"consistent", "as_printed"}
        Form of the regulariser (``"as_printed"`` = consistent with beta / L).

    Returns
    -------
    StationaryPoints

    Notes
    -----
    At beta = 0 and L >= 3 the loss is 1/2 (lambda - eta)^2: the only minimum is
    lambda = eta, and lambda = 0 is a degenerate stationary point of the per-layer loss
    (a flat higher-order saddle, which exactly-zero weights never leave). It is reported
    as trap = saddle = 0 with zero barrier, the beta -> 0+ limit of both branches.
    """
    depth = _checks.depth(depth)
    convention = _convention(convention)
    eta_a, beta_a = np.broadcast_arrays(_real(eta, "eta"), _nonneg(beta, "beta"))
    eta_a, beta_a = eta_a.astype(float), beta_a.astype(float)
    b = _beta_eff(beta_a, depth, convention)
    e = np.abs(eta_a)
    sign = np.where(eta_a < 0, -1.0, 1.0)
    nan = np.full(e.shape, np.nan)
    if depth == 1:
        lam_min = eta_a / (1.0 + b)
        s_min = np.abs(lam_min)
        s_trap = s_sad = nan
        global_lam = lam_min
    elif depth == 2:
        s_min = np.sqrt(np.maximum(e - b, 0.0))
        lam_min = sign * s_min**2
        s_trap = s_sad = nan
        global_lam = lam_min
    else:
        s_sad, s_min = _deep_roots(e, b, depth)
        lam_min = sign * s_min**depth
        s_trap = np.zeros(e.shape)
        learned = (b < _coexistence(e, depth)) & (e > 0)
        global_lam = np.where(learned, lam_min, 0.0)
    lam_sad = sign * s_sad**depth
    lam_trap = s_trap * 0.0
    e0 = 0.5 * e**2
    d_sad = _delta_energy(s_sad, e, b, depth)
    d_min = _delta_energy(s_min, e, b, depth)
    d_trap = np.where(np.isnan(s_trap), np.nan, 0.0)
    return StationaryPoints(
        eta=eta_a,
        beta=beta_a,
        depth=depth,
        convention=convention,
        trap=lam_trap,
        saddle=lam_sad,
        minimum=lam_min,
        s_trap=s_trap,
        s_saddle=s_sad,
        s_minimum=s_min,
        global_minimum=global_lam,
        learned_is_global=global_lam != 0,
        energy_trap=e0 + d_trap,
        energy_saddle=e0 + d_sad,
        energy_minimum=e0 + d_min,
        barrier_trap=d_sad - d_trap,
        barrier_learned=d_sad - d_min,
    )


def barrier(
    eta: ArrayLike,
    beta: ArrayLike,
    depth: int,
    start: str = "trap",
    convention: str = "consistent",
) -> Any:
    """Height of the barrier between trap and learned minimum, E(saddle) - E(start).

    Parameters
    ----------
    eta, beta : array_like
        Mode strengths and weight decay (>= 0), broadcast.
    depth : int
        Number of weight matrices L >= 1. There is no barrier for L <= 2 (NaN).
    start : {"trap", "learned"}
        Escape from lambda = 0 (dE = E(saddle) - E(0); for L = 3 and small beta,
        dE ~ beta^3 / (2 eta^2)) or from the learned minimum back to the trap.
    convention : {"consistent", "as_printed"}
        Form of the regulariser.

    Returns
    -------
    float or ndarray
        NaN where the saddle does not exist (beta > beta_c, eta = 0, L <= 2).
    """
    if start not in ("trap", "learned"):
        raise ValueError(f"start: expected 'trap' or 'learned', got {start!r}")
    sp = stationary_points(eta, beta, depth, convention)
    return _out(sp.barrier_trap if start == "trap" else sp.barrier_learned)


@dataclass(frozen=True)
class ModeThresholds:
    """Amplitudes that separate the unlearned from the learned state of a mode.

    Attributes
    ----------
    lam, s : ndarray
        Midpoints (lower + minimum) / 2 in end-to-end and in per-layer coordinates, where
        the lower end is the saddle for L >= 3 and 0 for L <= 2. NaN where the learned
        branch does not exist (or sits at 0). Note s != |lam|^(1/L): each is the
        midpoint in its own coordinate.
    lam_lower, lam_minimum : ndarray
        The two ends in lambda (saddle or 0, learned minimum).
    """

    lam: Array
    s: Array
    lam_lower: Array
    lam_minimum: Array


def mode_thresholds(eta: ArrayLike, beta: ArrayLike, depth: int) -> ModeThresholds:
    """Escape thresholds for a mode: halfway from the barrier top to the learned minimum.

    An amplitude above the threshold has crossed the saddle (for L >= 3) and is well on
    its way to the learned minimum, so it is a robust "this mode has been learned" test
    for runs and for the core's escape criteria (consistent convention).

    Parameters
    ----------
    eta, beta : array_like
        Mode strengths and weight decay (>= 0), broadcast.
    depth : int
        Number of weight matrices L >= 1.

    Returns
    -------
    ModeThresholds
    """
    sp = stationary_points(eta, beta, depth)
    if sp.depth >= 3:
        lower, s_lower = sp.saddle, sp.s_saddle
    else:
        lower, s_lower = np.zeros_like(sp.minimum), np.zeros_like(sp.minimum)
    absent = ~np.isfinite(sp.minimum) | (sp.minimum == 0)
    lam = np.where(absent, np.nan, 0.5 * (lower + sp.minimum))
    s = np.where(absent, np.nan, 0.5 * (s_lower + sp.s_minimum))
    return ModeThresholds(lam=lam, s=s, lam_lower=lower, lam_minimum=sp.minimum)


# ---------------------------------------------------------------------- width-1 chain
def chain_loss(weights: ArrayLike, eta: ArrayLike, beta: ArrayLike) -> Any:
    """Loss of the width-1 chain U(w) = 1/2 (w_1 ... w_L - eta)^2 + beta/2 sum_l w_l^2.

    Parameters
    ----------
    weights : array_like, shape (..., L)
        The L scalar weights (last axis).
    eta, beta : array_like
        Broadcast against weights[..., 0].

    Returns
    -------
    float or ndarray, shape (...)
    """
    w = _real(weights, "weights")
    if w.ndim < 1 or w.shape[-1] < 1:
        raise ValueError(f"weights: expected shape (..., L) with L >= 1, got {w.shape}")
    eta_a, beta_a = _real(eta, "eta"), _nonneg(beta, "beta")
    return _out(0.5 * (np.prod(w, axis=-1) - eta_a) ** 2 + 0.5 * beta_a * np.sum(w**2, axis=-1))


def chain_hessian(weights: ArrayLike, eta: ArrayLike, beta: ArrayLike) -> Array:
    """Exact Hessian of :func:`chain_loss`.

    With P the product of all weights, P_l the product without w_l and P_lm the product
    without w_l and w_m: H_ll = P_l^2 + beta and H_lm = P_l P_m + (P - eta) P_lm (l != m).
    Products are formed directly (no division), so zero weights are fine.

    Parameters
    ----------
    weights : array_like, shape (..., L)
    eta, beta : array_like
        Broadcast against weights[..., 0].

    Returns
    -------
    ndarray, shape (..., L, L)
    """
    w = _real(weights, "weights")
    if w.ndim < 1 or w.shape[-1] < 1:
        raise ValueError(f"weights: expected shape (..., L) with L >= 1, got {w.shape}")
    eta_a, beta_a = _real(eta, "eta"), _nonneg(beta, "beta")
    n = w.shape[-1]
    idx = np.arange(n)
    keep = (idx[None, None, :] != idx[:, None, None]) & (idx[None, None, :] != idx[None, :, None])
    p_lm = np.prod(np.where(keep, w[..., None, None, :], 1.0), axis=-1)  # (..., L, L)
    p_l = np.diagonal(p_lm, axis1=-2, axis2=-1)  # P_l (l == m excludes one weight)
    resid = (np.prod(w, axis=-1) - eta_a)[..., None, None]
    eye = np.eye(n, dtype=bool)
    h = p_l[..., :, None] * p_l[..., None, :] + np.where(eye, 0.0, resid * p_lm)
    return h + np.asarray(beta_a)[..., None, None] * np.eye(n)


@dataclass(frozen=True)
class KramersEscape:
    """Kramers-Langer prediction for the escape of the width-1 chain from the trap.

    Attributes
    ----------
    tau : ndarray
        Mean escape time in continuous time (units of lr * steps); shape
        broadcast(eta, beta, temperature). NaN where there is no barrier.
    tau_steps : ndarray or None
        tau / lr in SGD steps, when lr was given.
    rate : ndarray
        Total escape rate 1 / tau = n_saddles * prefactor * exp(-barrier / T).
    prefactor : ndarray
        Attempt frequency through one saddle,
        |mu_u| / (2 pi) sqrt(det H_trap / |det H_saddle|); shape broadcast(eta, beta).
    barrier : ndarray
        dE = U(saddle) - U(trap) = E(saddle) - E(0).
    barrier_over_T : ndarray
        dE / T; the formula needs it >> 1.
    hessian_trap, hessian_saddle : ndarray, shape (..., L)
        Hessian eigenvalues (ascending) at w = 0 (all beta) and at the balanced saddle
        w = s_sad (1, ..., 1) (L s^(2L-2) - (L-2) beta once, 2 beta L-1 times).
    unstable_eigenvalue : ndarray
        mu_u, the negative eigenvalue at the saddle.
    n_saddles : int
        2^(L-1), the sign patterns of the saddle with positive product.
    temperature : ndarray
    lr : float or ndarray or None
    """

    tau: Array
    tau_steps: Array | None
    rate: Array
    prefactor: Array
    barrier: Array
    barrier_over_T: Array
    hessian_trap: Array
    hessian_saddle: Array
    unstable_eigenvalue: Array
    n_saddles: int
    temperature: Array
    lr: Any


def kramers_escape_time(
    eta: ArrayLike,
    beta: ArrayLike,
    depth: int,
    temperature: ArrayLike,
    lr: ArrayLike | None = None,
) -> KramersEscape:
    """Mean escape time from the trap w = 0 of the width-1 chain under Langevin noise.

    Model (physics.md section 5): all widths 1, scalar weights w_1..w_L, a single mode
    with Sigma_xx = 1 and the consistent convention,
    U(w) = 1/2 (w_1 ... w_L - eta)^2 + beta/2 sum_l w_l^2, and the dynamics
    w <- w - lr grad U + sqrt(2 lr T) xi. The Kramers-Langer rate through one saddle is
    k = (|mu_u| / 2 pi) sqrt(det H_trap / |det H_saddle|) exp(-dE / T) and
    tau = 1 / (n_saddles k) with n_saddles = 2^(L-1) (every sign pattern of the balanced
    saddle with positive product leads to a learned minimum). Hessians are exact
    (:func:`chain_hessian`).

    Assumptions: dE / T >> 1 (check ``barrier_over_T``), lr small enough that the
    discrete dynamics sample exp(-U / T), a single mode, widths 1, beta < beta_c.

    Parameters
    ----------
    eta, beta : array_like
        Mode strength and weight decay, broadcast with each other and with temperature.
    depth : int
        L >= 3 (there is no barrier at L = 1 or 2).
    temperature : array_like
        Langevin temperature T > 0.
    lr : array_like, optional
        Learning rate (> 0) to convert tau into steps.

    Returns
    -------
    KramersEscape
        NaN entries where beta = 0, beta >= beta_c or eta = 0 (no barrier).
    """
    depth = _checks.depth(depth, minimum=3)
    temp = _positive(temperature, "temperature")
    lr_a = None if lr is None else _positive(lr, "lr")
    sp = stationary_points(eta, beta, depth)
    e, b = np.abs(sp.eta), sp.beta
    valid = (b > 0) & (e > 0) & (b < _spinodal(e, depth))
    s_sad = np.where(valid, sp.s_saddle, 0.0)
    ones = np.ones(depth)
    ev_trap: Array = np.linalg.eigvalsh(chain_hessian(np.zeros(e.shape + (depth,)), e, b)).astype(
        float
    )
    ev_sad: Array = np.linalg.eigvalsh(chain_hessian(s_sad[..., None] * ones, e, b)).astype(float)
    ev_sad = np.where(valid[..., None], ev_sad, np.nan)
    ev_trap = np.where(valid[..., None], ev_trap, np.nan)
    mu_u = ev_sad[..., 0]
    ratio = np.prod(ev_trap, axis=-1) / np.abs(np.prod(ev_sad, axis=-1))
    prefactor = np.abs(mu_u) / (2.0 * np.pi) * np.sqrt(ratio)
    d_e = np.where(valid, sp.barrier_trap, np.nan)
    n_saddles = 2 ** (depth - 1)
    over_t = d_e / temp
    rate = n_saddles * prefactor * np.exp(-over_t)
    tau = 1.0 / rate
    return KramersEscape(
        tau=tau,
        tau_steps=None if lr_a is None else tau / lr_a,
        rate=rate,
        prefactor=prefactor,
        barrier=d_e,
        barrier_over_T=over_t,
        hessian_trap=ev_trap,
        hessian_saddle=ev_sad,
        unstable_eigenvalue=mu_u,
        n_saddles=n_saddles,
        temperature=temp,
        lr=None if lr_a is None else _out(lr_a),
    )


# ---------------------------------------------------------------------- data-set observables
def _pinv_sym(a: Array) -> Array:
    """Pseudo-inverse of a symmetric PSD matrix, with data.py's tolerance."""
    evals, evecs = np.linalg.eigh(a)
    tol = evals.max() * max(a.shape) * np.finfo(float).eps
    inv = np.where(evals > tol, 1.0 / np.where(evals > tol, evals, 1.0), 0.0)
    return (evecs * inv) @ evecs.T


def _mode_lambdas(dataset: Dataset, lambdas: ArrayLike, allow_nan: bool = False) -> Array:
    try:
        lam = np.asarray(lambdas, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lambdas: expected an array of real numbers ({exc})") from None
    bad = np.isinf(lam) if allow_nan else ~np.isfinite(lam)
    if np.any(bad):
        raise ValueError("lambdas: contains " + ("inf" if allow_nan else "NaN or inf"))
    if lam.ndim < 1 or lam.shape[-1] != dataset.n_modes:
        raise ValueError(
            f"lambdas: expected shape (..., {dataset.n_modes}) (one per mode), got {lam.shape}"
        )
    return lam


def aligned_map(dataset: Dataset, lambdas: ArrayLike) -> Array:
    """End-to-end map with whitened singular value lambda_i on mode i of `dataset`.

    W = sum_i lambda_i U_i V_i^T Sigma_xx^(-1/2) = sum_i lambda_i u_i (Sigma_xx^(-1) v_i)^T,
    with M = Sigma_yx Sigma_xx^(-1/2) = U S V^T, u_i = ``mode_out[:, i]`` and
    v_i = ``mode_in[:, i]`` = Sigma_xx^(1/2) V_i, so that u_i^T W v_j = lambda_i delta_ij.
    Its training data loss is sum_i 1/2 (lambda_i - eta_hat_i)^2 + irreducible_loss.
    (Pseudo-inverse for a singular Sigma_xx.)

    Parameters
    ----------
    dataset : grokescape.data.Dataset
    lambdas : array_like, shape (..., n_modes)

    Returns
    -------
    ndarray, shape (..., d_out, d_in)
    """
    lam = _mode_lambdas(dataset, lambdas)
    w_in = _pinv_sym(dataset.sigma_xx) @ dataset.mode_in  # columns Sigma_xx^-1 v_i
    return np.einsum("...i,oi,ji->...oj", lam, dataset.mode_out, w_in)


def state_mse(dataset: Dataset, lambdas: ArrayLike) -> tuple[Array, Array]:
    """Train and test MSE of the aligned map with amplitudes `lambdas` (:func:`aligned_map`).

    MSE is the mean over samples and outputs of (y - W x)^2 (the paper's quantity),
    evaluated from second moments: (tr S_yy - 2 tr(W S_xy) + tr(W S_xx W^T)) / d_out.

    Parameters
    ----------
    dataset : grokescape.data.Dataset
    lambdas : array_like, shape (..., n_modes)
        NaN entries give NaN MSE.

    Returns
    -------
    train_mse, test_mse : ndarray, shape (...)
        test_mse is NaN when the data set has no test set.
    """
    lam = _mode_lambdas(dataset, lambdas, allow_nan=True)
    bad = np.any(np.isnan(lam), axis=-1)
    w = aligned_map(dataset, np.where(np.isnan(lam), 0.0, lam))

    def mse(x: Array, y: Array) -> Array:
        if x.shape[0] == 0:
            return np.full(bad.shape, np.nan)
        n = x.shape[0]
        sxx, syx, syy = x.T @ x / n, y.T @ x / n, y.T @ y / n
        cross = np.einsum("...oj,oj->...", w, syx)
        quad = np.einsum("...oj,jk,...ok->...", w, sxx, w)
        return np.where(bad, np.nan, (np.trace(syy) - 2.0 * cross + quad) / y.shape[1])

    return mse(dataset.x_train, dataset.y_train), mse(dataset.x_test, dataset.y_test)


def phase_diagram(
    etas: ArrayLike | None,
    betas: ArrayLike,
    depth: int,
    dataset: Dataset | None = None,
) -> pd.DataFrame:
    """Per-mode phases, metastability and (with data) the MSE of every rank state.

    Parameters
    ----------
    etas : array_like, shape (m,), or None
        Mode strengths; None takes ``dataset.eta_hat``. With a data set, mode i of
        `etas` is the data set's mode i (so passing the nominal eta shows the theory for
        those strengths on the data's mode vectors).
    betas : array_like, shape (n_beta,)
        Weight decays (>= 0).
    depth : int
        Number of weight matrices L >= 1.
    dataset : grokescape.data.Dataset, optional
        Adds the train and test MSE of every rank state.

    Returns
    -------
    pandas.DataFrame
        One row per (beta, mode), with columns

        - ``beta``, ``mode``, ``eta``
        - ``lambda_trap``, ``lambda_saddle``, ``lambda_min`` (learned minimum),
          ``lambda_global`` (global minimum); NaN where a branch is absent
        - ``beta_c`` (spinodal), ``beta_star`` (coexistence): the hysteresis window of
          the mode is [beta_star, beta_c]
        - ``barrier_trap``, ``barrier_learned``: E(saddle) - E(0), E(saddle) - E(min)
        - ``learned_global``: the mode is learned in the global minimum
        - ``learned_stable``: the learned branch exists (lambda_min != 0)
        - ``trap_stable``: lambda = 0 is a local minimum (for L >= 3 every beta > 0)
        - ``trap_metastable``: trap stable but not global (beta < beta_star at L >= 3)
        - ``learned_metastable``: learned branch exists but is not global
          (beta_star < beta < beta_c)
        - per beta (repeated on each mode row): ``global_rank`` (modes learned in the
          global minimum) and ``max_stable_rank`` (modes whose learned branch exists)
        - with `dataset`, per beta: ``train_mse_rank{r}``, ``test_mse_rank{r}`` for
          r = 0..m, the state with the r strongest (largest |eta|) modes at their
          lambda_min and the others at 0 (NaN if one of them has no learned branch),
          and ``train_mse_global``, ``test_mse_global`` for the global minimum.
    """
    depth = _checks.depth(depth)
    if etas is None:
        if dataset is None:
            raise ValueError("etas: give mode strengths or a dataset (etas=None takes eta_hat)")
        etas = dataset.eta_hat
    eta_a = _real(etas, "etas")
    if eta_a.ndim != 1 or eta_a.size < 1:
        raise ValueError(f"etas: expected a non-empty 1-d array, got shape {eta_a.shape}")
    beta_a = _nonneg(betas, "betas")
    if beta_a.ndim != 1 or beta_a.size < 1:
        raise ValueError(f"betas: expected a non-empty 1-d array, got shape {beta_a.shape}")
    if dataset is not None and eta_a.size != dataset.n_modes:
        raise ValueError(
            f"etas: expected {dataset.n_modes} values (one per mode of the dataset), "
            f"got {eta_a.size}"
        )
    n_beta, m = beta_a.size, eta_a.size
    sp = stationary_points(eta_a[None, :], beta_a[:, None], depth)
    learned_global = sp.learned_is_global
    learned_stable = np.isfinite(sp.minimum) & (sp.minimum != 0)
    if depth >= 3:
        trap_stable = (sp.beta > 0) | (sp.global_minimum == 0)
    else:
        trap_stable = sp.global_minimum == 0
    cols: dict[str, Any] = {
        "beta": np.repeat(beta_a, m),
        "mode": np.tile(np.arange(m), n_beta),
        "eta": np.tile(eta_a, n_beta),
        "lambda_trap": sp.trap.ravel(),
        "lambda_saddle": sp.saddle.ravel(),
        "lambda_min": sp.minimum.ravel(),
        "lambda_global": sp.global_minimum.ravel(),
        "beta_c": np.tile(np.atleast_1d(spinodal_beta(eta_a, depth)), n_beta),
        "beta_star": np.tile(np.atleast_1d(coexistence_beta(eta_a, depth)), n_beta),
        "barrier_trap": sp.barrier_trap.ravel(),
        "barrier_learned": sp.barrier_learned.ravel(),
        "learned_global": learned_global.ravel(),
        "learned_stable": learned_stable.ravel(),
        "trap_stable": trap_stable.ravel(),
        "trap_metastable": (trap_stable & learned_global).ravel(),
        "learned_metastable": (learned_stable & ~learned_global).ravel(),
        "global_rank": np.repeat(learned_global.sum(axis=1), m),
        "max_stable_rank": np.repeat(learned_stable.sum(axis=1), m),
    }
    if dataset is not None:
        order = np.argsort(-np.abs(eta_a), kind="stable")
        for r in range(m + 1):
            on = np.zeros(m, dtype=bool)
            on[order[:r]] = True
            lam = np.where(on, sp.minimum, 0.0)
            train, test = state_mse(dataset, lam)
            cols[f"train_mse_rank{r}"] = np.repeat(train, m)
            cols[f"test_mse_rank{r}"] = np.repeat(test, m)
        train, test = state_mse(dataset, sp.global_minimum)
        cols["train_mse_global"] = np.repeat(train, m)
        cols["test_mse_global"] = np.repeat(test, m)
    return pd.DataFrame(cols)


def expected_observables(dataset: Dataset, beta: float, depth: int) -> pd.DataFrame:
    """Theory numbers for each mode of a data set at its empirical strengths eta_hat.

    Parameters
    ----------
    dataset : grokescape.data.Dataset
    beta : float
        Weight decay (>= 0).
    depth : int
        Number of weight matrices L >= 1.

    Returns
    -------
    pandas.DataFrame
        One row per mode: ``mode``, ``eta`` (nominal, NaN if unknown), ``eta_hat``,
        ``lambda_saddle``, ``lambda_min``, ``s_saddle``, ``s_min``, ``lambda_threshold``
        and ``s_threshold`` (:func:`mode_thresholds`), ``barrier_trap``,
        ``barrier_learned``, ``beta_c``, ``beta_star`` and ``learned_global``.
    """
    beta_a = _nonneg(beta, "beta")
    if beta_a.ndim != 0:
        raise ValueError(f"beta: expected a scalar, got shape {beta_a.shape}")
    eta_hat = dataset.eta_hat
    sp = stationary_points(eta_hat, beta_a, depth)
    th = mode_thresholds(eta_hat, beta_a, depth)
    nominal = (
        dataset.eta
        if dataset.eta is not None and dataset.eta.shape == eta_hat.shape
        else np.full(eta_hat.shape, np.nan)
    )
    return pd.DataFrame(
        {
            "mode": np.arange(eta_hat.size),
            "eta": nominal,
            "eta_hat": eta_hat,
            "lambda_saddle": sp.saddle,
            "lambda_min": sp.minimum,
            "s_saddle": sp.s_saddle,
            "s_min": sp.s_minimum,
            "lambda_threshold": th.lam,
            "s_threshold": th.s,
            "barrier_trap": sp.barrier_trap,
            "barrier_learned": sp.barrier_learned,
            "beta_c": np.atleast_1d(spinodal_beta(eta_hat, depth)),
            "beta_star": np.atleast_1d(coexistence_beta(eta_hat, depth)),
            "learned_global": sp.learned_is_global,
        }
    )
