"""The benchmark workloads: what ``grokescape bench`` and the peer benchmark
(``benchmarks/peers.py``) time, their starting weights and their flop counts.

Every workload runs the exact SGD-with-L2 step of physics.md section 2 on an ensemble of
M independent deep linear networks, ``W <- (1 - lr beta) W - lr grad_data(W)
[+ sqrt(2 lr T) xi]``, with epoch sampling (a fresh permutation per member and epoch, cut
into floor(n/B) batches of B).

========  ==================  =======  ====  ====  =====  ========  ======================
name      widths              n_train  B     lr    beta   dtype     data
========  ==================  =======  ====  ====  =====  ========  ======================
paper     [2, 10, 10, 2]      512      64    0.08  0.32   float64   teacher eta (0.9, 0.8),
                                                                    seed 0 (the paper's)
tiny      [16, 16, 16, 16]    1024     1     5e-3  0.01   float32,  teacher, 16 modes eta
                                                          float64   linspace(0.1, 0.9)
wide      [64, 64, 64, 64]    1024     32    0.01  0.01   float32   teacher, 64 modes eta
                                                                    linspace(0.1, 0.9)
escape    [2, 10, 10, 2]      512      64    0.05  0.2    float64   as paper; aligned rank-1
                                                                    trap, Langevin T with a
                                                                    mean escape ~2000 steps
========  ==================  =======  ====  ====  =====  ========  ======================

``escape`` runs :meth:`grokescape.Ensemble.run_until_escape` with ``ModeThreshold(1)`` and
``refill=True`` from the trap at temperature :data:`ESCAPE_T0`; its rate is escape
trajectories per hour.

Flop count (per member-step; layer l maps in_l -> out_l, S = sum_l in_l out_l, S2 the same
sum over layers l >= 2, P = S the number of weights)::

    forward 2 B S  +  weight gradients 2 B S  +  error back-propagation 2 B S2  +  update 3 P

(sampling, noise and escape checks are not counted). grokescape's default kernel for
bias-free linear networks with few inputs and outputs (``Ensemble.step_kernel`` says
``"moments"``: the paper and escape workloads) gets the same step from the batch's second
moments (``kernels/moment_step.hpp``) and has its own count
(:func:`moment_flops_per_member_step`: 2,328 instead of 51,620 for the paper workload).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ESCAPE_LN_TAU_SLOPE",
    "ESCAPE_T0",
    "ESCAPE_TARGET_TAU",
    "WORKLOADS",
    "Workload",
    "flops_per_member_step",
    "moment_flops_per_member_step",
]

# Escape workload: temperature with a mean escape time of about 2000 steps for the paper
# network at beta 0.2, lr 0.05, B 64 (measured with grokescape 0.1.0 on the seed-0 data),
# and the local Arrhenius slope d ln(tau) / d(1/T) there, for one correction step.
ESCAPE_T0 = 4.8e-4
ESCAPE_LN_TAU_SLOPE = 2.2e-3
ESCAPE_TARGET_TAU = 2000.0


@dataclass(frozen=True)
class Workload:
    """One benchmark workload (see the module docstring)."""

    name: str
    widths: tuple[int, ...]
    n_train: int
    batch_size: int
    lr: float
    beta: float
    dtypes: tuple[str, ...]
    eta: tuple[float, ...]
    n_test: int
    description: str
    escape: bool = False

    def data(self):  # type: ignore[no-untyped-def]
        """The workload's Dataset (a seeded Gaussian teacher)."""
        from grokescape.data import teacher_data

        return teacher_data(list(self.eta), self.n_train, self.n_test, seed=0)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.n_train // self.batch_size)

    def initial_weights(
        self, data: Any, n_members: int, dtype: str, seed: int = 1
    ) -> list[np.ndarray]:
        """Timing start, (M, out, in) per layer: the aligned rank-1 trap (escape) or the
        paper's initialisation, every weight N(0, 1/h) with h the (largest) hidden width; a
        fan-in scaled first layer of the paper network lets a few in 10^4 members diverge
        at lr 0.08."""
        if self.escape:
            from grokescape import traps

            one = traps.aligned_weights(data, list(self.widths), 1, self.beta)
            return [
                np.ascontiguousarray(np.broadcast_to(w.astype(dtype), (n_members, *w.shape)))
                for w in one
            ]
        rng = np.random.default_rng(seed)
        std = np.dtype(dtype).type(1.0 / math.sqrt(max(self.widths[1:-1])))
        return [
            rng.standard_normal(
                (n_members, self.widths[l + 1], self.widths[l]), dtype=np.dtype(dtype)
            )
            * std
            for l in range(len(self.widths) - 1)
        ]

    def flops(self, kernel: str | None = None) -> float:
        """Flops per member-step of the algorithm a row runs: the moment kernel's own count
        for grokescape's ``"moments"`` kernel, per-sample backpropagation's otherwise."""
        if kernel == "moments":
            return moment_flops_per_member_step(self.widths, self.batch_size)
        return flops_per_member_step(self.widths, self.batch_size)


def _linspace(lo: float, hi: float, n: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(lo, hi, n))


WORKLOADS: dict[str, Workload] = {
    "paper": Workload(
        "paper", (2, 10, 10, 2), 512, 64, 0.08, 0.32, ("float64",), (0.9, 0.8), 512,
        "the paper's network and data, epoch sampling",
    ),
    "tiny": Workload(
        "tiny", (16, 16, 16, 16), 1024, 1, 5e-3, 0.01, ("float32", "float64"),
        _linspace(0.1, 0.9, 16), 0, "16 x 16 layers, single-sample SGD",
    ),
    "wide": Workload(
        "wide", (64, 64, 64, 64), 1024, 32, 0.01, 0.01, ("float32",),
        _linspace(0.1, 0.9, 64), 0, "64 x 64 layers, B = 32",
    ),
    "escape": Workload(
        "escape", (2, 10, 10, 2), 512, 64, 0.05, 0.2, ("float64",), (0.9, 0.8), 512,
        "rank-1 trap + Langevin noise, run until escape with refill", escape=True,
    ),
}  # fmt: skip


def flops_per_member_step(widths: Sequence[int], batch_size: int) -> float:
    """Flops of one SGD step of one member (module docstring):
    4 B S + 2 B S2 + 3 S with S = sum_l in_l out_l and S2 the sum over layers l >= 2."""
    sizes = [widths[l] * widths[l + 1] for l in range(len(widths) - 1)]
    s, s2 = sum(sizes), sum(sizes[1:])
    return float(4 * batch_size * s + 2 * batch_size * s2 + 3 * s)


def moment_flops_per_member_step(widths: Sequence[int], batch_size: int) -> float:
    """Flops of one step of grokescape's moment kernel (kernels/moment_step.hpp) for one
    member: B m (summing the batch's rows of per-sample products, m = d_in (d_in + 1) / 2 +
    d_out d_in) + 6 d_in S2 (prefix products, weight gradients and error signals of layers
    l >= 2) + 2 d_out d_in^2 + d_out d_in (top error) + 3 S (update)."""
    sizes = [widths[l] * widths[l + 1] for l in range(len(widths) - 1)]
    s, s2 = sum(sizes), sum(sizes[1:])
    d_in, d_out = widths[0], widths[-1]
    m = d_in * (d_in + 1) // 2 + d_out * d_in
    return float(batch_size * m + 6 * d_in * s2 + 2 * d_out * d_in**2 + d_out * d_in + 3 * s)
