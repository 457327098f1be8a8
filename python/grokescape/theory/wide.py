"""Escape from the rank-r trap of networks wider than one (physics.md section 8).

Setting. Widths [d_in, h, ..., h, d_out] (depth L, every hidden layer of width h), data
with Sigma_xx = I and Sigma_yx = diag(eta) (exact moments), so that in the data's mode
basis the loss is

    U(W) = 1/2 ||W_L ... W_1 - M||_F^2 + beta/2 sum_l ||W_l||_F^2,   M = diag(eta),

and additive Langevin noise, dW = -grad U dt + sqrt(2 T) dB, with t = lr x steps. The
rank-r trap has modes 0..r-1 at their learned minima (balanced, aligned: mode i uses
hidden channel i of every layer) and the other modes at zero; mode r escapes through the
balanced aligned saddle with mode r at the per-mode saddle s_sad. The barrier is the
per-mode one, dE = E(s_sad) - E(0) of :mod:`grokescape.theory.modes`, for every h.

Symmetry. W_1 -> R_1 W_1, W_l -> R_l W_l R_(l-1)^T, W_L -> W_L R_(L-1)^T with R_l in O(h)
leaves U and the Frobenius metric invariant. A balanced aligned critical point with k
nonzero modes has stabiliser O(h-k)^(L-1); its orbit is (Stiefel V_k(R^h))^(L-1), of
dimension (L-1)(k h - k(k+1)/2): d_t with k = r at the trap, d_s with k = r + 1 at the
saddle. Both are Morse-Bott (the kernel of the Hessian is the orbit's tangent space, which
:func:`zero_mode_structure` checks), and the saddle has index 1 with the chain's unstable
eigenvalue.

Methods (:func:`wide_escape_time`):

- ``"zero_modes"``: Langer's formula with the orbits,
  k = |mu_u|/(2 pi) (V_s/V_t) (2 pi T)^((d_t - d_s)/2) sqrt(det' H_t / |det' H_s|)
  exp(-dE/T), tau = 1/k = C T^((d_s - d_t)/2) exp(dE/T), with (d_s - d_t)/2 = (L-1)(h-r-1)/2.
  Exact as T -> 0; at L = 3 and finite T, ln tau = ln tau_ZM + O((h-r)^2 T / beta^3) (the
  reduced theory below shows how slowly it is reached).
- ``"reduced"`` (L = 3): the escaping mode's subsystem [1, n, n, 1], n = h - r, reduces
  exactly to three variables (:class:`ReducedSubsystem`); Langer's formula on its free
  energy F with a position-dependent mobility, the exact trap population (quadrature), and
  the mode-coupling factor of the other modes (:func:`mode_coupling_factor`, harmonic).
  Holds where F has a barrier (T < T_c) well above T; reduces to ``"zero_modes"`` as T -> 0.
- ``"mfpt_1d"`` (L = 3, n >= 2): the mean first-passage time along the mode amplitude
  lambda on the exact F(lambda) and D(lambda), from lambda = 0 to a threshold. Also without
  a barrier; it assumes every other coordinate equilibrated at each lambda.
- ``"chain"``: the width-1 chain's Kramers-Langer time of the escaping mode
  (:func:`grokescape.theory.modes.kramers_escape_time`), for comparison.

Units: tau in continuous time (lr x steps); ``tau_steps`` = tau / lr when lr is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import lgamma, log, pi
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from grokescape import _checks
from grokescape.theory.modes import (
    _positive,
    kramers_escape_time,
    mode_thresholds,
    stationary_points,
)

__all__ = [
    "ESCAPE_METHODS",
    "ReducedStationaryPoints",
    "ReducedSubsystem",
    "WideEscape",
    "ZeroModeStructure",
    "aligned_network",
    "collapse_temperature",
    "mode_coupling_factor",
    "network_gradient",
    "network_hessian",
    "network_loss",
    "orbit_tangents",
    "orbit_volume",
    "wide_escape_time",
    "zero_mode_structure",
]

Array = NDArray[np.float64]

#: The methods of :func:`wide_escape_time`.
ESCAPE_METHODS = ("zero_modes", "reduced", "mfpt_1d", "chain")

# Direct eigen-decomposition of the Hessian up to this hidden width; beyond it, the exact
# quadratic dependence of ln det' on h is used (see zero_mode_structure).
_DIRECT_MAX_WIDTH = 16


# ---------------------------------------------------------------------- argument checks
def _widths(widths: Any, rank: int, n_eta: int) -> tuple[list[int], int, int]:
    """Checked widths; returns (widths, depth, h) for [d_in, h, ..., h, d_out]."""
    w = [_checks.integer(x, "widths", minimum=1) for x in widths]
    depth = len(w) - 1
    if depth < 2:
        raise ValueError(f"widths: expected at least one hidden layer, got {w}")
    hidden = set(w[1:-1])
    if len(hidden) != 1:
        raise ValueError(f"widths: every hidden layer must have the same width h, got {w}")
    h = w[1]
    if h < rank + 1:
        raise ValueError(f"widths: hidden width {h} cannot hold rank {rank} + the escaping mode")
    if n_eta > min(w[0], w[-1]):
        raise ValueError(f"eta: {n_eta} modes do not fit d_in = {w[0]}, d_out = {w[-1]}")
    return w, depth, h


def _eta(eta: ArrayLike, rank: int) -> Array:
    arr = np.atleast_1d(np.asarray(_checks.finite_array(eta, "eta"), dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"eta: expected a 1-d array of mode strengths, got shape {arr.shape}")
    if arr.size < rank + 1:
        raise ValueError(f"eta: rank {rank} needs at least {rank + 1} modes, got {arr.size}")
    if np.any(arr <= 0):
        raise ValueError("eta: expected positive mode strengths")
    return arr


def _rank(rank: Any) -> int:
    return _checks.integer(rank, "rank", minimum=0)


def _beta(beta: Any) -> float:
    b = float(_checks.finite_array(beta, "beta"))
    if b <= 0:
        raise ValueError(f"beta: expected > 0, got {b}")
    return b


# ---------------------------------------------------------------------- the network
def _mode_matrix(widths: list[int], eta: Array) -> Array:
    m = np.zeros((widths[-1], widths[0]))
    m[np.arange(eta.size), np.arange(eta.size)] = eta
    return m


def aligned_network(widths: Any, amplitudes: ArrayLike) -> list[Array]:
    """Balanced aligned weights in the data's mode basis: mode i uses hidden channel i.

    Every layer carries amplitude s_i on mode i: W_1[i, i] = s_i (input mode i to channel
    i), W_l[i, i] = s_i, W_L[i, i] = s_i; all other entries are zero. The end-to-end map
    is diag(s_i^L).

    Parameters
    ----------
    widths : sequence of int
        [d_in, h_1, ..., d_out].
    amplitudes : array_like, shape (k,)
        Per-layer amplitudes s_i (k <= every width).

    Returns
    -------
    list of ndarray
        Layer l as (out, in).
    """
    w = [_checks.integer(x, "widths", minimum=1) for x in widths]
    s = np.atleast_1d(np.asarray(_checks.finite_array(amplitudes, "amplitudes"), dtype=float))
    if s.size > min(w):
        raise ValueError(f"amplitudes: {s.size} modes do not fit widths {w}")
    out = []
    for l in range(len(w) - 1):
        layer = np.zeros((w[l + 1], w[l]))
        layer[np.arange(s.size), np.arange(s.size)] = s
        out.append(layer)
    return out


def _chain_products(weights: list[Array]) -> tuple[list[Array], list[Array]]:
    """below[l] = W_(l-1)...W_0 (in_l x d_in), above[l] = W_(L-1)...W_(l+1) (d_out x out_l)."""
    n = len(weights)
    below = [np.eye(weights[0].shape[1])]
    for l in range(1, n):
        below.append(weights[l - 1] @ below[-1])
    above: list[Array] = [np.eye(weights[-1].shape[0])] * n
    for l in range(n - 2, -1, -1):
        above[l] = above[l + 1] @ weights[l + 1]
    return below, above


def _weights(weights: Any) -> list[Array]:
    out = [np.asarray(_checks.finite_array(w, "weights"), dtype=float) for w in weights]
    if not out or any(w.ndim != 2 for w in out):
        raise ValueError("weights: expected a list of 2-d layers (out, in)")
    for a, b in zip(out[:-1], out[1:], strict=True):
        if b.shape[1] != a.shape[0]:
            raise ValueError(f"weights: layers {a.shape} and {b.shape} do not chain")
    return out


def _residual(weights: list[Array], eta: ArrayLike) -> tuple[Array, Array]:
    e = np.atleast_1d(np.asarray(eta, dtype=float))
    m = np.zeros((weights[-1].shape[0], weights[0].shape[1]))
    m[np.arange(e.size), np.arange(e.size)] = e
    prod = weights[0]
    for w in weights[1:]:
        prod = w @ prod
    return prod, prod - m


def network_loss(weights: Any, eta: ArrayLike, beta: float) -> float:
    """U = 1/2 ||W_L...W_1 - diag(eta)||_F^2 + beta/2 sum_l ||W_l||_F^2 (mode basis).

    With exact-moment data this is the training loss less its irreducible constant.

    Parameters
    ----------
    weights : list of arrays (out, in)
    eta : array_like
        Mode strengths on the diagonal of M (d_out x d_in).
    beta : float
    """
    ws = _weights(weights)
    _, r = _residual(ws, eta)
    return float(0.5 * np.sum(r**2) + 0.5 * beta * sum(np.sum(w**2) for w in ws))


def network_gradient(weights: Any, eta: ArrayLike, beta: float) -> list[Array]:
    """Exact gradient of :func:`network_loss`: dU/dW_l = above_l^T R below_l^T + beta W_l,
    with R = W_L...W_1 - M and above_l, below_l the products above and below layer l."""
    ws = _weights(weights)
    below, above = _chain_products(ws)
    _, r = _residual(ws, eta)
    return [above[l].T @ r @ below[l].T + beta * ws[l] for l in range(len(ws))]


def network_hessian(weights: Any, eta: ArrayLike, beta: float) -> Array:
    """Exact Hessian of :func:`network_loss` in the flattened (layer, row, column) order.

    H = J^T J + H_R + beta I: J is the Jacobian of the end-to-end map,
    dW/dW_l[i, j] = above_l[:, i] below_l[j, :]; H_R is the Hessian of <R, W> at fixed
    R = W - M, which couples layers m > l through
    d^2 <R, W> / dW_m[i, j] dW_l[k, q] = (above_m^T R below_l^T)[i, q] (W_(m-1)...W_(l+1))[j, k].

    Returns
    -------
    ndarray, shape (D, D)
        D = total number of weights.
    """
    ws = _weights(weights)
    below, above = _chain_products(ws)
    _, r = _residual(ws, eta)
    sizes = [w.size for w in ws]
    off = np.concatenate([[0], np.cumsum(sizes)])
    jac = np.zeros((r.size, int(off[-1])))
    for l in range(len(ws)):
        jac[:, off[l] : off[l + 1]] = np.einsum("oi,jq->oqij", above[l], below[l]).reshape(
            r.size, -1
        )
    hess = jac.T @ jac
    for m in range(len(ws)):
        for l in range(m):
            mid = np.eye(ws[l].shape[0])
            for k in range(l + 1, m):
                mid = ws[k] @ mid
            a = above[m].T @ r @ below[l].T
            blk = np.einsum("iq,jk->ijkq", a, mid).reshape(sizes[m], sizes[l])
            hess[off[m] : off[m + 1], off[l] : off[l + 1]] += blk
            hess[off[l] : off[l + 1], off[m] : off[m + 1]] += blk.T
    return hess + beta * np.eye(int(off[-1]))


# ---------------------------------------------------------------------- orbits
def orbit_tangents(weights: Any, active: int) -> Array:
    """Tangent vectors of the hidden-unit symmetry orbit at an aligned point.

    One row per generator A_pq = e_q e_p^T - e_p e_q^T (p < q, p < `active`) of each hidden
    layer l: W_(l-1) -> A W_(l-1), W_l -> -W_l A (flattened like :func:`network_hessian`).
    These generators are orthonormal in the metric <X, Y> = tr(X^T Y) / 2 of so(h) and
    span the complement of the stabiliser of a point whose first `active` channels carry
    distinct nonzero amplitudes, so the orbit's volume element is sqrt(det(G G^T)) times
    that of (V_active(R^h))^(L-1).
    """
    ws = _weights(weights)
    rows = []
    for l in range(1, len(ws)):
        h = ws[l].shape[1]
        for p in range(min(active, h)):
            for q in range(p + 1, h):
                a = np.zeros((h, h))
                a[q, p], a[p, q] = 1.0, -1.0
                t = [np.zeros_like(w) for w in ws]
                t[l - 1] = a @ ws[l - 1]
                t[l] = -ws[l] @ a
                rows.append(np.concatenate([x.ravel() for x in t]))
    return np.array(rows)


def _log_sphere(k: int) -> float:
    """ln vol(S^(k-1)) = ln(2 pi^(k/2) / Gamma(k/2))."""
    return log(2.0) + 0.5 * k * log(pi) - lgamma(0.5 * k)


def _log_orbit_volume(h: int, depth: int, amplitudes: Array) -> float:
    s = np.asarray(amplitudes, dtype=float)
    s = s[s != 0]
    k = s.size
    out = (depth - 1) * sum(_log_sphere(j) for j in range(h - k + 1, h + 1))
    # generators mixing a used channel p with an unused one move two matrices by s_p each
    out += (depth - 1) * (h - k) * float(np.sum(np.log(np.sqrt(2.0) * np.abs(s))))
    # generators within the used span: for each pair, an (L-1) x (L-1) tridiagonal Gram
    # matrix (diagonal 2(s_p^2 + s_q^2), off-diagonal -2 s_p s_q) of determinant
    # (a^L - b^L) / (a - b), a = 2 s_p^2, b = 2 s_q^2
    for i in range(k):
        for j in range(i + 1, k):
            a, b = 2.0 * s[i] ** 2, 2.0 * s[j] ** 2
            det = depth * a ** (depth - 1) if a == b else (a**depth - b**depth) / (a - b)
            out += 0.5 * log(det)
    return out


def orbit_volume(h: int, depth: int, amplitudes: ArrayLike) -> float:
    """Volume of the O(h)^(L-1) orbit of an aligned balanced point (Frobenius metric).

    With k nonzero amplitudes s_i:

        V = vol(V_k(R^h))^(L-1) * prod_i (sqrt(2) s_i)^((L-1)(h-k))
            * prod_(i<j) sqrt((a_i^L - a_j^L) / (a_i - a_j)),   a_i = 2 s_i^2,

    with vol(V_k(R^h)) = prod_(j=h-k+1..h) vol(S^(j-1)), the volume of O(h)/O(h-k) in the
    metric tr(X^T Y)/2 (vol(S^0) = 2 counts the reflections: for the width-1 chain the
    "orbit" of the saddle is its 2^(L-1) sign patterns). A rotation mixing a used channel
    with an unused one moves two matrices (norm sqrt(2) s_i); the rotations within the
    used span of neighbouring layers overlap through the layer between them (for L = 3 the
    pair's Gram determinant is 4 (s_i^4 + s_i^2 s_j^2 + s_j^4)).

    Parameters
    ----------
    h : int
        Hidden width.
    depth : int
        L (L - 1 hidden layers).
    amplitudes : array_like
        Per-layer amplitudes of the point's modes (zeros are unused).
    """
    h = _checks.integer(h, "h", minimum=1)
    depth = _checks.depth(depth, minimum=2)
    s = np.atleast_1d(np.asarray(_checks.finite_array(amplitudes, "amplitudes"), dtype=float))
    if np.count_nonzero(s) > h:
        raise ValueError(f"amplitudes: {np.count_nonzero(s)} nonzero modes exceed h = {h}")
    return float(np.exp(_log_orbit_volume(h, depth, s)))


# ---------------------------------------------------------------------- zero-mode Langer
@dataclass(frozen=True)
class ZeroModeStructure:
    """The trap and saddle orbits of the escaping mode and Langer's prefactor with them.

    tau_ZM(T) = exp(log_C) T^exponent exp(barrier / T) in continuous time.

    Attributes
    ----------
    widths : list of int
    rank : int
        Trap rank r (modes 0..r-1 learned); mode r escapes.
    eta_escaping, beta : float
    barrier : float
        dE = E(s_sad) - E(0) of the escaping mode (the same for every h).
    amplitudes_trap, amplitudes_saddle : ndarray
        Per-layer amplitudes of the modes at the two points.
    orbit_dim_trap, orbit_dim_saddle : int
        d_t, d_s = (L-1)(k h - k(k+1)/2) with k = r, r + 1.
    log_volume_trap, log_volume_saddle : float
        ln of the orbit volumes (:func:`orbit_volume`).
    log_det_trap, log_det_saddle : float
        ln |det'| of the Hessians (product of the nonzero eigenvalues).
    unstable_eigenvalue : float
        mu_u < 0 at the saddle (the chain's).
    softest_trap : float
        The smallest nonzero Hessian eigenvalue at the trap.
    log_C : float
        ln of the prefactor C of tau_ZM.
    exponent : float
        (d_s - d_t) / 2 = (L-1)(h-r-1)/2: tau_ZM ~ T^exponent exp(dE/T), and the local
        Arrhenius slope is d ln tau / d(1/T) = dE - exponent T.
    direct : bool
        True where the Hessians were diagonalised at this h; False where ln det' came from
        the exact quadratic dependence on h (computed at three smaller widths).
    """

    widths: list[int]
    rank: int
    eta_escaping: float
    beta: float
    barrier: float
    amplitudes_trap: Array
    amplitudes_saddle: Array
    orbit_dim_trap: int
    orbit_dim_saddle: int
    log_volume_trap: float
    log_volume_saddle: float
    log_det_trap: float
    log_det_saddle: float
    unstable_eigenvalue: float
    softest_trap: float
    log_C: float
    exponent: float
    direct: bool

    def tau(self, temperature: ArrayLike) -> Any:
        """tau_ZM at temperature T (continuous time)."""
        t = _positive(temperature, "temperature")
        out = np.exp(self.log_C + self.exponent * np.log(t) + self.barrier / t)
        return float(out) if np.ndim(out) == 0 else out


def _points(eta: Array, beta: float, depth: int, rank: int) -> tuple[Array, Array, float]:
    sp = stationary_points(eta, beta, depth)
    s_min = np.asarray(sp.s_minimum, dtype=float)
    s_sad = np.asarray(sp.s_saddle, dtype=float)
    for i in range(rank):
        if not np.isfinite(s_min[i]) or s_min[i] <= 0:
            raise ValueError(f"beta: mode {i} (eta={eta[i]:.4g}) has no learned minimum at {beta}")
    if not np.isfinite(s_sad[rank]) or s_sad[rank] <= 0:
        raise ValueError(
            f"beta: the escaping mode {rank} (eta={eta[rank]:.4g}) has no barrier at {beta}"
        )
    trap = np.zeros(rank + 1)
    trap[:rank] = s_min[:rank]
    saddle = trap.copy()
    saddle[rank] = s_sad[rank]
    return trap, saddle, float(np.asarray(sp.barrier_trap)[rank])


def _orbit_dim(h: int, depth: int, k: int) -> int:
    return (depth - 1) * (k * h - k * (k + 1) // 2)


def _log_det_prime(widths: list[int], eta: Array, beta: float, amps: Array, d: int) -> Any:
    """ln |det'| H, the eigenvalues, and a Morse-Bott check (kernel = orbit tangent)."""
    ws = aligned_network(widths, amps)
    hess = network_hessian(ws, eta, beta)
    ev = np.linalg.eigvalsh(hess)
    order = np.argsort(np.abs(ev))
    scale = max(1.0, float(np.max(np.abs(ev))))
    zero, rest = ev[order[:d]], ev[order[d:]]
    if np.any(np.abs(zero) > 1e-9 * scale) or (rest.size and np.min(np.abs(rest)) < 1e-6 * scale):
        raise ArithmeticError(
            f"the Hessian at {amps} is not Morse-Bott with a {d}-dimensional orbit "
            f"(smallest |eigenvalues| {np.sort(np.abs(ev))[: d + 2]})"
        )
    tangents = orbit_tangents(ws, int(np.count_nonzero(amps)))
    if tangents.size and np.max(np.abs(hess @ tangents.T)) > 1e-9 * scale:
        raise ArithmeticError("the orbit's tangent vectors are not in the Hessian's kernel")
    return float(np.sum(np.log(np.abs(rest)))), rest


def zero_mode_structure(
    widths: Any, eta: ArrayLike, beta: float, rank: int = 1
) -> ZeroModeStructure:
    """Orbits, det' of the Hessians and Langer's zero-mode prefactor for the escaping mode.

    Langer's formula with the symmetry orbits in place of isolated points:

        k = |mu_u|/(2 pi) (V_s / V_t) (2 pi T)^((d_t - d_s)/2) sqrt(det' H_t / |det' H_s|)
            exp(-dE / T),    tau = 1 / k,

    V the orbit volumes (:func:`orbit_volume`), d their dimensions, det' the product of the
    nonzero eigenvalues of the exact Hessian (:func:`network_hessian`), mu_u the unstable
    eigenvalue at the saddle. The whole saddle orbit is one orbit (the reflections are in
    O(h)), so there is no separate count of saddles. Exact as T -> 0 (Morse-Bott points,
    which is checked: the kernel must be the orbit's tangent space); the corrections are
    O(T) with a coefficient that grows like (h - r)^2 (see :class:`ReducedSubsystem`).

    Hessians are diagonalised for h <= 16. Beyond, ln det'(h) is exactly quadratic in h
    (each further unused hidden channel adds the same blocks coupling it to the used
    channels, and a number of pure-beta directions linear in h), so it is computed at three
    widths and extended.

    Parameters
    ----------
    widths : sequence of int
        [d_in, h, ..., h, d_out].
    eta : array_like
        Mode strengths (>= rank + 1 of them, at most min(d_in, d_out)).
    beta : float
    rank : int
        Trap rank r: modes 0..r-1 learned, mode r escapes.

    Returns
    -------
    ZeroModeStructure
    """
    rank = _rank(rank)
    e = _eta(eta, rank)
    w, depth, h = _widths(widths, rank, e.size)
    b = _beta(beta)
    trap, saddle, d_e = _points(e, b, depth, rank)
    d_t, d_s = _orbit_dim(h, depth, rank), _orbit_dim(h, depth, rank + 1)
    direct = h <= _DIRECT_MAX_WIDTH
    if direct:
        ld_t, ev_t = _log_det_prime(w, e, b, trap, d_t)
        ld_s, ev_s = _log_det_prime(w, e, b, saddle, d_s)
    else:
        h0 = max(w[0], w[-1], rank + 1) + 1
        vals = []
        for hh in (h0, h0 + 1, h0 + 2):
            ww = [w[0]] + [hh] * (depth - 1) + [w[-1]]
            lt, ev_t = _log_det_prime(ww, e, b, trap, _orbit_dim(hh, depth, rank))
            ls, ev_s = _log_det_prime(ww, e, b, saddle, _orbit_dim(hh, depth, rank + 1))
            vals.append((lt, ls))
        x = np.array([h0, h0 + 1, h0 + 2], dtype=float)
        ld_t = float(np.polyval(np.polyfit(x, [v[0] for v in vals], 2), h))
        ld_s = float(np.polyval(np.polyfit(x, [v[1] for v in vals], 2), h))
    mu_u = float(np.min(ev_s))
    lv_t = _log_orbit_volume(h, depth, trap)
    lv_s = _log_orbit_volume(h, depth, saddle)
    log_k0 = (
        log(abs(mu_u) / (2 * pi))
        + lv_s
        - lv_t
        + 0.5 * (d_t - d_s) * log(2 * pi)
        + 0.5 * (ld_t - ld_s)
    )
    return ZeroModeStructure(
        widths=w,
        rank=rank,
        eta_escaping=float(e[rank]),
        beta=b,
        barrier=d_e,
        amplitudes_trap=trap,
        amplitudes_saddle=saddle,
        orbit_dim_trap=d_t,
        orbit_dim_saddle=d_s,
        log_volume_trap=lv_t,
        log_volume_saddle=lv_s,
        log_det_trap=ld_t,
        log_det_saddle=ld_s,
        unstable_eigenvalue=mu_u,
        softest_trap=float(np.min(ev_t[ev_t > 0])),
        log_C=-log_k0,
        exponent=0.5 * (d_s - d_t),
        direct=direct,
    )


def mode_coupling_factor(widths: Any, eta: ArrayLike, beta: float, rank: int = 1) -> float:
    """c = k_ZM(network) / k_ZM(subsystem): what the learned modes do to the escape rate.

    The escaping mode r alone lives in the hidden channels the learned modes leave free:
    the subsystem [1, n, ..., n, 1], n = h - r, with strength eta_r. In the network, the
    learned modes couple to it (the rank-r map can rotate toward mode r: the trap's soft
    direction, and the saddle's in-span rotations). In the harmonic (T -> 0) limit this
    multiplies the rate by a T-independent factor, the ratio of the two zero-mode rates;
    the orbit dimensions differ by the same amount in both, so the powers of T cancel.
    (0.8206 for the paper's eta (0.9, 0.8), beta 0.32, L = 3, independent of h.) The
    reduced and 1-D theories multiply their subsystem rate by it; its anharmonic
    corrections at finite T are not included.
    """
    rank = _rank(rank)
    e = _eta(eta, rank)
    w, depth, h = _widths(widths, rank, e.size)
    full = zero_mode_structure(w, e, beta, rank)
    n = h - rank
    sub = zero_mode_structure([1] + [n] * (depth - 1) + [1], e[rank : rank + 1], beta, 0)
    if full.exponent != sub.exponent:  # pragma: no cover - a consequence of the orbit dims
        raise ArithmeticError("orbit dimensions of network and subsystem do not match")
    return float(np.exp(sub.log_C - full.log_C))


# ---------------------------------------------------------------------- reduced subsystem
def _log_k0(z: Array) -> Array:
    return np.log(special.k0e(z)) - z


def _log_k1(z: Array) -> Array:
    return np.log(special.k1e(z)) - z


def _logsumexp(a: Array, axis: int = -1) -> Array:
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)), axis=axis)


