"""Bad input raises a clear exception naming the argument; odd but valid input works."""

import numpy as np
import pytest

import grokescape as ge


@pytest.fixture(scope="module")
def data():
    return ge.teacher_data([0.9, 0.8], 64, 16, seed=0)


@pytest.fixture
def ens():
    e = ge.Ensemble([2, 10, 10, 2], 3)
    e.init_random(seed=0)
    return e


@pytest.mark.parametrize(
    "widths,exc,match",
    [
        ([2], ValueError, "widths"),
        ([2, 0, 2], ValueError, "widths"),
        ([2, -3, 2], ValueError, "widths"),
        ([2, 2.5, 2], TypeError, "widths"),
        ("2,10,2", TypeError, "widths"),
        (5, TypeError, "widths"),
    ],
)
def test_bad_widths(widths, exc, match):
    with pytest.raises(exc, match=match):
        ge.Ensemble(widths, 2)


@pytest.mark.parametrize("n", [0, -1])
def test_n_members_below_one(n):
    with pytest.raises(ValueError, match="n_members"):
        ge.Ensemble([2, 2], n)


def test_n_members_not_integer():
    with pytest.raises(TypeError, match="n_members"):
        ge.Ensemble([2, 2], 2.0)


@pytest.mark.parametrize(
    "dtype,exc", [("float16", ValueError), ("int64", ValueError), ("banana", TypeError)]
)
def test_wrong_dtype(dtype, exc):
    with pytest.raises(exc, match="dtype"):
        ge.Ensemble([2, 2], 2, dtype=dtype)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        ge.Ensemble([2, 2], 2, activation="relu6")


def test_memory_estimate_refuses_before_allocating():
    with pytest.raises(MemoryError, match="GiB"):
        ge.Ensemble([2, 10, 10, 2], 10**12)


def test_history_memory_estimate(data, ens):
    with pytest.raises(MemoryError, match="Recording"):
        ens.train(data, 10**12, 0.1, 0.1, record_every=1)


@pytest.mark.parametrize("lr", [0.0, -0.1, np.nan, np.inf])
def test_lr_must_be_positive_and_finite(data, ens, lr):
    with pytest.raises(ValueError, match="lr"):
        ens.train(data, 1, lr, 0.1)


@pytest.mark.parametrize("beta", [-0.01, np.nan])
def test_beta_must_be_nonnegative(data, ens, beta):
    with pytest.raises(ValueError, match="beta"):
        ens.train(data, 1, 0.1, beta)
    with pytest.raises(ValueError, match="beta"):
        ens.loss(data, beta)


def test_temperature_must_be_nonnegative(data, ens):
    with pytest.raises(ValueError, match="temperature"):
        ens.train(data, 1, 0.1, 0.1, temperature=-1e-3)


@pytest.mark.parametrize("b,exc", [(0, ValueError), (-4, ValueError), (2.5, TypeError)])
def test_batch_size_at_least_one(data, ens, b, exc):
    with pytest.raises(exc, match="batch_size"):
        ens.train(data, 1, 0.1, 0.1, batch_size=b)


def test_per_member_arrays_must_have_one_value_per_member(data, ens):
    with pytest.raises(ValueError, match=r"lr: expected a scalar or an array of shape \(3,\)"):
        ens.train(data, 1, np.array([0.1, 0.2]), 0.1)


def test_other_train_arguments(data, ens):
    with pytest.raises(ValueError, match="steps"):
        ens.train(data, -1, 0.1, 0.1)
    with pytest.raises(ValueError, match="sampling"):
        ens.train(data, 1, 0.1, 0.1, batch_size=8, sampling="shuffle")
    with pytest.raises(ValueError, match="n_threads"):
        ens.train(data, 1, 0.1, 0.1, n_threads=0)
    with pytest.raises(ValueError, match="seed"):
        ens.train(data, 1, 0.1, 0.1, seed=-1)
    with pytest.raises(ValueError, match="record_every"):
        ens.train(data, 1, 0.1, 0.1, record_every=-5)
    with pytest.raises(TypeError, match="data"):
        ens.train((np.zeros((4, 2)), np.zeros((4, 2))), 1, 0.1, 0.1)


