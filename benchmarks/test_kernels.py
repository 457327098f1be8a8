"""pytest-benchmark suite over the core kernels: training steps of the bench workloads
(small M), the exact loss, observables and gradients, and a small escape run.

Timing: ``python -m pytest benchmarks`` (add ``--benchmark-only`` to skip the rest).
CI smoke test: ``python -m pytest benchmarks --benchmark-disable -q`` runs every body once
(each well under 2 s) and checks its result; nothing here asserts on time.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import all_finite

import grokescape as ge
from grokescape import traps
from grokescape.escape import ModeThreshold
from grokescape.workloads import WORKLOADS

# (workload, dtype, members, steps): small enough for a quick smoke run.
TRAIN_CASES = [
    ("paper", "float64", 64, 400),  # moment gradient (Ensemble.step_kernel: "moments")
    ("paper-per-sample", "float64", 64, 400),  # per-sample backpropagation ("lane_batches")
    ("tiny", "float32", 64, 2000),
    ("tiny", "float64", 64, 2000),
    ("wide", "float32", 16, 40),
]


@pytest.mark.parametrize(("name", "dtype", "members", "steps"), TRAIN_CASES)
def test_train_steps(benchmark, workload_data, name, dtype, members, steps):
    moments = not name.endswith("-per-sample")
    name = name.removesuffix("-per-sample")
    wl = WORKLOADS[name]
    data = workload_data[name]
    ens = ge.Ensemble(list(wl.widths), members, dtype=dtype, moment_gradient=moments)
    ens.init_random(seed=0)
    loss_before = ens.loss(data, wl.beta)
    benchmark.extra_info["member_steps_per_call"] = members * steps
    hist = benchmark(ens.train, data, steps, wl.lr, wl.beta, batch_size=wl.batch_size, seed=0)
    # Every call advances every member by `steps` (the benchmark may call several times).
    assert ens.steps.min() >= steps
    assert np.all(ens.steps % steps == 0)
    assert np.all(ens.steps == ens.steps[0])
    assert not ens.diverged.any()
    assert all_finite(ens)
    assert np.all(np.isfinite(hist.train_mse))
    # SGD from a random start lowers the regularised loss of every member.
    assert np.all(ens.loss(data, wl.beta) < loss_before)


def _numpy_loss(weights, x, y, beta):
    out = x
    for w in weights:
        out = out @ w.T
    return np.sum((out - y) ** 2) / (2 * x.shape[0]) + 0.5 * beta * sum(
        np.sum(w**2) for w in weights
    )


@pytest.mark.parametrize("name", ["paper", "wide"])
def test_loss(benchmark, workload_data, name):
    wl = WORKLOADS[name]
    data = workload_data[name]
    ens = ge.Ensemble(list(wl.widths), 64, dtype="float64")
    ens.init_random(seed=1)
    loss = benchmark(ens.loss, data, wl.beta)
    assert loss.shape == (64,)
    assert np.all(np.isfinite(loss))
    for k in (0, 63):
        ref = _numpy_loss([w[k] for w in ens.weights], data.x_train, data.y_train, wl.beta)
        assert loss[k] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "dtype"), [("paper", "float64"), ("tiny", "float32"), ("wide", "float32")]
)
def test_observables(benchmark, workload_data, name, dtype):
    """What every record of a training run evaluates (train.record_every): errors on the data
    and the singular values of the end-to-end map (most of a wide network's record)."""
    wl = WORKLOADS[name]
    data = workload_data[name]
    ens = ge.Ensemble(list(wl.widths), 64, dtype=dtype)
    ens.init_random(seed=2)
    obs = benchmark(ens.observables, data, wl.beta)
    assert len(obs) == 64
    for k in (0, 63):
        w = [w[k].astype(np.float64) for w in ens.weights]
        x = data.x_train.astype(dtype).astype(np.float64)
        y = data.y_train.astype(dtype).astype(np.float64)
        assert obs["loss"].iloc[k] == pytest.approx(_numpy_loss(w, x, y, wl.beta), rel=1e-12)
        product = w[0]
        for layer in w[1:]:
            product = layer @ product
        sv = np.linalg.svd(product, compute_uv=False)
        got = obs[[f"sv_{i}" for i in range(sv.size)]].iloc[k].to_numpy()
        np.testing.assert_allclose(got, sv, rtol=0, atol=1e-14 * sv[0])


def test_gradients(benchmark, workload_data, paper_ensemble):
    data = workload_data["paper"]
    ens, beta = paper_ensemble, 0.32
    grads, bias_grads = benchmark(ens.gradients, data, beta)
    assert bias_grads is None
    assert [g.shape for g in grads] == [w.shape for w in ens.weights]
    # Central difference of the loss along the gradient: d/de L(W + e G) = |G|^2.
    eps = 1e-5
    start = [w.copy() for w in ens.weights]
    losses = []
    for sign in (1, -1):
        ens.set_weights([w + sign * eps * g for w, g in zip(start, grads, strict=True)])
        losses.append(ens.loss(data, beta))
    slope = (losses[0] - losses[1]) / (2 * eps)
    norm2 = sum(np.sum(g**2, axis=(1, 2)) for g in grads)
    np.testing.assert_allclose(slope, norm2, rtol=1e-6)


def test_escape_small(benchmark, workload_data):
    wl = WORKLOADS["escape"]
    data = workload_data["escape"]
    trap = traps.aligned_weights(data, list(wl.widths), 1, wl.beta)
    max_steps = 1500

    def run():
        ens = ge.Ensemble(list(wl.widths), 32, dtype="float64")
        ens.set_weights(trap)
        # A hot run (T = 4 x the bench's) so that escapes come within a short budget.
        return ens.run_until_escape(
            data,
            ModeThreshold(1),
            max_steps,
            wl.lr,
            wl.beta,
            batch_size=wl.batch_size,
            temperature=2e-3,
            refill=True,
            seed=0,
        )

    res = benchmark(run)
    table = res.table
    assert res.n_escaped > 0
    assert res.n_trajectories > 32  # refilled slots started new trajectories
    escaped = table[table["escaped"]]
    assert np.all(escaped["time"] > 0)
    assert np.all(table["time"] <= max_steps)
    assert not table["diverged"].any()
