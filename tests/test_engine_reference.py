"""The core against the NumPy float64 reference: loss, gradients, full-batch and minibatch
SGD steps, finite differences, and exact identities of the dynamics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as ref

import grokescape as ge
from grokescape._native import core


def assert_rel(actual, expected, rtol, what=""):
    """Elementwise agreement with tolerance rtol * (largest |expected|)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(np.max(np.abs(expected)), 1e-300)
    err = np.max(np.abs(actual - expected)) / scale
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.0e}"


def random_case(rng, with_bias, activation="linear", n_members=3):
    depth = int(rng.integers(1, 6))
    widths = [int(w) for w in rng.integers(1, 13, size=depth + 1)]
    n = int(rng.integers(max(widths[0], 1) + 2, 40))
    x = rng.standard_normal((n, widths[0]))
    y = rng.standard_normal((n, widths[-1]))
    data = ge.Dataset(
        x, y, rng.standard_normal((7, widths[0])), rng.standard_normal((7, widths[-1]))
    )
    ens = ge.Ensemble(
        widths,
        n_members,
        bias=with_bias,
        activation=activation,
        decay_bias=bool(rng.integers(0, 2)),
    )
    weights = [
        rng.standard_normal((n_members, widths[l + 1], widths[l])) / np.sqrt(widths[l])
        for l in range(depth)
    ]
    biases = (
        [0.3 * rng.standard_normal((n_members, widths[l + 1])) for l in range(depth)]
        if with_bias
        else None
    )
    ens.set_weights(weights, biases)
    beta = rng.uniform(0, 0.5, size=n_members)
    lr = rng.uniform(0.001, 0.03, size=n_members)
    return data, ens, weights, biases, beta, lr


def member(arrs, m):
    return None if arrs is None else [a[m] for a in arrs]


CASES = [(seed, seed % 2 == 1, "tanh" if seed % 10 == 9 else "linear") for seed in range(200)]


@pytest.mark.parametrize("seed,with_bias,activation", CASES)
def test_loss_gradients_and_steps_match_reference(seed, with_bias, activation):
    rng = np.random.default_rng(seed)
    data, ens, weights, biases, beta, lr = random_case(rng, with_bias, activation)
    loss = ens.loss(data, beta)
    gw, gb = ens.gradients(data, beta)
    for m in range(ens.n_members):
        w_m, b_m = member(weights, m), member(biases, m)
        args = (data.x_train, data.y_train, beta[m], ens.decay_bias, activation)
        assert_rel(loss[m], ref.loss(w_m, b_m, *args), 1e-12, "loss")
        rgw, rgb = ref.gradients(w_m, b_m, *args)
        for l in range(ens.depth):
            assert_rel(gw[l][m], rgw[l], 1e-12, f"grad W{l}")
            if with_bias:
                assert_rel(gb[l][m], rgb[l], 1e-12, f"grad b{l}")
    k = int(rng.integers(1, 6))
    ens.train(data, k, lr, beta, batch_size=None, n_threads=1)
    for m in range(ens.n_members):
        w_m, b_m = member(weights, m), member(biases, m)
        for _ in range(k):
            w_m, b_m = ref.sgd_step(
                w_m, b_m, data.x_train, data.y_train, lr[m], beta[m], ens.decay_bias, activation
            )
        for l in range(ens.depth):
            assert_rel(ens.weights[l][m], w_m[l], 1e-12, f"W{l} after {k} steps")
            if with_bias:
                assert_rel(ens.biases[l][m], b_m[l], 1e-12, f"b{l} after {k} steps")