@dataclass(frozen=True)
class ReducedStationaryPoints:
    """Trap and saddle of the reduced free energy F(alpha, b, gamma) at one temperature.

    Both lie on alpha = gamma = s (u = s^2), b = eta u / (u^2 + beta). NaN fields where the
    barrier has collapsed (T >= T_c).

    Attributes
    ----------
    temperature : float
    u_trap, u_saddle : float
        alpha gamma at the two points.
    b_trap, b_saddle : float
    lam_trap, lam_saddle : float
        lambda = alpha gamma b.
    free_energy_trap, free_energy_saddle : float
        F at the two points (E measured from the same zero as the per-mode energy + eta^2/2).
    barrier : float
        F_saddle - F_trap (the free-energy barrier; the energy barrier dE at T = 0).
    hessian_trap, hessian_saddle : ndarray (3, 3)
        Hessian of F in (alpha, gamma, b).
    mobility_saddle : ndarray (3,)
        Diagonal of the mobility M at the saddle.
    kappa : float
        The negative eigenvalue of M H_saddle (Langer's kinetic prefactor).
    """

    temperature: float
    u_trap: float
    u_saddle: float
    b_trap: float
    b_saddle: float
    lam_trap: float
    lam_saddle: float
    free_energy_trap: float
    free_energy_saddle: float
    barrier: float
    hessian_trap: Array
    hessian_saddle: Array
    mobility_saddle: Array
    kappa: float


