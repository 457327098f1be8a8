"""Singular values of the end-to-end map (cpp/include/grokescape/singular_values.hpp, one-sided
Jacobi) against a 40-digit reference (mpmath). A one-layer network's map is its weight
matrix, so `observables` returns the singular values of any matrix set as its weights."""

import numpy as np
import pytest

import grokescape as ge

mpmath = pytest.importorskip("mpmath")


def singular_values(matrix):
    rows, cols = matrix.shape
    ens = ge.Ensemble([cols, rows], 1)
    ens.set_weights([matrix[None]])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((cols + 8, cols)), rng.standard_normal((cols + 8, rows))
    obs = ens.observables(ge.Dataset(x, y, x, y))
    return np.array([obs.iloc[0][f"sv_{k}"] for k in range(min(rows, cols))])


def reference(matrix):
    with mpmath.workdps(40):
        s = mpmath.svd_r(mpmath.matrix(matrix.tolist()), compute_uv=False)
        return np.sort(np.array([float(v) for v in s]))[::-1]


@pytest.mark.parametrize("shape", [(16, 16), (7, 7), (12, 5), (5, 12), (2, 2), (24, 24)])
@pytest.mark.parametrize("grading", ["columns", "rows"])
def test_graded_matrices_to_relative_accuracy(shape, grading):
    """Singular values spread over 12 decades by scaling the columns (or rows) of a random
    matrix are determined to high relative accuracy by its entries; one-sided Jacobi finds
    every one of them to a few ulps (Eigen's JacobiSVD, used before, was 6.7e-13 off on the
    16 x 16 column-graded case and 7.8e-9 on the row-graded one)."""
    rows, cols = shape
    rng = np.random.default_rng(rows * 31 + cols)
    matrix = rng.standard_normal(shape)
    if grading == "columns":
        matrix = matrix * 10.0 ** -np.linspace(0, 12, cols)
    else:
        matrix = matrix * 10.0 ** -np.linspace(0, 12, rows)[:, None]
    got, want = singular_values(matrix), reference(matrix)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("n", [3, 16, 64])
def test_random_and_rank_deficient_matrices(n):
    rng = np.random.default_rng(n)
    full = rng.standard_normal((n, n))
    low_rank = rng.standard_normal((n, 2)) @ rng.standard_normal((2, n))
    for matrix in (full, low_rank):
        got = singular_values(matrix)
        assert np.all(np.diff(got) <= 0), "largest first"
        want = reference(matrix)  # 64 x 64: a few seconds in mpmath
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-14 * want[0])
    assert np.all(singular_values(low_rank)[2:] < 1e-14 * np.abs(low_rank).max())


def test_zero_and_exact_cases():
    assert np.array_equal(singular_values(np.zeros((4, 3))), np.zeros(3))
    diagonal = np.diag([3.0, -2.0, 0.5, 0.0])[:, [2, 0, 3, 1]]  # permuted, one sign flipped
    assert np.array_equal(singular_values(diagonal), [3.0, 2.0, 0.5, 0.0])
    tiny = 1e-200 * np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(singular_values(tiny), 1e-200 * reference(tiny / 1e-200), rtol=1e-14)
