"""A short, readable NumPy float64 reference of the model (physics.md section 2): the oracle
the core is tested against. Samples are rows: x is (n, d_in)."""

from __future__ import annotations

import numpy as np


def forward(weights, biases, x, activation="linear"):
    """Activations [a_0 = x, a_1, ..., a_L], each (n, width)."""
    acts = [x]
    for l, w in enumerate(weights):
        z = acts[-1] @ w.T
        if biases is not None:
            z = z + biases[l]
        if activation == "tanh" and l < len(weights) - 1:
            z = np.tanh(z)
        acts.append(z)
    return acts


def loss(weights, biases, x, y, beta, decay_bias=True, activation="linear"):
    """1/(2n) sum ||y - f(x)||^2 + beta/2 (sum ||W||^2 [+ sum ||b||^2])."""
    out = forward(weights, biases, x, activation)[-1]
    reg = sum(np.sum(w**2) for w in weights)
    if biases is not None and decay_bias:
        reg += sum(np.sum(b**2) for b in biases)
    return np.sum((out - y) ** 2) / (2 * x.shape[0]) + 0.5 * beta * reg


def gradients(weights, biases, x, y, beta, decay_bias=True, activation="linear", l2=True):
    """Gradient of `loss` (of the data term only when l2=False) by backpropagation."""
    acts = forward(weights, biases, x, activation)
    delta = (acts[-1] - y) / x.shape[0]
    gw, gb = [None] * len(weights), [None] * len(weights)
    for l in reversed(range(len(weights))):
        gw[l] = delta.T @ acts[l] + (beta * weights[l] if l2 else 0.0)
        if biases is not None:
            gb[l] = delta.sum(axis=0) + (beta * biases[l] if (l2 and decay_bias) else 0.0)
        if l > 0:
            delta = delta @ weights[l]
            if activation == "tanh":
                delta = delta * (1.0 - acts[l] ** 2)
    return gw, (gb if biases is not None else None)


def sgd_step(weights, biases, x, y, lr, beta, decay_bias=True, activation="linear"):
    """One step W <- (1 - lr beta) W - lr grad_data(W) on the batch (x, y)."""
    gw, gb = gradients(weights, biases, x, y, 0.0, decay_bias, activation, l2=False)
    decay = 1.0 - lr * beta
    new_w = [decay * w - lr * g for w, g in zip(weights, gw, strict=True)]
    new_b = None
    if biases is not None:
        bias_decay = decay if decay_bias else 1.0
        new_b = [bias_decay * b - lr * g for b, g in zip(biases, gb, strict=True)]
    return new_w, new_b


def epoch_batches(perm, batch_size):
    """The floor(n / B) minibatches of one epoch's permutation (remainder dropped)."""
    n_batches = len(perm) // batch_size
    return [perm[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