@dataclass(frozen=True)
class ReducedSubsystem:
    """The escaping mode's subsystem [1, n, n, 1] (depth 3), reduced exactly.

    With a (n), B (n x n), c (n) the subsystem's weights and a = alpha a^, c = gamma c^,
    b = c^^T B a^, the loss is E3 = 1/2 (eta - alpha gamma b)^2 + beta/2 (alpha^2 + b^2 +
    gamma^2) + beta/2 (the other n^2 - 1 entries of B, in a frame containing a^ and c^).
    Those entries are exactly free Gaussians (variance T / beta), a^ and c^ are uniform on
    their spheres, and the density of (alpha, b, gamma) (alpha, gamma >= 0) is
    (alpha gamma)^(n-1) exp(-E3 / T): a free energy

        F = E3 - (n - 1) T ln(alpha gamma),

    whose stationary points depend on theta = (n - 1) T only. They lie on alpha = gamma,
    u = alpha^2, b = eta u / (u^2 + beta), where g(u) = u - eta^2 u^2 / (u^2 + beta)^2
    equals theta / beta: the trap on g's rising first branch, the saddle on its falling
    one. They merge where theta / beta reaches g's local maximum: the entropic barrier
    collapse, at T_c = beta max g / (n - 1) (n >= 2; none at n = 1).

    Dynamics: with dW = -grad U dt + sqrt(2T) dB in the full weights, the coordinates
    (alpha, gamma, b) have the diffusion tensor T G, G_ij = grad q_i . grad q_j, which is
    diagonal with G_aa = G_gg = 1 and G_bb = 1 + |P B^T c^|^2 / alpha^2 + |P B a^|^2 /
    gamma^2: rotating the frame (a^, c^) moves b through the free entries of B. Replacing
    G_bb by its average over the free entries, M_bb = 1 + (n-1) (T/beta) (1/alpha^2 +
    1/gamma^2), is the Markovian treatment of this frame-rotation mobility (the free
    entries relax at rate beta; exact only when that is fast against the escape).

    Along the mode amplitude lambda = alpha gamma b (also exact): with x = alpha gamma,
    integrating alpha / gamma at fixed x gives K_0(beta x / T), so

        exp(-F(lambda)/T) ~ exp(-(eta - lambda)^2 / 2T) int_0^inf dx x^(n-2) K_0(beta x/T)
                            exp(-beta lambda^2 / (2 T x^2)),

    and E[|grad lambda|^2 | alpha, b, gamma] = (alpha^2 + gamma^2)(b^2 + (n-1) T/beta) +
    alpha^2 gamma^2 with E[alpha^2 + gamma^2 | x] = 2 x K_1 / K_0, which gives
    D(lambda) = T E[|grad lambda|^2 | lambda] by the same integrals.

    Attributes
    ----------
    n : int
        Hidden width of the subsystem (h - r).
    eta, beta : float
    """

    n: int
    eta: float
    beta: float
    _gmax: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = _checks.integer(self.n, "n", minimum=1)
        object.__setattr__(self, "n", n)
        eta = float(_checks.finite_array(self.eta, "eta"))
        beta = _beta(self.beta)
        if eta <= 0:
            raise ValueError(f"eta: expected > 0, got {eta}")
        if not np.isfinite(float(np.asarray(stationary_points(eta, beta, 3).s_saddle))):
            raise ValueError(f"beta: eta = {eta} has no barrier at beta = {beta}")
        object.__setattr__(self, "eta", eta)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "_gmax", self._critical_points())

    @classmethod
    def of_network(
        cls, widths: Any, eta: ArrayLike, beta: float, rank: int = 1
    ) -> ReducedSubsystem:
        """The subsystem of mode `rank` of a depth-3 network [d_in, h, h, d_out]."""
        rank = _rank(rank)
        e = _eta(eta, rank)
        _, depth, h = _widths(widths, rank, e.size)
        if depth != 3:
            raise ValueError(f"widths: the reduced theory is for depth 3, got depth {depth}")
        return cls(h - rank, float(e[rank]), float(beta))

    # -- the free energy and its stationary points
    def g(self, u: ArrayLike) -> Any:
        """g(u) = u - eta^2 u^2 / (u^2 + beta)^2; stationary points solve g(u) = theta/beta."""
        u_a = np.asarray(u, dtype=float)
        return u_a - self.eta**2 * u_a**2 / (u_a**2 + self.beta) ** 2

    def _dg(self, u: Any) -> Any:
        return 1.0 - 2.0 * self.eta**2 * u * (self.beta - u**2) / (u**2 + self.beta) ** 3

    def _critical_points(self) -> tuple[float, float]:
        """u of g's local maximum (collapse) and local minimum."""
        grid = np.geomspace(1e-12, 10.0, 20001)
        d = self._dg(grid)
        idx = np.nonzero(np.sign(d[:-1]) != np.sign(d[1:]))[0]
        if idx.size < 2:  # pragma: no cover - excluded by the barrier check
            raise ValueError("no barrier: g has no local maximum")
        roots = [optimize.brentq(self._dg, grid[i], grid[i + 1], xtol=1e-15) for i in idx[:2]]
        return float(roots[0]), float(roots[1])

    @property
    def theta_c(self) -> float:
        """theta_c = beta max g: the barrier collapses at (n - 1) T = theta_c."""
        return float(self.beta * self.g(self._gmax[0]))

    @property
    def collapse_temperature(self) -> float:
        """T_c = theta_c / (n - 1); inf for n = 1 (no entropic term)."""
        return np.inf if self.n == 1 else self.theta_c / (self.n - 1)

    def free_energy(
        self, alpha: ArrayLike, b: ArrayLike, gamma: ArrayLike, temperature: float
    ) -> Any:
        """F = 1/2 (eta - alpha gamma b)^2 + beta/2 (alpha^2 + b^2 + gamma^2)
        - (n-1) T ln(alpha gamma)."""
        a, bb, c = (np.asarray(v, dtype=float) for v in (alpha, b, gamma))
        theta = (self.n - 1) * float(temperature)
        out = 0.5 * (self.eta - a * c * bb) ** 2 + 0.5 * self.beta * (a**2 + bb**2 + c**2)
        if theta:
            out = out - theta * np.log(a * c)
        return out

    def hessian(self, alpha: float, b: float, gamma: float, temperature: float) -> Array:
        """Hessian of F in (alpha, gamma, b)."""
        theta = (self.n - 1) * float(temperature)
        a, c, beta = alpha, gamma, self.beta
        r = self.eta - a * c * b
        return np.array(
            [
                [c**2 * b**2 + beta + theta / a**2, a * c * b**2 - r * b, a * c**2 * b - r * c],
                [a * c * b**2 - r * b, a**2 * b**2 + beta + theta / c**2, a**2 * c * b - r * a],
                [a * c**2 * b - r * c, a**2 * c * b - r * a, a**2 * c**2 + beta],
            ]
        )

    def mobility(self, alpha: float, gamma: float, temperature: float) -> Array:
        """Diagonal of M in (alpha, gamma, b): (1, 1, 1 + (n-1)(T/beta)(1/alpha^2 + 1/gamma^2))."""
        theta = (self.n - 1) * float(temperature)
        return np.array([1.0, 1.0, 1.0 + theta / self.beta * (1 / alpha**2 + 1 / gamma**2)])

    def stationary_points(self, temperature: float) -> ReducedStationaryPoints:
        """Trap and saddle of F at T (NaN beyond the collapse)."""
        temp = float(_positive(temperature, "temperature"))
        theta = (self.n - 1) * temp
        c = theta / self.beta
        u_c, u_m = self._gmax
        nan3 = np.full((3, 3), np.nan)
        if c >= float(self.g(u_c)):
            return ReducedStationaryPoints(
                temp, *(np.nan,) * 8, barrier=np.nan, hessian_trap=nan3, hessian_saddle=nan3,
                mobility_saddle=np.full(3, np.nan), kappa=np.nan,
            )  # fmt: skip

        def root(lo: float, hi: float) -> float:
            return float(optimize.brentq(lambda u: float(self.g(u)) - c, lo, hi, xtol=1e-300,
                                         rtol=4 * np.finfo(float).eps, maxiter=500))  # fmt: skip

        u_t = root(0.0, u_c) if c > 0 else 0.0
        u_s = root(u_c, u_m)
        out = []
        for u in (u_t, u_s):
            s = np.sqrt(u)
            b = self.eta * u / (u**2 + self.beta)
            f = float(self.free_energy(s, b, s, temp)) if u > 0 else 0.5 * self.eta**2
            hess = self.hessian(s, b, s, temp) if u > 0 else np.diag([self.beta] * 3)
            out.append((s, b, f, hess))
        (s_t, b_t, f_t, h_t), (s_s, b_s, f_s, h_s) = out
        mob = self.mobility(s_s, s_s, temp)
        root_m = np.sqrt(mob)
        kappa = float(np.min(np.linalg.eigvalsh(root_m[:, None] * h_s * root_m[None, :])))
        return ReducedStationaryPoints(
            temperature=temp,
            u_trap=u_t,
            u_saddle=u_s,
            b_trap=b_t,
            b_saddle=b_s,
            lam_trap=u_t * b_t,
            lam_saddle=u_s * b_s,
            free_energy_trap=f_t,
            free_energy_saddle=f_s,
            barrier=f_s - f_t,
            hessian_trap=h_t,
            hessian_saddle=h_s,
            mobility_saddle=mob,
            kappa=kappa,
        )

    # -- integrals
    def log_trap_population(self, temperature: float, x_max: float) -> float:
        """ln of int dalpha dgamma db (alpha gamma)^(n-1) exp(-E3/T) over alpha gamma < x_max.

        The b integral is Gaussian and the alpha/gamma integral at fixed x = alpha gamma
        gives K_0(beta x / T), leaving int_0^x_max dx x^(n-1) K_0(beta x/T)
        sqrt(2 pi T / (x^2 + beta)) exp(-eta^2 beta / (2 T (x^2 + beta))); trapezoidal rule
        in ln x (the integrand decays at both ends; 4000 nodes).
        """
        temp = float(temperature)
        t = np.linspace(np.log(1e-14 * temp / self.beta), np.log(x_max), 4000)
        x = np.exp(t)
        f = (
            self.n * t
            + _log_k0(self.beta * x / temp)
            + 0.5 * np.log(2 * pi * temp / (x**2 + self.beta))
            - self.eta**2 * self.beta / (2 * temp * (x**2 + self.beta))
        )
        w = np.full(t.size, t[1] - t[0])
        w[[0, -1]] *= 0.5
        return float(_logsumexp(f + np.log(w)))

    def lambda_profile(
        self, lam: ArrayLike, temperature: float, n_nodes: int = 2000
    ) -> tuple[Array, Array]:
        """ln p(lambda) (up to a constant) and D(lambda) on the subsystem's exact integrals.

        Returns (log_density, diffusion): F(lambda) = -T log_density + const; D(lambda) =
        T E[|grad lambda|^2 | lambda] (class docstring). Needs n >= 2 (for n = 1 the
        density of lambda is singular at 0).
        """
        if self.n < 2:
            raise ValueError("n: the profile along lambda needs n >= 2 (h >= rank + 2)")
        temp = float(temperature)
        lam_a = np.atleast_1d(np.asarray(lam, dtype=float))
        xs = temp / self.beta
        t = np.linspace(np.log(1e-9 * xs), np.log(max(80 * xs, 4.0)), n_nodes)
        x = np.exp(t)
        z = self.beta * x / temp
        lk0, lk1 = _log_k0(z), _log_k1(z)
        dt = t[1] - t[0]
        log_p = np.empty(lam_a.size)
        log_dp = np.empty(lam_a.size)
        for start in range(0, lam_a.size, 256):
            lm = lam_a[start : start + 256, None]
            base = (self.n - 1) * t[None, :] - self.beta * lm**2 / (2 * temp * x[None, :] ** 2)
            log_p[start : start + 256] = _logsumexp(base + lk0[None, :])
            weight = np.log(2 * x[None, :] * (lm**2 / x[None, :] ** 2 + xs * (self.n - 1)))
            log_dp[start : start + 256] = _logsumexp(
                np.logaddexp(base + lk1[None, :] + weight, base + lk0[None, :] + 2 * t[None, :])
            )
        gauss = -((self.eta - lam_a) ** 2) / (2 * temp)
        log_density = gauss + log_p + np.log(dt)
        diffusion = temp * np.exp(log_dp - log_p)
        return log_density, diffusion

    def mean_first_passage(
        self, temperature: float, threshold: float, start: float = 0.0, n_grid: int = 3000
    ) -> float:
        """Mean first-passage time of lambda from `start` to `threshold` (reflecting below).

        tau = int_start^threshold dy / (D(y) p(y)) int_-inf^y p(z) dz, on a grid uniform in
        asinh(lambda / a), a = (T / beta)^(3/2), the trap's natural scale (trapezoidal rule).
        """
        temp = float(temperature)
        a = (temp / self.beta) ** 1.5
        lo = -(40 * temp / self.eta + 20 * a)
        if not lo < start < threshold:
            raise ValueError(f"start: expected {lo:.3g} < start < threshold, got {start}")
        u = np.linspace(np.arcsinh(lo / a), np.arcsinh(threshold / a), n_grid)
        lam = a * np.sinh(u)
        jac = a * np.cosh(u)
        du = u[1] - u[0]
        log_p, diff = self.lambda_profile(lam, temp)
        lq = log_p + np.log(jac)
        m = float(np.max(lq))
        q = np.exp(lq - m)
        cum = np.concatenate(
            [[0.5 * q[0] * du], 0.5 * q[0] * du + np.cumsum(0.5 * (q[1:] + q[:-1]) * du)]
        )
        integrand = np.log(cum) + m - log_p - np.log(diff) + np.log(jac)
        keep = lam >= start
        integ = integrand[keep]
        uu = u[keep]
        mm = float(np.max(integ))
        f = np.exp(integ - mm)
        tau = float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(uu))) * np.exp(mm)
        # the piece from `start` to the first grid node
        if uu[0] > np.arcsinh(start / a):
            f0 = float(np.interp(np.arcsinh(start / a), u, np.exp(integrand - mm)))
            tau += 0.5 * (f0 + f[0]) * (uu[0] - np.arcsinh(start / a)) * np.exp(mm)
        return tau

    def langer_rate(self, temperature: float) -> float:
        """Langer's rate on F: (|kappa| / 2 pi) Z_saddle / Z_trap, with the harmonic flux
        exp(-F_s/T) (2 pi T)^(3/2) / sqrt|det H_s| at the saddle and the exact trap
        population over alpha gamma < u_saddle. NaN beyond the collapse."""
        temp = float(temperature)
        sp = self.stationary_points(temp)
        if not np.isfinite(sp.barrier):
            return np.nan
        log_zs = (
            -sp.free_energy_saddle / temp
            + 1.5 * log(2 * pi * temp)
            - 0.5 * log(abs(float(np.linalg.det(sp.hessian_saddle))))
        )
        log_zt = self.log_trap_population(temp, sp.u_saddle)
        return abs(sp.kappa) / (2 * pi) * float(np.exp(log_zs - log_zt))


