"""The ``grokescape`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from grokescape.data import teacher_data
    from grokescape.demo import demo

    data = teacher_data([0.9, 0.8], 512, 512, seed=args.seed)
    print("grokescape demo: the paper's [2, 10, 10, 2] network, eta = (0.9, 0.8), n = 512,")
    print(f"empirical eta_hat = {data.eta_hat.round(4)}; lr 0.08, B = 64, {args.epochs} epochs,")
    print(f"{args.members} members from random init, beta varying across members.\n")
    tic = time.perf_counter()
    table = demo(
        n_members=args.members,
        epochs=args.epochs,
        seed=args.seed,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    elapsed = time.perf_counter() - tic
    with_pd_options(lambda: print(table.to_string(index=False)))
    steps = args.members * args.epochs * 8
    print(
        f"\n{steps:,} member-steps in {elapsed:.1f} s "
        f"({steps / elapsed / 1e6:.2f} M member-steps/s)"
    )
    return 0


def with_pd_options(fn) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 120):
        fn()


def _cmd_show_config(args: argparse.Namespace) -> int:
    from grokescape._config import show_config

    show_config()
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from grokescape.reproduce import reproduce

    command = "grokescape " + " ".join(sys.argv[1:]) if sys.argv[1:] else "grokescape reproduce"
    tic = time.perf_counter()
    reproduce(
        args.experiments or None,
        quick=args.quick,
        out=args.out,
        members=args.members,
        threads=args.threads,
        seed=args.seed,
        progress=not args.no_progress,
        command=command,
        scheduler=args.scheduler,
        workers=args.workers,
    )
    print(f"wrote {args.out}/REPORT.md in {time.perf_counter() - tic:.0f} s")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from grokescape import selfbench

    def progress(row: dict[str, Any]) -> None:
        print(
            f"  {row['workload']:>6} {row['dtype']} {row['kernel']:<12} M = {row['n_members']:>5}"
            f", threads {row['threads']}: {selfbench.format_rate(row['rate'])} {row['unit']}",
            file=sys.stderr,
            flush=True,
        )

    report = selfbench.run_bench(
        quick=args.quick,
        thread_counts=args.threads,
        sizes=args.sizes,
        on_row=None if args.no_progress else progress,
    )
    print(selfbench.format_report(report), end="")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _cmd_sweep_run(args: argparse.Namespace) -> int:
    from grokescape import sweep

    s = sweep.Sweep.from_toml(args.config)
    print(f"{s}: {s.hash[:12]}... -> {args.out}", file=sys.stderr, flush=True)
    try:
        summary = sweep.run(
            s,
            args.out,
            args.scheduler,
            workers=args.workers,
            n_threads=args.threads,
            progress=not args.no_progress,
        )
    except (sweep.SweepMismatch, sweep.SweepError, RuntimeError) as exc:
        print(f"grokescape sweep run: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _cmd_sweep_status(args: argparse.Namespace) -> int:
    from grokescape import sweep

    st = sweep.status(args.dir)
    m = st["manifest"]
    print(
        f"sweep {m['name']!r} (hash {m['sweep'][:12]}...), grokescape {m['grokescape']}, "
        f"core {m['core_variant']}, created {m['created']}"
    )
    print(
        f"cells {st['cells']}, tasks {st['tasks']}: {st['done']} done, {st['missing']} to do, "
        f"{st['corrupt']} corrupt; {st['trajectories']} trajectories, {st['escaped']} escaped"
    )
    for path in st["corrupt_shards"]:
        print(f"  corrupt: {path}")
    for r in m.get("runs", []):
        end = r.get("finished") or "did not finish (killed, or running)"
        ran = f", ran {r['ran']}, skipped {r['skipped']}" if "ran" in r else ""
        print(f"  run {r['started']} -> {end} on {r.get('executor')}{ran}")
    return 0 if st["done"] == st["tasks"] else 3


def _cmd_sweep_table(args: argparse.Namespace) -> int:
    from grokescape import sweep

    t = sweep.table(args.dir, time=args.time)
    if args.csv:
        t.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4g}".format
    ):
        print(t.to_string(index=False))
    return 0


def _ensemble_size(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: expected a number, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"--sizes: expected a whole number >= 1, got {text!r}")
    return int(value)


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {value}")
    return value


def _executor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scheduler",
        default="local",
        metavar="local|tcp://HOST:PORT",
        help="where escape tasks run: the embedded process pool (default) or a Dask scheduler",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="processes of the local pool (default: cores)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grokescape",
        description="Grokking as noise-driven escape from metastable phases "
        "of deep linear networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train the paper's network at several beta and print a table")
    p.add_argument("--members", type=int, default=1200, help="ensemble size (default 1200)")
    p.add_argument("--epochs", type=int, default=300, help="epochs of training (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("show-config", help="print versions, OpenMP, threads and instruction sets")
    p.set_defaults(func=_cmd_show_config)
    p = sub.add_parser(
        "reproduce", help="run the paper's experiments, write figures, data, REPORT.md"
    )
    p.add_argument(
        "experiments",
        nargs="*",
        metavar="EXPERIMENT",
        help="landscape, phase-diagram, trapping, arrhenius, wide-escapes, rare-escapes, "
        "sparse-grokking, depth, nonlinear (default: all)",
    )
    p.add_argument("--quick", action="store_true", help="reduced sizes (a few minutes)")
    p.add_argument("--out", default="grokescape-reproduce", help="output directory")
    p.add_argument("--members", type=int, default=None, help="ensemble size of every experiment")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _executor_options(p)
    p.set_defaults(func=_cmd_reproduce)
    p = sub.add_parser(
        "sweep",
        help="run escape sweeps (TOML) on a local pool, Dask or Slurm; resume; tables",
        description="Sweeps of escape measurements with durable results: see docs/sweeps.md.",
    )
    ssub = p.add_subparsers(dest="sweep_command", required=True)
    q = ssub.add_parser("run", help="run a sweep into DIR, or resume it there")
    q.add_argument("config", metavar="CONFIG.toml")
    q.add_argument("--out", required=True, metavar="DIR", help="results directory")
    q.add_argument(
        "--threads", type=int, default=None, help="core threads per task (default: the worker's)"
    )
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    _executor_options(q)
    q.set_defaults(func=_cmd_sweep_run)
    q = ssub.add_parser("status", help="tasks done, to do and corrupt; the runs so far")
    q.add_argument("dir", metavar="DIR")
    q.set_defaults(func=_cmd_sweep_status)
    q = ssub.add_parser("table", help="per-cell escape rates with exact Poisson intervals")
    q.add_argument("dir", metavar="DIR")
    q.add_argument(
        "--time",
        default="time_epochs",
        help="time_epochs (default), time (steps) or time_continuous (lr x steps)",
    )
    q.add_argument("--csv", default=None, metavar="FILE", help="also write the table as CSV")
    q.set_defaults(func=_cmd_sweep_table)
    p = sub.add_parser(
        "bench",
        help="grokescape's own speed: member-steps/s per kernel, escape trajectories/h, "
        "thread scaling",
        description="Time grokescape on the benchmark workloads (grokescape.workloads): "
        "member-steps/s per kernel, escape trajectories per hour and thread scaling. The "
        "side-by-side benchmark against NumPy, PyTorch and JAX is benchmarks/peers.py in "
        "the repository.",
    )
    p.add_argument("--quick", action="store_true", help="a few seconds per row")
    p.add_argument(
        "--threads",
        nargs="+",
        type=_thread_count,
        default=None,
        metavar="N",
        help="thread counts of the scaling run; the other rows run at the largest "
        "(default: 1, 2, 4, ... up to the core count)",
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        type=_ensemble_size,
        default=None,
        metavar="M",
        help="also time the paper network at these ensemble sizes (e.g. 1e4 1e6) and a "
        "Ctrl-C on the largest",
    )
    p.add_argument("--out", default=None, metavar="FILE", help="also write the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no line per measured row")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
