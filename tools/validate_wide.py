"""Escape times of networks wider than one against the theory (docs/validation.md section 10).

The width-1 chain and [2, h, h, 2] (and [2, h, h, h, 2]) networks on exact-moment data (eta
0.9, 0.8; the chain: mode 1 alone), full batch, additive Langevin noise, from the exact
rank-1 trap (mode 0 at its learned minimum, mode 1 at zero).

- ``measure``: 2000 first passages per point (POINTS), each run until the second singular
  value of the end-to-end map passes the theory's midpoint threshold for mode 1 (a
  threshold on mode 1's amplitude u_1^T W v_1 is also passed when the rank-1 map rotates
  toward mode 1, a path that is not an escape). tau is the mean first-passage time in
  continuous time (lr x steps) with a normal 95% interval (mean +- 1.96 SD / sqrt(n)).
- ``splitting``: [2, 10, 10, 2] at dE/T 24 to 60 by grokescape.splitting's two-stage mean
  escape time on the same score (interfaces: split_interfaces), bootstrap 95% interval.
- ``table``: the theory beside every point (grokescape.experiments.wide_escapes.with_theory:
  grokescape.theory.wide_escape_time by each method, no free parameter) as markdown, and
  the whole table as CSV.

The points, seeds and budgets are fixed here so that a rerun gives the same bits.

    python tools/validate_wide.py measure [--only GROUP ...] [--out FILE.csv]
    python tools/validate_wide.py splitting [--depth L --h H] [--ratios R ...] [--out FILE.csv]
    python tools/validate_wide.py table [--points FILE.csv] [--splitting FILE.csv] [--out FILE]

Groups: chain, h2, h4, h6, h10, lr, depth4 (default: all).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import grokescape as ge
from grokescape import splitting, theory, traps
from grokescape.escape import ModeThreshold
from grokescape.experiments.wide_escapes import exponent_fit, first_passages, with_theory

ETA = (0.9, 0.8)
BETA = {3: 0.32, 4: 0.2}
MEMBERS = 2000
OUT = Path(__file__).resolve().parents[1] / "docs" / "validation"

# (group, depth, h, dE/T, lr, expected tau in continuous time: sizes the first budget only)
POINTS = [
    *[("chain", 3, 1, r, 0.05, g) for r, g in ((4, 690), (5, 1870), (6, 5080), (7, 13800))],
    *[("h2", 3, 2, r, 0.05, g) for r, g in ((5, 2300), (6, 6200), (7, 17000), (8, 46000))],
    *[
        ("h4", 3, 4, r, 0.05, g)
        for r, g in ((3, 15), (4, 27), (6, 80), (8, 270), (10, 1080), (12, 4900))
    ],
    *[("h6", 3, 6, r, 0.05, g) for r, g in ((6, 18), (10, 76), (12, 190), (15, 1000), (18, 7500))],
    *[
        ("h10", 3, 10, r, 0.05, g)
        for r, g in (
            (6, 6),
            (9, 11),
            (12, 20),
            (15, 35),
            (18, 73),
            (21, 200),
            (24, 750),
            (27, 3800),
        )
    ],
    *[("lr", 3, 10, 21, lr, 200) for lr in (0.025, 0.1, 0.2)],
    *[("lr", 3, 4, 8, lr, 270) for lr in (0.025, 0.1, 0.2)],
    *[("depth4", 4, 2, r, 0.05, g) for r, g in ((5, 1600), (6, 4400), (7, 12000))],
    *[("depth4", 4, 3, r, 0.05, g) for r, g in ((6, 180), (8, 870), (10, 4600))],
    *[("depth4", 4, 4, r, 0.05, g) for r, g in ((6, 22), (9, 130), (12, 1100))],
]


def _seed(depth: int, h: int, ratio: float, lr: float) -> int:
    return 100_000 * depth + 1000 * h + int(10 * ratio) + int(round(1000 * lr))


def measure_point(depth: int, h: int, ratio: float, lr: float, guess: float) -> dict:
    """MEMBERS first passages from the exact trap, each run until it escapes (no refill: a
    first-passage time with a lag is not exponential, and events / time at risk over a
    budget of a few tau would be biased). The budget of 40 x the expected tau leaves a
    censored fraction reported in ``censored``."""
    beta = BETA[depth]
    if h == 1:  # the width-1 chain of mode 1 (eta 0.8), from w = 0
        widths = [1] * (depth + 1)
        data = ge.teacher_data([ETA[1]], 2, 0, seed=0, exact_moments=True)
    else:
        widths = [2] + [h] * (depth - 1) + [2]
        data = ge.teacher_data(list(ETA), 4, 0, seed=0, exact_moments=True)
    d_e = float(theory.barrier(data.eta_hat[-1], beta, depth))
    temp = d_e / ratio
    tic = time.perf_counter()
    m = first_passages(
        data, widths, beta, temp, lr, MEMBERS, int(np.ceil(40 * guess / lr)),
        seed=_seed(depth, h, ratio, lr),
    )  # fmt: skip
    return {
        "depth": depth, "h": h, "dE/T": ratio, "lr": lr, "beta": beta, "T": temp,
        "barrier": d_e, "estimator": "first passages", "tau": m["tau"],
        "tau_lo": m["tau_lower"], "tau_hi": m["tau_upper"],
        "cv": m["cv"], "escapes": m["escaped"], "censored": m["censored"],
        "member_steps": m["member_steps"], "wall_s": time.perf_counter() - tic,
    }  # fmt: skip


def _append(out: Path, row: dict) -> None:
    """Add one point to a CSV file (rewritten whole, so that a new column joins cleanly)."""
    frame = pd.DataFrame([row])
    if out.exists():
        frame = pd.concat([load(out, None), frame], ignore_index=True)
    frame.to_csv(out, index=False)


def measure(groups: list[str] | None, out: Path) -> None:
    done = pd.read_csv(out) if out.exists() else None
    for group, depth, h, ratio, lr, guess in POINTS:
        if groups and group not in groups:
            continue
        if (
            done is not None
            and (
                (done.depth == depth) & (done.h == h) & (done["dE/T"] == ratio) & (done.lr == lr)
            ).any()
        ):
            continue
        row = measure_point(depth, h, ratio, lr, guess)
        print(
            f"L={depth} h={h} dE/T={ratio} lr={lr}: tau {row['tau']:.5g} "
            f"[{row['tau_lo']:.5g}, {row['tau_hi']:.5g}], {row['escapes']} escapes, "
            f"{row['member_steps']:.3g} member-steps, {row['wall_s']:.0f} s",
            flush=True,
        )
        _append(out, row)


#: Splitting points: [2, 10, 10, 2] at dE/T where brute force cannot reach (24 overlaps
#: the brute-force table and checks the estimator on this score).
SPLIT_RATIOS = (24.0, 27.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0)
#: Stage 1 follows each trap member for loop_steps. The loops of the wide network are
#: long-tailed (excursions along the flat entropic direction); the mean of the loops
#: completed within the window favoured short ones (at dE/T 27 74.9 / 80.8 / 81.1, lr x
#: steps, with 20,000 / 80,000 / 160,000 steps per member; tau at dE/T 24 and 27 13% and 10%
#: below brute force with 20,000), which the renewal ratio of mean_escape_time (the open
#: loop's time counted) removes. The table was measured with 160,000.
SPLIT = {"trap_members": 256, "loop_steps": 160_000, "n": 100, "k": 10, "runs": 128}


def split_interfaces(
    data: ge.Dataset, widths: list[int], temp: float, seed: int, depth: int = 3
) -> dict:
    """A and Sigma on the score s_1 (the end-to-end map's second singular value), which
    is never below zero, so A = {s_1 <= 0} would never be met again: z_a is the median and
    z_sigma the 95% quantile of s_1 in the trap at this temperature (128 members from the
    exact trap, 2000 steps, s_1 every 50 steps after the first 500). Any z_a < z_sigma < z_b
    gives an unbiased estimate; these make loops short and frequent. z_b is the brute-force
    runs' threshold (the theory's midpoint for mode 1)."""
    beta = BETA[depth]
    ens = ge.Ensemble(widths, 128)
    ens.set_weights(traps.aligned_weights(data, widths, 1, beta, n_members=128))
    hist = ens.train(data, 2000, lr=0.05, beta=beta, temperature=temp, seed=seed,
                     record_every=50)  # fmt: skip
    tab = hist.to_pandas()
    s1 = tab[tab.step >= 500].sv_1.to_numpy()
    z_b = float(np.asarray(theory.mode_thresholds(ETA[1], beta, depth).lam))
    return {"z_a": float(np.quantile(s1, 0.5)), "z_sigma": float(np.quantile(s1, 0.95)),
            "z_b": z_b}  # fmt: skip


def split_point(h: int, ratio: float, lr: float = 0.05, depth: int = 3) -> dict:
    """The two-stage mean escape time (grokescape.splitting.mean_escape_time) of
    [2, h, ..., h, 2] from the exact rank-1 trap, on the score s_1 with the interfaces of
    split_interfaces."""
    beta, widths = BETA[depth], [2] + [h] * (depth - 1) + [2]
    data = ge.teacher_data(list(ETA), 4, 0, seed=0, exact_moments=True)
    d_e = float(theory.barrier(data.eta_hat[1], beta, depth))
    temp = d_e / ratio
    seed = _seed(depth, h, ratio, lr) + 7
    tic = time.perf_counter()
    faces = split_interfaces(data, widths, temp, seed, depth)
    trap = ge.Ensemble(widths, SPLIT["trap_members"])
    trap.set_weights(traps.aligned_weights(data, widths, 1, beta, n_members=trap.n_members))
    m = splitting.mean_escape_time(
        data, trap, ModeThreshold(1, on="sv"), lr=lr, beta=beta, temperature=temp,
        loop_steps=SPLIT["loop_steps"], n=SPLIT["n"], k=SPLIT["k"], runs=SPLIT["runs"],
        seed=seed, **faces,
    )  # fmt: skip
    return {
        "depth": depth, "h": h, "dE/T": ratio, "lr": lr, "beta": beta, "T": temp,
        "barrier": d_e, "estimator": "splitting", "tau": m.tau_continuous,
        "tau_lo": m.interval_continuous[0], "tau_hi": m.interval_continuous[1], "p": m.p.p,
        "p_rel_err": m.p.stderr / m.p.p, "loop": m.loop * lr, "up": m.up * lr,
        "reactive": m.reactive * lr, "n_loops": m.n_loops, "runs": m.p.n_runs, **faces,
        "escapes": m.p.n_runs, "member_steps": m.member_steps,
        "wall_s": time.perf_counter() - tic,
    }  # fmt: skip


def measure_splitting(depth: int, h: int, ratios: list[float], out: Path) -> None:
    done = pd.read_csv(out) if out.exists() else None
    for ratio in ratios:
        if (
            done is not None
            and ((done.depth == depth) & (done.h == h) & (done["dE/T"] == ratio)).any()
        ):
            continue
        row = split_point(h, ratio, depth=depth)
        print(
            f"L={depth} h={h} dE/T={ratio}: tau {row['tau']:.5g} [{row['tau_lo']:.5g}, "
            f"{row['tau_hi']:.5g}], p {row['p']:.3g} +- {100 * row['p_rel_err']:.1f}%, "
            f"{row['n_loops']} loops, {row['wall_s']:.0f} s",
            flush=True,
        )
        _append(out, row)


def load(points: Path, split: Path | None) -> pd.DataFrame:
    """The stored measurements, first passages and splitting together (older first-passage
    files have no estimator column)."""
    frame = pd.read_csv(points)
    if "estimator" not in frame:
        frame.insert(7, "estimator", "first passages")
    if split is not None and split.exists():
        frame = pd.concat([frame, pd.read_csv(split)], ignore_index=True)
    return frame


def _ratio(row: pd.Series, m: str) -> str:
    v = row[f"ratio_{m}"]
    if not np.isfinite(v):
        return "-"
    tau = row[f"tau_{m}"]
    text = f"{v:.3g} [{row.tau_lo / tau:.3g}, {row.tau_hi / tau:.3g}]"
    return f"**{text}**" if m == row.record else text


def markdown(table: pd.DataFrame) -> str:
    """One row per point: the measurement and measured / each theory with its 95% interval
    (bold: the theory of record); T / T_c in bold where the free energy has no barrier."""
    head = (
        "| L | h | dE/T | lr | estimator | T / T_c | n | tau measured [95%] | KL chain | "
        "zero_modes | reduced | mfpt_1d | / chain | / zero_modes | / reduced | / mfpt_1d |\n"
        "|" + "---|" * 16 + "\n"
    )
    lines = []
    for _, r in table.iterrows():
        rel = "-" if not np.isfinite(r.T_c) else f"{r['T/T_c']:.2f}"
        if np.isfinite(r.T_c) and r["T/T_c"] >= 1:
            rel = f"**{rel}**"
        est = "FP" if r.estimator == "first passages" else "AMS"

        def tau(m: str, r: pd.Series = r) -> str:
            v = r[f"tau_{m}"]
            return "-" if not np.isfinite(v) else f"{v:.4g}"

        lines.append(
            f"| {int(r.depth)} | {'chain' if r.h == 1 else int(r.h)} | {r['dE/T']:g} | "
            f"{r.lr:g} | {est} | {rel} | {int(r.escapes)} | "
            f"{r.tau:.4g} [{r.tau_lo:.4g}, {r.tau_hi:.4g}] | {tau('chain')} | "
            f"{tau('zero_modes')} | {tau('reduced')} | {tau('mfpt_1d')} | "
            + " | ".join(_ratio(r, m) for m in ("chain", "zero_modes", "reduced", "mfpt_1d"))
            + " |"
        )
    return head + "\n".join(lines) + "\n"


def exponents(table: pd.DataFrame) -> str:
    """The prefactor exponent a of tau = C T^a exp(dE/T) fitted (exponent_fit) through the
    first passages, and separately through the splitting points, at lr 0.05 of each network
    below T_c, beside the same fit through the zero-mode theory's times (its exponent
    (L-1)(h-2)/2 exactly) and the reduced theory's (depth 3) at the same temperatures: the
    fitted a holds the finite-T correction as well. Depth 4 has no T_c from the theory (no
    reduction there); its points are all taken."""
    out = [
        "| L | h | estimator | dE/T | a measured | a zero_modes = (L-1)(h-2)/2 | a reduced | "
        "measured / zero_modes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keep = (table.lr == 0.05) & (table.h >= 2) & ~(table["T/T_c"] >= 1)
    for (depth, h, est), g in table[keep].groupby(["depth", "h", "estimator"]):
        if len(g) < 3:
            continue
        g = g.sort_values("dE/T")
        fit = {m: exponent_fit(g.assign(tau=g[f"tau_{m}"])) for m in ("zero_modes", "reduced")}
        red = "-" if g.tau_reduced.isna().any() else f"{fit['reduced']:.3f}"
        out.append(
            f"| {depth} | {h} | {'FP' if est == 'first passages' else 'AMS'} | "
            f"{', '.join(f'{r:g}' for r in g['dE/T'])} | "
            f"{exponent_fit(g):.3f} | {fit['zero_modes']:.3f} | {red} | "
            + ", ".join(f"{r:.3g}" for r in g.ratio_zero_modes)
            + " |"
        )
    return "\n".join(out) + "\n"


def _order(col: pd.Series) -> pd.Series:
    # lr 0.05 first (the main table), the learning-rate rows after it
    return (col - 0.05).abs() if col.name == "lr" else col


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--only", nargs="*", default=None)
    m.add_argument("--out", default=str(OUT / "wide_points.csv"))
    sp = sub.add_parser("splitting")
    sp.add_argument("--depth", type=int, default=3)
    sp.add_argument("--h", type=int, default=10)
    sp.add_argument("--ratios", nargs="*", type=float, default=list(SPLIT_RATIOS))
    sp.add_argument("--out", default=str(OUT / "wide_splitting.csv"))
    sp.add_argument("--loop-steps", type=int, default=SPLIT["loop_steps"],
                    help="stage 1's steps per trap member")  # fmt: skip
    t = sub.add_parser("table")
    t.add_argument("--points", default=str(OUT / "wide_points.csv"))
    t.add_argument("--splitting", default=str(OUT / "wide_splitting.csv"))
    t.add_argument("--out", default=str(OUT / "wide_table.csv"))
    args = parser.parse_args(argv)
    if args.cmd == "table":
        points = load(Path(args.points), Path(args.splitting))
        points = points.sort_values(["depth", "lr", "h", "dE/T"], key=_order, kind="stable")
        table = with_theory(points, list(ETA))
        table.to_csv(args.out, index=False)
        print(markdown(table))
        print(exponents(table))
    if args.cmd == "splitting":
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        SPLIT["loop_steps"] = args.loop_steps
        measure_splitting(args.depth, args.h, args.ratios, out)
    if args.cmd == "measure":
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        measure(args.only, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