def collapse_temperature(widths: Any, eta: ArrayLike, beta: float, rank: int = 1) -> float:
    """T_c: above it the escaping mode's reduced free energy has no barrier (depth 3).

    T_c = beta max_u g(u) / (h - r - 1), g(u) = u - eta_r^2 u^2 / (u^2 + beta)^2
    (:class:`ReducedSubsystem`); inf for h = r + 1. For the paper's eta_1 = 0.8 and
    beta = 0.32, (h - 2) T_c = 0.013395 (h = 10: T_c = 0.001674, dE/T_c = 17.0).
    """
    return ReducedSubsystem.of_network(widths, eta, beta, rank).collapse_temperature


# ---------------------------------------------------------------------- escape times
@dataclass(frozen=True)
class WideEscape:
    """Escape time of the trap's escaping mode by one method (:func:`wide_escape_time`).

    Attributes
    ----------
    method : str
    widths : list of int
    rank : int
    eta, beta : float
        The escaping mode's strength and the weight decay.
    temperature : ndarray
    tau : ndarray
        Mean escape time in continuous time (lr x steps); NaN where the method has no
        answer (``"reduced"`` above T_c).
    tau_steps : ndarray or None
        tau / lr.
    rate : ndarray
        1 / tau.
    arrhenius_slope : ndarray
        d ln tau / d(1/T) the method implies (central differences where no closed form).
    barrier : float
        The energy barrier dE (per mode, every h).
    barrier_over_T : ndarray
    free_energy_barrier : ndarray
        F_saddle - F_trap of the reduced free energy (depth 3; NaN above T_c or otherwise).
    collapse_temperature : float
        T_c (depth 3; NaN otherwise).
    coupling_factor : float
        The mode-coupling factor applied (1 where not applied).
    valid : ndarray of bool
        Where the method's assumptions hold: ``"zero_modes"`` and ``"chain"`` need
        dE/T >= 3, ``"reduced"`` a free-energy barrier (T < T_c), ``"mfpt_1d"`` always.
    regime : str
        The regime of the method, in words.
    """

    method: str
    widths: list[int]
    rank: int
    eta: float
    beta: float
    temperature: Array
    tau: Array
    tau_steps: Array | None
    rate: Array
    arrhenius_slope: Array
    barrier: float
    barrier_over_T: Array
    free_energy_barrier: Array
    collapse_temperature: float
    coupling_factor: float
    valid: NDArray[np.bool_]
    regime: str


