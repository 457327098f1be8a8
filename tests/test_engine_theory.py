"""The core's observables against the exact per-mode theory on exact-moment data."""

import numpy as np

import grokescape as ge


def aligned_balanced_weights(data, widths, lambdas):
    """Weights whose end-to-end map has amplitude lambdas[i] on mode i, balanced across
    layers (each layer carries s_i = lambda_i^(1/L)), one hidden channel per mode."""
    depth = len(widths) - 1
    s = np.sign(lambdas) * np.abs(lambdas) ** (1.0 / depth)
    r = len(lambdas)
    weights = []
    for l in range(depth):
        w = np.zeros((widths[l + 1], widths[l]))
        for i in range(r):
            # sign of lambda carried by the first layer, magnitudes balanced
            amp = abs(s[i]) * (np.sign(lambdas[i]) if l == 0 else 1.0)
            col = data.mode_in[:, i] if l == 0 else np.eye(widths[l])[:, i]
            row = data.mode_out[:, i] if l == depth - 1 else np.eye(widths[l + 1])[:, i]
            w += amp * np.outer(row, col)
        weights.append(w)
    return weights


def energy(lam, eta, beta, depth):
    return 0.5 * (lam - eta) ** 2 + 0.5 * depth * beta * np.abs(lam) ** (2.0 / depth)


def test_aligned_amplitudes_and_loss_decompose_into_mode_energies():
    data = ge.teacher_data([0.9, 0.8], 512, 256, seed=5, exact_moments=True)
    np.testing.assert_allclose(data.eta_hat, [0.9, 0.8], rtol=0, atol=1e-13)
    for widths in ([2, 10, 10, 2], [2, 6, 2], [2, 4, 4, 4, 2], [2, 2]):
        depth = len(widths) - 1
        lambdas = np.array([[0.45, 0.12], [0.0, 0.3], [-0.2, 0.05]])
        ens = ge.Ensemble(widths, len(lambdas))
        per_layer = [aligned_balanced_weights(data, widths, lam) for lam in lambdas]
        ens.set_weights([np.stack([pl[l] for pl in per_layer]) for l in range(depth)])
        beta = 0.32
        obs = ens.observables(data, beta)
        lam = obs[["lambda_0", "lambda_1"]].to_numpy()
        np.testing.assert_allclose(lam, lambdas, rtol=0, atol=1e-13)
        e = obs[["energy_0", "energy_1"]].to_numpy()
        expected_e = energy(lambdas, np.array([0.9, 0.8]), beta, depth)
        np.testing.assert_allclose(e, expected_e, rtol=1e-12, atol=1e-15)
        total = expected_e.sum(axis=1) + data.irreducible_loss
        np.testing.assert_allclose(obs["loss"], total, rtol=1e-12)
        # singular values of the end-to-end map are |lambda| sorted
        sv = obs[["sv_0", "sv_1"]].to_numpy()
        np.testing.assert_allclose(sv, -np.sort(-np.abs(lambdas), axis=1), atol=1e-13)


def test_history_records_match_direct_evaluation():
    data = ge.teacher_data([0.9, 0.8], 128, 64, seed=1)
    ens = ge.Ensemble([2, 10, 10, 2], 4)
    ens.init_random(seed=1)
    hist = ens.train(data, 30, 0.05, 0.1, batch_size=32, record_every=10, seed=3)
    assert list(hist.step) == [0, 10, 20, 30]
    np.testing.assert_allclose(hist.epoch, hist.step / 4)
    final = ens.observables(data, 0.1)
    np.testing.assert_array_equal(hist.loss[-1], final["loss"].to_numpy())
    np.testing.assert_array_equal(hist.test_mse[-1], final["test_mse"].to_numpy())
    # MSE is the mean over samples and outputs, the data term equals d_out/2 * train MSE
    l2 = 0.5 * 0.1 * sum(np.sum(w**2, axis=(1, 2)) for w in ens.weights)
    np.testing.assert_allclose(hist.loss[-1], hist.train_mse[-1] + l2, rtol=1e-12)
    frame = hist.to_pandas()
    assert len(frame) == 16 and {"lambda_0", "sv_1", "energy_1", "epoch"} <= set(frame.columns)