@pytest.mark.parametrize("seed", range(12))
def test_gradients_match_central_finite_differences(seed):
    rng = np.random.default_rng(1000 + seed)
    data, ens, weights, biases, beta, _ = random_case(
        rng, seed % 2 == 0, "tanh" if seed % 3 == 0 else "linear", 1
    )
    p0 = ens.params[0].copy()
    n_p = p0.size
    probe = ge.Ensemble(
        ens.widths, 2 * n_p, bias=ens.bias, activation=ens.activation, decay_bias=ens.decay_bias
    )
    h = 1e-5
    shifts = np.repeat(p0[None, :], 2 * n_p, axis=0)
    shifts[0::2][np.arange(n_p), np.arange(n_p)] += h
    shifts[1::2][np.arange(n_p), np.arange(n_p)] -= h
    probe.set_params(shifts)
    losses = probe.loss(data, beta[0])
    fd = (losses[0::2] - losses[1::2]) / (2 * h)
    gw, gb = ens.gradients(data, beta[0])
    flat = np.zeros(n_p)
    for l, o in enumerate(ens.weight_offsets):
        flat[o : o + gw[l][0].size] = gw[l][0].ravel()
        if ens.bias:
            b = ens.bias_offsets[l]
            flat[b : b + gb[l][0].size] = gb[l][0]
    assert_rel(fd, flat, 1e-6, "finite differences")