_REGIMES = {
    "zero_modes": "T -> 0 (exact asymptote; at depth 3 needs (h-r)^2 T / beta^3 << 1)",
    "reduced": "T < T_c, where the reduced free energy has a barrier (depth 3)",
    "mfpt_1d": "any T, with or without a barrier (depth 3, h >= r + 2)",
    "chain": "the width-1 chain (h = 1 per mode), dE/T >> 1",
}


def _tau_one(method: str, ctx: dict[str, Any], temp: float) -> float:
    if method == "zero_modes":
        return float(ctx["zm"].tau(temp))
    if method == "chain":
        return float(kramers_escape_time(ctx["eta"], ctx["beta"], ctx["depth"], temp).tau)
    sub: ReducedSubsystem = ctx["sub"]
    c = ctx["coupling"]
    if method == "reduced":
        k = sub.langer_rate(temp)
        return 1.0 / (c * k) if np.isfinite(k) else np.nan
    return sub.mean_first_passage(temp, ctx["threshold"], ctx["start"], ctx["n_grid"]) / c


def wide_escape_time(
    widths: Any,
    eta: ArrayLike,
    beta: float,
    temperature: ArrayLike,
    *,
    method: str = "reduced",
    rank: int = 1,
    lr: float | None = None,
    threshold: float | None = None,
    start: float = 0.0,
    coupling: bool = True,
    n_grid: int = 3000,
) -> WideEscape:
    """Mean escape time of mode `rank` from the rank-`rank` trap of [d_in, h, ..., h, d_out].

    Continuous time (lr x steps), additive Langevin noise at temperature T, exact-moment
    data (module docstring). Methods:

    - ``"zero_modes"``: tau = C T^((L-1)(h-r-1)/2) exp(dE/T), Langer with the symmetry
      orbits (:func:`zero_mode_structure`); any depth. Exact as T -> 0. Local Arrhenius
      slope dE - (L-1)(h-r-1) T / 2.
    - ``"reduced"``: 1 / (c k_F), k_F Langer's rate on the exact reduced free energy of the
      escaping mode (:meth:`ReducedSubsystem.langer_rate`: kinetic prefactor |kappa| from
      M Hess F with the Markovian frame-rotation mobility of b, exact trap population) and
      c the harmonic mode-coupling factor (:func:`mode_coupling_factor`). Depth 3, T < T_c.
    - ``"mfpt_1d"``: the 1-D mean first-passage time along lambda from `start` to
      `threshold` on the exact F(lambda), D(lambda) (:meth:`ReducedSubsystem.mean_first_passage`),
      divided by c. Depth 3, h >= r + 2; with or without a barrier. It treats every
      coordinate but lambda as equilibrated at each lambda, so a start from the exact trap
      (all of the mode's weights zero) takes longer by the time they need to spread.
    - ``"chain"``: the width-1 chain's Kramers-Langer time of the escaping mode.

    Parameters
    ----------
    widths : sequence of int
        [d_in, h, ..., h, d_out].
    eta : array_like
        Mode strengths (the data's, at least rank + 1).
    beta : float
    temperature : array_like
        T > 0.
    method : {"zero_modes", "reduced", "mfpt_1d", "chain"}
    rank : int
        Trap rank r; mode r escapes.
    lr : float, optional
        To give tau in steps too.
    threshold : float, optional
        ``"mfpt_1d"``'s end point; default the midpoint between the saddle and the learned
        minimum (:func:`grokescape.theory.mode_thresholds`), the escape criteria's default.
    start : float
        ``"mfpt_1d"``'s starting amplitude.
    coupling : bool
        Apply the mode-coupling factor in ``"reduced"`` and ``"mfpt_1d"``.
    n_grid : int
        ``"mfpt_1d"``'s grid points along lambda (3000: 1e-5 relative; 1200: about 1e-3).

    Returns
    -------
    WideEscape
    """
    if method not in ESCAPE_METHODS:
        raise ValueError(f"method: expected one of {ESCAPE_METHODS}, got {method!r}")
    rank = _rank(rank)
    e = _eta(eta, rank)
    w, depth, h = _widths(widths, rank, e.size)
    b = _beta(beta)
    temps = np.atleast_1d(_positive(temperature, "temperature")).astype(float)
    lr_v = None if lr is None else float(_positive(lr, "lr"))
    zm = zero_mode_structure(w, e, b, rank)
    ctx: dict[str, Any] = {"zm": zm, "eta": float(e[rank]), "beta": b, "depth": depth}
    c = 1.0
    sub = None
    if depth == 3:
        sub = ReducedSubsystem(h - rank, float(e[rank]), b)
    if method in ("reduced", "mfpt_1d"):
        if sub is None:
            raise ValueError(f"method: {method!r} is for depth 3, got depth {depth}")
        if method == "mfpt_1d" and sub.n < 2:
            raise ValueError("method: 'mfpt_1d' needs h >= rank + 2 (lambda is singular at n = 1)")
        c = mode_coupling_factor(w, e, b, rank) if coupling else 1.0
        ctx.update(sub=sub, coupling=c, start=float(start))
        ctx["n_grid"] = _checks.integer(n_grid, "n_grid", minimum=100)
        ctx["threshold"] = (
            float(np.asarray(mode_thresholds(e[rank], b, depth).lam))
            if threshold is None
            else float(threshold)
        )
    taus = np.array([_tau_one(method, ctx, t) for t in temps])
    if method == "zero_modes":
        slope = zm.barrier - zm.exponent * temps
    elif method == "chain":
        slope = np.full(temps.shape, zm.barrier)
    else:
        eps = 1e-4
        up = np.array([_tau_one(method, ctx, t / (1 + eps)) for t in temps])
        dn = np.array([_tau_one(method, ctx, t / (1 - eps)) for t in temps])
        slope = (np.log(up) - np.log(dn)) / (2 * eps / temps)
    f_bar = np.full(temps.shape, np.nan)
    t_c = np.nan
    if sub is not None:
        t_c = sub.collapse_temperature
        f_bar = np.array([sub.stationary_points(t).barrier for t in temps])
    over_t = zm.barrier / temps
    if method == "reduced":
        valid = np.nan_to_num(f_bar, nan=0.0) > 0.0
    elif method == "mfpt_1d":
        valid = np.ones(temps.shape, dtype=bool)
    else:
        valid = over_t >= 3.0
    return WideEscape(
        method=method,
        widths=w,
        rank=rank,
        eta=float(e[rank]),
        beta=b,
        temperature=temps,
        tau=taus,
        tau_steps=None if lr_v is None else taus / lr_v,
        rate=1.0 / taus,
        arrhenius_slope=slope,
        barrier=zm.barrier,
        barrier_over_T=over_t,
        free_energy_barrier=f_bar,
        collapse_temperature=t_c,
        coupling_factor=c,
        valid=valid,
        regime=_REGIMES[method],
    )
