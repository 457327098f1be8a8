"""Splitting against Kramers-Langer where brute force cannot reach (docs/validation.md).

The width-1 chain (exact-moment data, eta 0.8, full batch, additive Langevin noise) at
depth 3 (beta 0.32) and depth 4 (beta 0.2), dE/T from 10 to 40: the two-stage mean escape
time of grokescape.splitting against the Kramers-Langer time, which has no free parameter.
The discrete-time dynamics sample exp(-U/T) only as lr -> 0; the effect of lr is shown by
repeating points at half the learning rate (tau in continuous time lr x steps should not
move). Also the cost: member-steps spent against brute force's 1 / (p eps^2) trajectories
for the same relative error eps.

    python tools/validate_splitting.py [--quick] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import grokescape as ge
from grokescape import splitting, theory
from grokescape.escape import ModeThreshold


def point(depth: int, beta: float, ratio: float, lr: float, runs: int, loop_steps: int) -> dict:
    data = ge.teacher_data([0.8], 2, 0, seed=0, exact_moments=True)
    d_e = float(theory.barrier(0.8, beta, depth))
    temp = d_e / ratio
    kl = theory.kramers_escape_time(0.8, beta, depth, temp, lr=lr)
    trap = ge.Ensemble([1] * (depth + 1), 256)
    trap.set_weights([np.zeros((1, 1))] * depth)
    tic = time.perf_counter()
    m = splitting.mean_escape_time(
        data, trap, ModeThreshold(0), lr=lr, beta=beta, temperature=temp,
        loop_steps=loop_steps, n=100, k=10, runs=runs, seed=int(ratio * 100) + depth,
    )  # fmt: skip
    wall = time.perf_counter() - tic
    eps = m.p.stderr / m.p.p
    # brute force: escapes needed for eps (1/eps^2), each costing tau steps on average
    brute = m.tau / eps**2
    return {
        "depth": depth, "beta": beta, "dE/T": ratio, "lr": lr, "tau_steps": m.tau,
        "tau_lo": m.interval[0], "tau_hi": m.interval[1], "kramers_steps": float(kl.tau_steps),
        "ratio": m.tau / float(kl.tau_steps), "ratio_lo": m.interval[0] / float(kl.tau_steps),
        "ratio_hi": m.interval[1] / float(kl.tau_steps), "p": m.p.p, "p_rel_err": eps,
        "member_steps": m.member_steps, "brute_member_steps": brute,
        "gain": brute / m.member_steps, "wall_s": wall,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    ratios = [10.0, 25.0] if args.quick else [10.0, 15.0, 20.0, 25.0, 30.0, 40.0]
    runs = 32 if args.quick else 128
    rows = []
    for depth, beta in ((3, 0.32), (4, 0.2)):
        for ratio in ratios:
            rows.append(point(depth, beta, ratio, 0.05, runs, 20_000))
            print(rows[-1], file=sys.stderr, flush=True)
        for ratio in (ratios[0], ratios[-1]):  # the learning rate's effect
            rows.append(point(depth, beta, ratio, 0.025, runs, 40_000))
            print(rows[-1], file=sys.stderr, flush=True)
    head = ("| L | beta | dE/T | lr | tau (steps) | interval | Kramers-Langer | tau / KL | "
            "p | p rel. err | member-steps | brute force | gain | s |")  # fmt: skip
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['depth']} | {r['beta']} | {r['dE/T']:g} | {r['lr']} | {r['tau_steps']:.4g} | "
            f"[{r['tau_lo']:.3g}, {r['tau_hi']:.3g}] | {r['kramers_steps']:.4g} | "
            f"{r['ratio']:.3f} [{r['ratio_lo']:.2f}, {r['ratio_hi']:.2f}] | {r['p']:.3g} | "
            f"{r['p_rel_err']:.3f} | {r['member_steps']:.3g} | {r['brute_member_steps']:.3g} | "
            f"{r['gain']:.3g} | {r['wall_s']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