@pytest.mark.parametrize("seed", range(20))
def test_minibatch_step_uses_epoch_batches_and_obeys_balance_identity(seed):
    """D_j' = (1 - lr beta)^2 D_j + lr^2 (G_{j+1}^T G_{j+1} - G_j G_j^T) for one minibatch
    step, with D_j = W_{j+1}^T W_{j+1} - W_j W_j^T and G_j the minibatch data gradient."""
    rng = np.random.default_rng(2000 + seed)
    depth = int(rng.integers(2, 6))
    widths = [int(w) for w in rng.integers(1, 13, size=depth + 1)]
    n, batch = 50, int(rng.integers(2, 20))
    data = ge.Dataset(rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1])))
    ens = ge.Ensemble(widths, 3)
    ens.init_random(seed=seed)
    lr, beta, sd = 0.01, 0.1, 77
    # advance to a random step inside some epoch, then check one step
    t0 = int(rng.integers(0, 3 * (n // batch)))
    ens.train(data, t0, lr, beta, batch_size=batch, seed=sd)
    before = [w.copy() for w in ens.weights]
    ens.train(data, 1, lr, beta, batch_size=batch, seed=sd)
    assert not ens.diverged.any()
    per_epoch = n // batch
    epoch, within = divmod(t0, per_epoch)
    for m in range(ens.n_members):
        perm = core.epoch_permutation(sd, m, epoch, n)
        idx = ref.epoch_batches(perm, batch)[within]
        w = member(before, m)
        g, _ = ref.gradients(w, None, data.x_train[idx], data.y_train[idx], 0.0, l2=False)
        w_new = [ens.weights[l][m] for l in range(depth)]
        expect_w, _ = ref.sgd_step(w, None, data.x_train[idx], data.y_train[idx], lr, beta)
        for l in range(depth):
            assert_rel(w_new[l], expect_w[l], 1e-12, "minibatch step")
        for j in range(depth - 1):
            d_old = w[j + 1].T @ w[j + 1] - w[j] @ w[j].T
            d_new = w_new[j + 1].T @ w_new[j + 1] - w_new[j] @ w_new[j].T
            predicted = (1 - lr * beta) ** 2 * d_old + lr**2 * (
                g[j + 1].T @ g[j + 1] - g[j] @ g[j].T
            )
            scale = (
                np.abs(w_new[j + 1].T @ w_new[j + 1]).max() + np.abs(w_new[j] @ w_new[j].T).max()
            )
            assert np.abs(d_new - predicted).max() <= 1e-12 * scale


def test_full_batch_is_bitwise_independent_of_seed(rng):
    data = ge.teacher_data([0.9, 0.8], 64, 16, seed=3)
    results = []
    for seed in (0, 1, 2**40):
        ens = ge.Ensemble([2, 10, 10, 2], 4)
        ens.init_random(seed=5)
        ens.train(data, 50, 0.05, 0.1, batch_size=None, seed=seed)
        results.append(ens.params.copy())
        ens.init_random(seed=5)
        ens.train(data, 50, 0.05, 0.1, batch_size=1000, seed=seed)  # B >= n: full batch
        results.append(ens.params.copy())
    for r in results[1:]:
        assert np.array_equal(r, results[0])


def test_zero_inputs_decay_weights_geometrically_exactly():
    n = 20
    rng = np.random.default_rng(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = ge.Dataset(np.zeros((n, 3)), rng.standard_normal((n, 2)))
    ens = ge.Ensemble([3, 5, 4, 2], 2)
    ens.init_random(seed=9)
    w0 = [w.copy() for w in ens.weights]
    lr, beta, steps = 0.1, 0.3, 37
    ens.train(data, steps, lr, beta, batch_size=5, seed=1)
    decay = 1.0 - lr * beta
    for l in range(3):
        expected = w0[l].copy()
        for _ in range(steps):
            expected = expected * decay
        assert np.array_equal(ens.weights[l], expected)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "widths,with_bias",
    [
        ([2, 10, 10, 2], False),
        ([16, 16, 16, 16], True),
        ([3, 5, 4], True),
        ([64, 64, 64, 64], False),
        ([8, 2, 8], False),
    ],
)
def test_observables_are_float64_functions_of_the_stored_weights(widths, with_bias, dtype):
    """MSEs, loss and singular values of the end-to-end map against the float64 reference on
    the stored weights and data. A linear network is evaluated through its affine map in
    double, float32 networks too; [8, 2, 8] (a bottleneck) goes through its layers, in
    float32 for a float32 network."""
    rng = np.random.default_rng(len(widths) + widths[0])
    depth = len(widths) - 1
    n_members = 3
    data = ge.Dataset(
        rng.standard_normal((300, widths[0])),
        rng.standard_normal((300, widths[-1])),
        rng.standard_normal((50, widths[0])),
        rng.standard_normal((50, widths[-1])),
    )
    ens = ge.Ensemble(widths, n_members, bias=with_bias, dtype=dtype)
    weights = [
        rng.standard_normal((n_members, widths[l + 1], widths[l])) / np.sqrt(widths[l])
        for l in range(depth)
    ]
    biases = [0.3 * rng.standard_normal((n_members, w)) for w in widths[1:]] if with_bias else None
    ens.set_weights(weights, biases)
    obs = ens.observables(data, 0.1)
    stored = lambda a: np.asarray(a, dtype=dtype).astype(np.float64)  # noqa: E731
    x, y, xt, yt = (stored(a) for a in (data.x_train, data.y_train, data.x_test, data.y_test))
    rtol = 1e-5 if (dtype == "float32" and widths == [8, 2, 8]) else 1e-12
    for m in range(n_members):
        w_m = [stored(w) for w in ens.weights]
        w_m = [w[m] for w in w_m]
        b_m = None if biases is None else [stored(b)[m] for b in ens.biases]
        out = ref.forward(w_m, b_m, x)[-1]
        out_t = ref.forward(w_m, b_m, xt)[-1]
        row = obs.iloc[m]
        assert_rel(row["train_mse"], np.mean((out - y) ** 2), rtol, "train MSE")
        assert_rel(row["test_mse"], np.mean((out_t - yt) ** 2), rtol, "test MSE")
        assert_rel(row["loss"], ref.loss(w_m, b_m, x, y, 0.1, ens.decay_bias), rtol, "loss")
        product = w_m[0]
        for w in w_m[1:]:
            product = w @ product
        sv = np.linalg.svd(product, compute_uv=False)
        recorded = np.array([row[f"sv_{k}"] for k in range(sv.size)])
        assert_rel(recorded, sv, 1e-12, "singular values")


@pytest.mark.parametrize("batch_size", [32, 1])
def test_float32_tracks_float64(batch_size):
    data = ge.teacher_data([0.9, 0.8], 256, 64, seed=0)
    out = {}
    for dtype in ("float64", "float32"):
        ens = ge.Ensemble([2, 10, 10, 2], 8, dtype=dtype)
        ens.init_random(seed=2)
        hist = ens.train(data, 200, 0.05, 0.05, batch_size=batch_size, seed=4)
        out[dtype] = hist.train_mse[-1]
        assert ens.params.dtype == np.dtype(dtype)
    assert_rel(out["float32"], out["float64"], 1e-4, "float32 vs float64 train MSE")


SPECIALISED = [
    ([2, 10, 10, 2], 64, False, "linear"),
    ([2, 10, 10, 2], 64, True, "tanh"),
    ([2, 10, 10, 2], 5, True, "linear"),
    ([2, 10, 10, 10, 2], 32, False, "linear"),
    ([2, 10, 10, 10, 10, 2], 24, False, "linear"),
    ([16, 16, 16, 16], 1, False, "linear"),  # B = 1, linear: members in vector lanes
    ([2, 10, 10, 2], 1, True, "linear"),
    ([2, 10, 10, 2], 1, True, "tanh"),  # B = 1, tanh: interleaved groups of members
    ([16, 16, 16, 16], 16, True, "linear"),
    ([64, 64, 64, 64], 32, False, "linear"),
]


@pytest.mark.parametrize("moment_gradient", [True, False], ids=["moments", "per-sample"])
@pytest.mark.parametrize("widths,batch,with_bias,activation", SPECIALISED)
def test_compiled_shapes_match_reference_and_generic_kernel(
    widths, batch, with_bias, activation, moment_gradient
):
    """Shapes with compile-time kernels, minibatch steps replayed in the reference, with the
    bias-free linear networks' gradient from batch moments and by per-sample backpropagation."""
    rng = np.random.default_rng(sum(widths) + batch)
    n, steps, lr, beta, sd = 100, 7, 0.01, 0.05, 5
    data = ge.Dataset(rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1])))
    results = []
    for generic in (False, True):
        ens = ge.Ensemble(
            widths,
            2,
            bias=with_bias,
            activation=activation,
            moment_gradient=moment_gradient,
            generic_kernel=generic,
        )
        ens.init_random(seed=1)
        w0 = [w.copy() for w in ens.weights]
        ens.train(data, steps, lr, beta, batch_size=batch, seed=sd)
        results.append(ens.params.copy())
    assert_rel(results[0], results[1], 1e-13, "compiled vs generic kernel")
    per_epoch = n // batch
    for m in range(2):
        w = [a[m] for a in w0]
        b = [np.zeros(wd) for wd in widths[1:]] if with_bias else None
        for t in range(steps):
            perm = core.epoch_permutation(sd, m, t // per_epoch, n)
            idx = ref.epoch_batches(perm, batch)[t % per_epoch]
            w, b = ref.sgd_step(
                w, b, data.x_train[idx], data.y_train[idx], lr, beta, True, activation
            )
        for l in range(len(widths) - 1):
            assert_rel(ens.weights[l][m], w[l], 1e-12, f"W{l}")


MOMENT_CASES = [
    ([2, 10, 10, 2], 64, "epoch", "float64"),  # the paper's network: compiled shape
    ([2, 10, 10, 2], 64, "replacement", "float64"),
    ([2, 10, 10, 2], 64, "epoch", "float32"),
    ([2, 10, 10, 10, 2], 17, "epoch", "float64"),
    ([3, 7, 5, 4], 30, "epoch", "float64"),  # run-time sizes
    ([3, 2], 20, "replacement", "float32"),  # one layer
    ([1, 1, 1, 1], 5, "epoch", "float64"),
    ([2, 10, 10, 2], None, "epoch", "float64"),  # full batch: moments summed once
]


@pytest.mark.parametrize("widths,batch,sampling,dtype", MOMENT_CASES)
def test_moment_gradient_matches_per_sample_backpropagation(widths, batch, sampling, dtype):
    """Bias-free linear networks take their minibatch gradient from the batch's second
    moments (kernels/moment_step.hpp): the same SGD steps as per-sample backpropagation and
    as the NumPy reference, to rounding."""
    rng = np.random.default_rng(len(widths) + (batch or 0))
    n, steps, lr, beta, sd = 90, 25, 0.02, 0.1, 3
    data = ge.Dataset(rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1])))
    params = {}
    for moments in (True, False):
        # 11 members: idle lanes in the last group
        ens = ge.Ensemble(widths, 11, dtype=dtype, moment_gradient=moments)
        kernel = ens.step_kernel(data, batch, sampling)
        assert kernel == ("moments" if moments else "lane_batches" if batch else "rows"), kernel
        ens.init_random(seed=4)
        w0 = [w.astype(np.float64) for w in ens.weights]
        ens.train(data, steps, lr, beta, batch_size=batch, sampling=sampling, seed=sd)
        params[moments] = ens.params.astype(np.float64)
    rtol = 1e-12 if dtype == "float64" else 2e-5
    assert_rel(params[True], params[False], rtol, "moments vs per-sample")
    if sampling != "epoch" or dtype != "float64":
        return
    per_epoch = 1 if batch is None else n // batch
    for m in (0, 10):
        w = [a[m] for a in w0]
        for t in range(steps):
            if batch is None:
                idx = np.arange(n)
            else:
                perm = core.epoch_permutation(sd, m, t // per_epoch, n)
                idx = ref.epoch_batches(perm, batch)[t % per_epoch]
            x, y = data.x_train[idx], data.y_train[idx]
            w, _ = ref.sgd_step(w, None, x, y, lr, beta, True, "linear")
        flat = np.concatenate([wl.ravel() for wl in w])
        assert_rel(params[True][m], flat, 1e-12, f"member {m} vs reference")


def test_step_kernel_follows_network_and_batch():
    data = ge.teacher_data([0.9, 0.8], 512, 16, seed=0)
    paper = ge.Ensemble([2, 10, 10, 2], 1)
    assert paper.step_kernel(data, 64) == "moments"
    assert paper.step_kernel(data) == "moments"  # full batch
    assert paper.step_kernel(data, 1) == "lanes"
    assert ge.Ensemble([2, 10, 10, 2], 1, bias=True).step_kernel(data, 64) == "lane_batches"
    assert ge.Ensemble([2, 10, 10, 2], 1, activation="tanh").step_kernel(data, 64) == "rows"
    rng = np.random.default_rng(0)
    wide = ge.Dataset(rng.standard_normal((128, 64)), rng.standard_normal((128, 64)))
    assert ge.Ensemble([64, 64, 64, 64], 1).step_kernel(wide, 32) == "rows"
    square = ge.Dataset(rng.standard_normal((64, 16)), rng.standard_normal((64, 16)))
    # d_in = 16, B = 2: the moments would cost more than backpropagation. Minibatch lane
    # kernels run where one lane copy of every parameter fits in 24 KiB (P x vector width)
    # and no layer is wider than 32; else samples (B < 8) or rows. The vector width is the
    # core variant's: 768 parameters fit with 32-byte vectors (AVX2), not with 64 (AVX-512).
    fits = 768 * int(core.build_info()["vector_bytes"]) <= 24 * 1024
    expected = "lane_batches" if fits else "samples"
    assert ge.Ensemble([16, 16, 16, 16], 1).step_kernel(square, 2) == expected
    assert ge.Ensemble([16, 16, 16, 16], 1).step_kernel(square, 8) == (
        "lane_batches" if fits else "rows"
    )


@pytest.mark.parametrize("dtype,ulps", [("float64", 4), ("float32", 1)])
def test_tanh_activation_matches_numpy_to_a_few_ulp(dtype, ulps):
    """The core's vectorised tanh (series below 1/2, exp above) on both branches, at the
    switch, deep in saturation and far out: a [1, 1, 1] network with w1 = z, w2 = 1 and one
    sample x = 1, y = 0 has loss tanh(z)^2 / 2 (float32: tanh computed in double, rounded)."""
    z = np.concatenate(
        [
            [1e-100, 1e-8, 0.49999999, 0.5, 0.50000001, 1.0, 19.0, 20.0, 30.0, 400.0, 700.0],
            np.linspace(-3, 3, 2001),
            np.geomspace(1e-6, 25, 2000),
        ]
    )
    z = np.concatenate([z, -z]).astype(dtype)
    z = z[z != 0]
    m = len(z)
    ens = ge.Ensemble([1, 1, 1], m, activation="tanh", dtype=dtype)
    ens.set_weights([z.reshape(m, 1, 1), np.ones((m, 1, 1), dtype)])
    one, zero = np.ones((1, 1)), np.zeros((1, 1))
    loss = np.asarray(ens.loss(ge.Dataset(one, zero, one, zero), 0.0))
    expected = np.tanh(z.astype(np.float64))
    if dtype == "float32":
        expected = expected.astype(np.float32).astype(np.float64)
    # loss = t^2 / 2: relative error of t is half that of the loss, plus the loss's rounding
    rel = np.abs(loss / (0.5 * expected**2) - 1) / 2
    eps = np.finfo(np.float64).eps
    assert rel.max() <= ulps * eps + (2 * eps if dtype == "float32" else 0), rel.max()


@pytest.mark.parametrize(
    "widths,batch,dtype",
    [
        ([2, 10, 10, 2], 16, "float64"),  # lane-batch kernel: a full and a partial lane group
        ([2, 10, 10, 2], 1, "float64"),  # single-sample lanes
        ([3, 16, 16, 2], 1, "float32"),  # float32 lanes
        ([16, 12, 9], 1, "float32"),  # samples transposed into the lanes 8 features at a time
        ([6, 5, 5], 1, "float64"),  # ... and 4 at a time, with remainders
        ([5, 7, 3], None, "float64"),  # full batch, one member at a time
        ([20, 40, 40, 4], 32, "float64"),  # too large for lane layouts
    ],
)
def test_langevin_step_adds_the_documented_normals(widths, batch, dtype):
    """One noisy step = the reference SGD step + sqrt(2 lr T) z, z the standard normals of
    (seed, member stream, step, langevin) in parameter order (W_1 row-major, W_2, ...);
    members with T = 0 get none, whichever lane group they share."""
    rng = np.random.default_rng(31)
    n, m_count, sd = 48, 11, 5
    data = ge.Dataset(rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1])))
    ens = ge.Ensemble(widths, m_count, dtype=dtype)
    ens.init_random(seed=1)
    lr, beta = 0.01, 0.1
    temperature = np.where(np.arange(m_count) % 4 == 2, 0.0, 3e-3 * (1 + np.arange(m_count)))
    t0 = 7
    ens.train(data, t0, lr, beta, batch_size=batch, seed=sd, temperature=temperature)
    before = [w.astype(np.float64) for w in ens.weights]
    ens.train(data, 1, lr, beta, batch_size=batch, seed=sd, temperature=temperature)
    n_params = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=False))
    z = np.empty((m_count, n_params))
    core.standard_normal(sd, ens.streams, t0, core.Purpose.langevin, z, 1)
    rtol = 1e-12 if dtype == "float64" else 2e-6
    for m in range(m_count):
        if batch is None:
            idx = np.arange(n)
        else:
            epoch, within = divmod(t0, n // batch)
            perm = core.epoch_permutation(sd, int(ens.streams[m]), epoch, n)
            idx = ref.epoch_batches(perm, batch)[within]
        w = member(before, m)
        expect, _ = ref.sgd_step(w, None, data.x_train[idx], data.y_train[idx], lr, beta)
        sigma = np.sqrt(2 * lr * temperature[m])
        offset = 0
        for l, e in enumerate(expect):
            size = e.size
            noisy = e + sigma * z[m, offset : offset + size].reshape(e.shape)
            offset += size
            assert_rel(ens.weights[l][m], noisy, rtol, f"member {m} layer {l}")
            if temperature[m] > 0:  # the noise is there (not only within tolerance)
                assert np.abs(noisy - e).max() > 100 * rtol * np.abs(e).max()
