"""The peer benchmark's markdown report and the targets of issue 6."""

from __future__ import annotations

import math
from typing import Any

from grokescape.selfbench import format_rate
from grokescape.workloads import (
    WORKLOADS,
    Workload,
    flops_per_member_step,
    moment_flops_per_member_step,
)


def _fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.3g}x"


def _check_cell(res: dict[str, Any]) -> str:
    checks = res.get("verify") or []
    if not checks:
        return "-"
    return ", ".join(
        f"{'ok' if c['ok'] else 'FAIL'} {c['max_rel_error']:.0e} ({c['dtype'][5:]})" for c in checks
    )


def _blas_name(blas: Any) -> str:
    if not isinstance(blas, dict):
        return "unknown"
    return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def _load_cell(res: dict[str, Any]) -> str:
    load = res.get("other_load")
    if load is None or not math.isfinite(load):
        return "-"
    return f"{100 * load:.0f}%" + (" (!)" if load > 0.1 else "")


def _moment_cell(wl: Workload, results: list[dict[str, Any]]) -> str:
    """The moment kernel's flops where grokescape ran it (the kernel its rows report)."""
    ran = any(
        r["workload"] == wl.name and r["peer"] == "grokescape" and r.get("kernel") == "moments"
        for r in results
    )
    return f"{moment_flops_per_member_step(wl.widths, wl.batch_size):,.0f}" if ran else "-"


def _peer_cell(res: dict[str, Any]) -> str:
    return f"{res['peer']} ({res['kernel']})" if res.get("kernel") else str(res["peer"])


def _ratio(ge: dict[str, Any] | None, res: dict[str, Any], key: str) -> float | None:
    if not ge or ge.get("status") != "ok" or res.get("status") != "ok":
        return None
    a, b = ge.get(key), res.get(key)
    return None if not a or not b else float(a) / float(b)


