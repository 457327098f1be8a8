"""Data sets: the Gaussian teacher of the paper and the user's own arrays.

A :class:`Dataset` holds training and test arrays and the quantities the per-mode theory
needs: the empirical second moments of the training set, the mode strengths ``eta_hat``
(singular values of the whitened input-output covariance) and the mode vectors on which
the core measures the per-mode amplitudes lambda_i = u_i^T W_L ... W_1 v_i.

Moments are raw second moments, (1/n) X^T X, without centering: the networks are
bias-free by default and the teacher has zero mean.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from grokescape import _checks

# pandas is imported where a table is made: at module level it would be most of
# `import grokescape`'s time (tests/test_import.py).
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Dataset", "teacher_data"]

Array = NDArray[np.float64]


class Dataset:
    """Training and test data with the empirical mode structure of the training set.

    Parameters
    ----------
    x_train, y_train : array_like, shapes (n_train, d_in) and (n_train, d_out)
        Training inputs and targets.
    x_test, y_test : array_like, optional
        Test inputs and targets (shapes (n_test, d_in), (n_test, d_out)); may be omitted,
        then test observables are NaN.
    eta : array_like, optional
        Nominal mode strengths of the generating process, when known (the teacher's).
    pool_size : int, optional
        Size of the pool the training set was drawn from (sparse sub-sampling), if any.

    Attributes
    ----------
    eta_hat : ndarray, shape (r,)
        Empirical mode strengths, r = min(d_in, d_out): singular values of the whitened
        empirical covariance M = Sigma_yx Sigma_xx^(-1/2), in descending order.
    mode_out, mode_in : ndarray, shapes (d_out, r) and (d_in, r)
        Columns u_i and v_i such that the amplitude of mode i of an end-to-end map W is
        lambda_i = u_i^T W v_i. With M = U S V^T, u_i = U[:, i] and
        v_i = Sigma_xx^(1/2) V[:, i]; for Sigma_xx = I these are the singular vectors.
        Signs are fixed so that the largest component of each u_i is positive.
    irreducible_loss : float
        The part of the training data loss no linear map removes:
        1/2 (tr Sigma_yy - sum_i eta_hat_i^2). With Sigma_xx = I the data loss of an
        aligned map is sum_i 1/2 (lambda_i - eta_hat_i)^2 + irreducible_loss.
    """

    def __init__(
        self,
        x_train: ArrayLike,
        y_train: ArrayLike,
        x_test: ArrayLike | None = None,
        y_test: ArrayLike | None = None,
        *,
        eta: ArrayLike | None = None,
        pool_size: int | None = None,
    ) -> None:
        self.x_train = _checks.finite_array(x_train, "x_train", ndim=2)
        self.y_train = _checks.finite_array(y_train, "y_train", ndim=2)
        n, d_in = self.x_train.shape
        if n < 1 or d_in < 1:
            raise ValueError(
                f"x_train: expected a non-empty (n, d_in) array, got {self.x_train.shape}"
            )
        if self.y_train.shape[0] != n or self.y_train.shape[1] < 1:
            raise ValueError(
                f"y_train: expected shape ({n}, d_out) to match x_train, got {self.y_train.shape}"
            )
        d_out = self.y_train.shape[1]
        if (x_test is None) != (y_test is None):
            raise ValueError("x_test, y_test: give both or neither")
        if x_test is None or y_test is None:
            self.x_test = np.zeros((0, d_in))
            self.y_test = np.zeros((0, d_out))
        else:
            self.x_test = _checks.finite_array(x_test, "x_test", ndim=2)
            self.y_test = _checks.finite_array(y_test, "y_test", ndim=2)
            if self.x_test.shape[1] != d_in:
                raise ValueError(
                    f"x_test: expected {d_in} columns like x_train, got shape {self.x_test.shape}"
                )
            if self.y_test.shape != (self.x_test.shape[0], d_out):
                raise ValueError(
                    f"y_test: expected shape ({self.x_test.shape[0]}, {d_out}), "
                    f"got {self.y_test.shape}"
                )
        for name in ("x_train", "y_train", "x_test", "y_test"):
            arr = np.ascontiguousarray(getattr(self, name))
            arr.flags.writeable = False
            setattr(self, name, arr)
        self.eta = None if eta is None else _checks.finite_array(eta, "eta", ndim=1)
        self.pool_size = pool_size
        self._compute_modes()
        self._cast_cache: dict[np.dtype[Any], tuple[NDArray[Any], ...]] = {}

    # ------------------------------------------------------------------ moments and modes
    def _compute_modes(self) -> None:
        n = self.n_train
        x, y = self.x_train, self.y_train
        self.sigma_xx: Array = x.T @ x / n
        self.sigma_yx: Array = y.T @ x / n
        self.sigma_yy: Array = y.T @ y / n
        evals, evecs = np.linalg.eigh(self.sigma_xx)
        tol = evals.max() * max(self.sigma_xx.shape) * np.finfo(float).eps
        if np.any(evals <= tol):
            warnings.warn(
                "x_train: the empirical input covariance is singular (n_train < d_in or "
                "collinear inputs); modes use its pseudo-inverse square root",
                stacklevel=3,
            )
        safe = np.where(evals > tol, evals, np.inf)
        inv_sqrt = (evecs / np.sqrt(safe)) @ evecs.T
        sqrt = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
        whitened = self.sigma_yx @ inv_sqrt
        u, s, vt = np.linalg.svd(whitened)
        r = min(self.d_in, self.d_out)
        u, s, v = u[:, :r], s[:r], vt[:r].T
        signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(r)])
        signs[signs == 0] = 1.0
        self.eta_hat: Array = s
        self.mode_out: Array = u * signs
        self.mode_in: Array = (sqrt @ v) * signs
        self.irreducible_loss = 0.5 * (np.trace(self.sigma_yy) - float(np.sum(s**2)))

    # ------------------------------------------------------------------ shape
    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def d_in(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def d_out(self) -> int:
        return int(self.y_train.shape[1])

    @property
    def n_modes(self) -> int:
        return int(self.eta_hat.shape[0])

    @cached_property
    def irreducible_test_mse(self) -> float:
        """Test MSE (mean over samples and outputs) of the best linear map fitted on the
        test set itself: a floor no network reaches (NaN without test data)."""
        if self.n_test == 0:
            return float("nan")
        w, *_ = np.linalg.lstsq(self.x_test, self.y_test, rcond=None)
        return float(np.mean((self.y_test - self.x_test @ w) ** 2))

    def arrays(self, dtype: Any) -> tuple[NDArray[Any], ...]:
        """(x_train, y_train, x_test, y_test) as C-contiguous arrays of `dtype`, cached."""
        key = np.dtype(dtype)
        if key not in self._cast_cache:
            self._cast_cache[key] = tuple(
                np.ascontiguousarray(a, dtype=key)
                for a in (self.x_train, self.y_train, self.x_test, self.y_test)
            )
        return self._cast_cache[key]

    def summary(self) -> pd.DataFrame:
        """One row per mode: nominal eta (if known) and empirical eta_hat."""
        import pandas as pd

        df = pd.DataFrame({"mode": np.arange(self.n_modes), "eta_hat": self.eta_hat})
        if self.eta is not None and self.eta.shape == self.eta_hat.shape:
            df.insert(1, "eta", self.eta)
        return df

    def __repr__(self) -> str:
        eta = "" if self.eta is None else f", eta={np.array2string(self.eta, precision=4)}"
        pool = "" if self.pool_size is None else f", pool={self.pool_size}"
        return (
            f"Dataset(n_train={self.n_train}, n_test={self.n_test}, d_in={self.d_in}, "
            f"d_out={self.d_out}{eta}, eta_hat={np.array2string(self.eta_hat, precision=4)}{pool})"
        )


def _teacher_samples(eta: Array, n: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """n samples of (x, y) ~ N(0, [[I, diag(eta)], [diag(eta), I]]) by a Cholesky factor."""
    d = eta.shape[0]
    cov = np.block([[np.eye(d), np.diag(eta)], [np.diag(eta), np.eye(d)]])
    chol = np.linalg.cholesky(cov)
    z = rng.standard_normal((n, 2 * d)) @ chol.T
    return z[:, :d], z[:, d:]


def _exact_moments(x: Array, y: Array, eta: Array) -> tuple[Array, Array]:
    """Transform a sample so that (1/n) X^T X = I, (1/n) Y^T X = diag(eta) and
    (1/n) Y^T Y = I hold to rounding (the teacher's moments exactly)."""
    n, d = x.shape

    def whiten(a: Array) -> Array:
        # a (n, d) -> a C with (1/n) (aC)^T (aC) = I, via a thin QR: a = QR, aC = sqrt(n) Q.
        q, _ = np.linalg.qr(a)
        return np.sqrt(n) * q

    xw = whiten(x)
    resid = y - xw @ (xw.T @ y) / n  # the part of y orthogonal to the inputs
    resid -= xw @ (xw.T @ resid) / n  # a second projection removes rounding leftovers
    rw = whiten(resid)
    rw -= xw @ (xw.T @ rw) / n
    y_new = xw * eta + rw * np.sqrt(1.0 - eta**2)
    return xw, y_new


def teacher_data(
    eta: ArrayLike,
    n_train: int,
    n_test: int,
    seed: int,
    *,
    exact_moments: bool = False,
    pool: int | None = None,
) -> Dataset:
    """Draw a data set from the paper's Gaussian teacher (physics.md section 3).

    The joint vector (x, y) is zero-mean Gaussian with Sigma_xx = Sigma_yy = I and
    Sigma_yx = diag(eta), so d_in = d_out = len(eta).

    Parameters
    ----------
    eta : array_like, shape (d,)
        Mode strengths, each with |eta_i| < 1 (the covariance must be positive definite).
    n_train, n_test : int
        Training and test set sizes (n_test may be 0).
    seed : int
        Seed of numpy's default generator; the same seed gives the same data.
    exact_moments : bool, default False
        Transform the training sample so that its empirical Sigma_xx = I,
        Sigma_yx = diag(eta) (and Sigma_yy = I) hold to rounding; the per-mode theory is
        then exact for full-batch dynamics. Needs n_train >= 2 d. The test set is left as
        drawn.
    pool : int, optional
        Sparse sub-sampling: draw a pool of this many samples and take the n_train
        training samples from it without replacement; the test set is drawn fresh.

    Returns
    -------
    Dataset
        With ``eta`` the nominal strengths and ``eta_hat`` the empirical ones.
    """
    eta_arr = _checks.finite_array(eta, "eta", ndim=1)
    if eta_arr.size < 1:
        raise ValueError("eta: expected at least one mode strength")
    if np.any(np.abs(eta_arr) >= 1):
        raise ValueError(
            f"eta: every |eta_i| must be < 1 (positive definite covariance), got {eta_arr}"
        )
    n_train = _checks.integer(n_train, "n_train", minimum=1)
    n_test = _checks.integer(n_test, "n_test", minimum=0)
    seed = _checks.seed(seed)
    d = eta_arr.size
    if exact_moments and n_train < 2 * d:
        raise ValueError(
            f"n_train: exact_moments needs n_train >= 2 * len(eta) = {2 * d}, got {n_train}"
        )
    rng = np.random.default_rng(seed)
    if pool is not None:
        pool = _checks.integer(pool, "pool", minimum=1)
        if pool < n_train:
            raise ValueError(f"pool: must hold at least n_train={n_train} samples, got {pool}")
        x_pool, y_pool = _teacher_samples(eta_arr, pool, rng)
        chosen = rng.choice(pool, size=n_train, replace=False)
        x_train, y_train = x_pool[chosen], y_pool[chosen]
    else:
        x_train, y_train = _teacher_samples(eta_arr, n_train, rng)
    x_test, y_test = _teacher_samples(eta_arr, n_test, rng)
    if exact_moments:
        x_train, y_train = _exact_moments(x_train, y_train, eta_arr)
    return Dataset(x_train, y_train, x_test, y_test, eta=eta_arr, pool_size=pool)