def test_data_shape_must_match_widths(ens):
    other = ge.teacher_data([0.9, 0.8, 0.5], 32, 8, seed=0)
    with pytest.raises(ValueError, match="data: has d_in=3"):
        ens.train(other, 1, 0.1, 0.1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_is_refused(bad):
    x = np.ones((10, 2))
    x[3, 1] = bad
    with pytest.raises(ValueError, match="x_train: contains NaN or inf"):
        ge.Dataset(x, np.ones((10, 2)))
    y = np.ones((5, 2))
    y[0, 0] = bad
    with pytest.raises(ValueError, match="y_test: contains NaN or inf"):
        ge.Dataset(np.ones((10, 2)), np.ones((10, 2)), np.ones((5, 2)), y)


def test_dataset_shapes():
    with pytest.raises(ValueError, match="y_train"):
        ge.Dataset(np.ones((10, 2)), np.ones((9, 2)))
    with pytest.raises(ValueError, match="x_train"):
        ge.Dataset(np.ones(10), np.ones((10, 2)))
    with pytest.raises(ValueError, match="x_test"):
        ge.Dataset(np.ones((10, 2)), np.ones((10, 2)), np.ones((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="x_test, y_test"):
        ge.Dataset(np.ones((10, 2)), np.ones((10, 2)), np.ones((4, 2)))


def test_teacher_arguments():
    with pytest.raises(ValueError, match="eta"):
        ge.teacher_data([0.9, 1.0], 10, 10, seed=0)
    with pytest.raises(ValueError, match="n_train"):
        ge.teacher_data([0.9], 0, 10, seed=0)
    with pytest.raises(ValueError, match="n_train: exact_moments"):
        ge.teacher_data([0.9, 0.8], 3, 10, seed=0, exact_moments=True)
    with pytest.raises(ValueError, match="pool"):
        ge.teacher_data([0.9], 10, 10, seed=0, pool=5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused(ens, bad):
    w = [np.ones((10, 2)), np.ones((10, 10)), np.ones((2, 10))]
    w[1][2, 3] = bad
    with pytest.raises(ValueError, match=r"weights\[1\]: contains NaN or inf"):
        ens.set_weights(w)
    with pytest.raises(ValueError, match="params"):
        ens.set_params(np.full(ens.n_params, bad))


def test_weight_shapes(ens):
    with pytest.raises(ValueError, match="weights: expected 3 arrays"):
        ens.set_weights([np.ones((10, 2))])
    with pytest.raises(ValueError, match=r"weights\[0\]: expected shape \(10, 2\)"):
        ens.set_weights([np.ones((2, 10)), np.ones((10, 10)), np.ones((2, 10))])
    with pytest.raises(ValueError, match="biases: this ensemble has no biases"):
        ens.set_weights(
            [np.ones((10, 2)), np.ones((10, 10)), np.ones((2, 10))],
            [np.ones(10), np.ones(10), np.ones(2)],
        )


def test_float32_overflow_is_refused():
    e = ge.Ensemble([2, 2], 1, dtype="float32")
    with pytest.raises(ValueError, match="overflow float32"):
        e.set_weights([np.full((2, 2), 1e300)])


def test_init_random_arguments(ens):
    with pytest.raises(ValueError, match="std"):
        ens.init_random(std=-1.0)
    with pytest.raises(ValueError, match="std"):
        ens.init_random(std="xavier")
    with pytest.raises(ValueError, match="std: 'paper'"):
        ge.Ensemble([2, 10, 5, 2], 1).init_random(std="paper")


def test_non_contiguous_inputs_are_accepted_correctly():
    rng = np.random.default_rng(0)
    base_x = rng.standard_normal((40, 4))
    base_y = rng.standard_normal((2, 40)).T  # a transposed (non C-contiguous) view
    x_strided = base_x[::2, ::2]  # strided view, shape (20, 2)
    y_fortran = np.asfortranarray(base_y[::2])
    a = ge.Dataset(x_strided, y_fortran)
    b = ge.Dataset(np.ascontiguousarray(x_strided), np.ascontiguousarray(y_fortran))
    w0 = rng.standard_normal((5, 4))[:, ::2]  # strided (5, 2)
    w1 = np.asfortranarray(rng.standard_normal((2, 5)))
    e1, e2 = ge.Ensemble([2, 5, 2], 1), ge.Ensemble([2, 5, 2], 1)
    e1.set_weights([w0, w1])
    e2.set_weights([np.ascontiguousarray(w0), np.ascontiguousarray(w1)])
    assert np.array_equal(e1.params, e2.params)
    e1.train(a, 20, 0.05, 0.1)
    e2.train(b, 20, 0.05, 0.1)
    assert np.array_equal(e1.params, e2.params)


def test_weights_views_are_read_only(ens):
    with pytest.raises(ValueError):
        ens.weights[0][0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        ens.params[0, 0] = 1.0


def test_divergent_member_is_flagged_and_stops_while_others_go_on(data):
    e = ge.Ensemble([2, 10, 10, 2], 3)
    e.init_random(seed=1)
    lr = np.array([0.05, 50.0, 0.05])
    hist = e.train(data, 200, lr, 0.0, batch_size=16, record_every=50)
    assert list(hist.diverged) == [False, True, False]
    assert 0 < hist.diverged_step[1] < 200 and hist.diverged_step[0] == -1
    assert np.isnan(hist.train_mse[-1, 1]) and np.all(np.isfinite(hist.train_mse[-1, [0, 2]]))
    assert list(e.steps) == [200, hist.diverged_step[1], 200]
    assert e.diverged[1]
    # a second call skips the diverged member and trains the others
    e.train(data, 10, lr, 0.0, batch_size=16)
    assert list(e.steps) == [210, hist.diverged_step[1], 210]
    assert np.all(np.isfinite(e.params[[0, 2]]))