def target_rows(report: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the issue's targets."""
    rows: list[tuple[str, str, bool | None]] = []
    res = report["results"]

    def get(workload: str, dtype: str, peer: str) -> dict[str, Any] | None:
        for r in res:
            if (r["workload"], r["dtype"], r["peer"]) == (workload, dtype, peer):
                return dict(r)
        return None

    def add(label: str, value: float | None, goal: float, fmt: str) -> None:
        met = None if value is None else value >= goal
        rows.append((label, "-" if value is None else fmt.format(value), met))

    def rate(workload: str, dtype: str, peer: str, key: str = "member_steps_per_s") -> Any:
        r = get(workload, dtype, peer)
        return r.get(key) if r and r.get("status") == "ok" else None

    def ratio(workload: str, dtype: str, peer: str, key: str = "member_steps_per_s") -> Any:
        a, b = rate(workload, dtype, "grokescape", key), rate(workload, dtype, peer, key)
        return None if a is None or b is None else a / b

    peak = {p["dtype"]: p["gflops"] for p in report["peaks"]}

    def pct(workload: str, dtype: str, peer: str = "grokescape") -> Any:
        g = rate(workload, dtype, peer, "gflops")
        return None if g is None else 100.0 * g / peak[dtype]

    def kernel(workload: str, dtype: str) -> str:
        r = get(workload, dtype, "grokescape")
        return str(r.get("kernel", "?")) if r else "?"

    add("paper f64 >= 1.0 M member-steps/s", rate("paper", "float64", "grokescape"), 1e6, "{:.3g}")
    if kernel("paper", "float64") == "moments":
        # The flop count is per-sample backpropagation's: its kernel's % of peak. The
        # moment kernel does ~22x fewer flops per step; its own share is listed, not judged.
        add(
            "paper f64 >= 35% of f64 peak (per-sample kernel)",
            pct("paper", "float64", "grokescape-per-sample"),
            35,
            "{:.1f}%",
        )
        share = pct("paper", "float64")
        rows.append(
            (
                "paper f64, moment kernel: % of f64 peak in its own flop count (not a target)",
                "-" if share is None else f"{share:.1f}%",
                None,
            )
        )
    else:
        add("paper f64 >= 35% of f64 peak", pct("paper", "float64"), 35, "{:.1f}%")
    for peer in ("jax", "torch"):
        add(f"paper f64 >= 3x {peer}", ratio("paper", "float64", peer), 3, "{:.2f}x")
    add("tiny f32 >= 10 M member-steps/s", rate("tiny", "float32", "grokescape"), 1e7, "{:.3g}")
    for peer, goal in (("jax", 10), ("torch", 30), ("numpy", 30)):
        add(f"tiny f32 >= {goal}x {peer}", ratio("tiny", "float32", peer), goal, "{:.2f}x")
    add("wide f32 >= 40% of f32 peak", pct("wide", "float32"), 40, "{:.1f}%")
    for peer in ("jax", "torch"):
        add(f"wide f32 >= 2x {peer}", ratio("wide", "float32", peer), 2, "{:.2f}x")
    esc = rate("escape", "float64", "grokescape", "escape_trajectories_per_hour")
    add("escape >= 2 M trajectories/hour", esc, 2e6, "{:.3g}")
    thr = report.get("threads") or {}
    add("1 -> 2 threads >= 1.8x", thr.get("speedup_1_to_2"), 1.8, "{:.2f}x")
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: machine, workloads, results, escape, threads, targets."""
    mach = report["machine"]
    cfg = mach["grokescape_config"]
    peak = {p["dtype"]: p["gflops"] for p in report["peaks"]}
    lines = [
        f"# grokescape peer benchmark ({report['mode']})",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {mach['cpu_model']}, {mach['cpu_count']} cores, host {mach['host']}, "
        f"other processes' load at start {_pct(mach.get('other_load_at_start'))}",
        f"- grokescape {cfg['grokescape']} ({cfg['core_variant']} core, {cfg['compiler']}, "
        f"OpenMP {cfg['openmp']}, {cfg['default_threads']} threads), numpy {cfg['numpy']}, "
        f"python {cfg['python']}",
        "- peers: " + ", ".join(f"{k} {v}" for k, v in report["peer_versions"].items()),
        f"- numpy BLAS: {_blas_name(mach.get('numpy_blas'))}",
        f"- peak (numpy 2048^3 matmul, best of {len(report['peaks'][0]['times_s'])}): "
        + ", ".join(f"{d} {g:.1f} GFLOP/s" for d, g in peak.items()),
        f"- statistic: median of {report['repeats']} repeats of ~{report['target_s']} s after a "
        "warm-up, at the ensemble size M (tuned per peer) with the highest throughput",
        "",
        "## Workloads",
        "",
        "| workload | widths | n_train | B | lr | beta | dtype | flops / member-step | "
        "moment kernel |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in report["workloads"]:
        wl = WORKLOADS[name]
        lines.append(
            f"| {name} | {list(wl.widths)} | {wl.n_train} | {wl.batch_size} | {wl.lr:g} | "
            f"{wl.beta:g} | {', '.join(wl.dtypes)} | "
            f"{flops_per_member_step(wl.widths, wl.batch_size):,.0f} | "
            f"{_moment_cell(wl, report['results'])} |"
        )
    lines += [
        "",
        "flops / member-step = 2BS (forward) + 2BS (weight gradients) + 2BS2 (error "
        "back-propagation, layers l >= 2) + 3S (update), S = sum_l in_l out_l. grokescape "
        "takes the gradient of bias-free linear networks from the batch's second moments where "
        "that is cheaper (kernel 'moments'): its rows count that kernel's flops (moment kernel "
        "column, `moment_flops_per_member_step`); grokescape-per-sample is the same package "
        "with per-sample backpropagation (the issue's flop count).",
        "",
        "check: max relative deviation from grokescape after 3 full-batch steps from the same "
        "weights (float64 and float32). other load: share of the cores that other processes "
        "used while that row was measured; (!) above 10%, where the timing is not reliable "
        "(OpenMP-threaded peers suffer most). Peers draw their per-member, per-epoch "
        "permutations before the timed loop (the JSON says what drawing them inside would add, "
        "'permutation_fraction_if_timed'); grokescape draws them inside, timed.",
        "",
        "## Training throughput",
        "",
        "| workload | dtype | peer | M | member-steps/s | GFLOP/s | % peak | grokescape / "
        "peer | check vs grokescape | other load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    results = report["results"]
    ge_of = {(r["workload"], r["dtype"]): r for r in results if r["peer"] == "grokescape"}
    for r in results:
        if r["workload"] == "escape":
            continue
        ge = ge_of.get((r["workload"], r["dtype"]))
        if r.get("status") != "ok":
            lines.append(
                f"| {r['workload']} | {r['dtype']} | {r['peer']} | - | {r['status']}: "
                f"{r.get('reason', '')} | - | - | - | {_check_cell(r)} | {_load_cell(r)} |"
            )
            continue
        g = r["gflops"]
        ratio = None if r["peer"] == "grokescape" else _ratio(ge, r, "member_steps_per_s")
        lines.append(
            f"| {r['workload']} | {r['dtype']} | {_peer_cell(r)} | {r['best_n_members']} | "
            f"{format_rate(r['member_steps_per_s'])} | {g:.2f} | "
            f"{100 * g / peak[r['dtype']]:.1f}% | {_fmt_ratio(ratio)} | {_check_cell(r)} | "
            f"{_load_cell(r)} |"
        )
    esc_rows = [r for r in results if r["workload"] == "escape"]
    if esc_rows:
        ge = next((r for r in esc_rows if r["peer"] == "grokescape"), None)
        lines += ["", "## Escape trajectories per hour", ""]
        if ge and ge.get("status") == "ok":
            lines += [
                f"grokescape: {ge['n_escaped']} escapes of {ge['n_trajectories']} trajectories "
                f"in {ge['wall_s']:.1f} s (M = {ge['n_members']} slots x {ge['max_steps']} "
                f"steps, refill), T = {ge['temperature']:.3g}, mean escape time "
                f"{ge['mean_escape_steps']:.0f} steps (steps at risk / escapes), "
                f"{ge['member_steps_per_escape']:.0f} member-steps per escape.",
                "Peers cannot stop or refill members: their rate is the time of a fixed-step "
                "run (same noisy SGD step from the same trap, best M) for the same member-steps "
                "per escape.",
                "",
            ]
        lines += [
            "| peer | M | member-steps/s | escape trajectories/h | grokescape / peer | check | "
            "other load |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in esc_rows:
            if r.get("status") != "ok":
                lines.append(
                    f"| {r['peer']} | - | {r['status']}: {r.get('reason', '')} | - | - | "
                    f"{_check_cell(r)} | {_load_cell(r)} |"
                )
                continue
            ratio = (
                None if r["peer"] == "grokescape" else _ratio(ge, r, "escape_trajectories_per_hour")
            )
            lines.append(
                f"| {_peer_cell(r)} | {r['best_n_members']} | "
                f"{format_rate(r['member_steps_per_s'])} | "
                f"{format_rate(r.get('escape_trajectories_per_hour'))} | {_fmt_ratio(ratio)} | "
                f"{_check_cell(r)} | {_load_cell(r)} |"
            )
    thr = report.get("threads")
    if thr and thr.get("rows"):
        lines += [
            "",
            "## Thread scaling (grokescape)",
            "",
            "Speed-up and parallel efficiency against the fewest threads measured; one fixed "
            "ensemble per workload.",
            "",
            "| workload | M | threads | rate | speed-up | efficiency |",
            "|---|---|---|---|---|---|",
        ]
        for r in thr["rows"]:
            lines.append(
                f"| {r['workload']} | {r['n_members']} | {r['threads']} | "
                f"{format_rate(r['rate'])} {r['unit']} | {r['speedup']:.2f}x | "
                f"{_pct(r['efficiency'])} |"
            )
    elif thr:
        lines += ["", f"Thread scaling: {thr.get('status')}: {thr.get('reason')}"]
    rows = target_rows(report)
    lines += ["", "## Targets (issue 6)", "", "| target | measured | met |", "|---|---|---|"]
    for label, value, met in rows:
        lines.append(f"| {label} | {value} | {'-' if met is None else ('yes' if met else 'no')} |")
    return "\n".join(lines) + "\n"
