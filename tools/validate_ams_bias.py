"""Unbiasedness of the splitting estimator (docs/validation.md): many independent AMS runs
against a brute-force probability from the same start state, for n in {20, 100}, k in
{1, 2, n/10}, with a continuous score and a quantized one (ties), and the naive variant
(kill exactly k, parents may tie, branch at >=) as the negative control. Every row uses
its own seed and runs (independent of the others) against one brute-force reference of
2e6 trajectories.

    python tools/validate_ams_bias.py [--runs R]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

import grokescape as ge
from grokescape import splitting
from grokescape.escape import ModeThreshold

KW = dict(criterion=ModeThreshold(0), lr=0.01, beta=0.32, temperature=5e-3, z_a=0.0, z_b=0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args(argv)
    data = ge.teacher_data([0.8], 64, 0, seed=0, exact_moments=True)
    start = ge.Ensemble([1, 1, 1, 1], 1)
    start.set_weights([np.full((1, 1), 0.3)] * 3)
    print("| score | variant | n | k | runs | p | stderr | brute force p | z |")
    print("|---|---|---|---|---|---|---|---|---|")
    for quantum in (0.0, 0.02):
        ref = splitting.escape_probability(
            data, start, n=50_000, k=1, runs=40, max_iterations=0, quantum=quantum,
            seed=11, first_run=10**7, **KW,
        )  # fmt: skip
        score = "continuous" if quantum == 0 else f"quantized {quantum}"
        cases = [(20, 1, False), (20, 2, False), (100, 1, False), (100, 10, False)]
        if quantum:
            cases += [(20, 1, True), (20, 2, True)]
        for c, (n, k, naive) in enumerate(cases):
            runs = args.runs if n == 20 else args.runs // 4
            r = splitting.escape_probability(
                data, start, n=n, k=k, runs=runs, quantum=quantum, _naive=naive,
                seed=100 + c, first_run=10**5 * (c + 1), **KW,
            )  # fmt: skip
            z = (r.p - ref.p) / math.hypot(r.stderr, ref.stderr)
            variant = "naive" if naive else "AMS"
            print(
                f"| {score} | {variant} | {n} | {k} | {runs} | {r.p:.5f} | {r.stderr:.5f} | "
                f"{ref.p:.5f} +- {ref.stderr:.5f} | {z:+.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
