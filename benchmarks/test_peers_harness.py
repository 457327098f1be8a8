"""Checks of the peer benchmark's harness (benchmarks/peers.py, benchmarks/peerbench), cheap
enough for CI."""

from __future__ import annotations

import peers
import pytest

from grokescape.workloads import flops_per_member_step, moment_flops_per_member_step
from peerbench.report import render_markdown
from peerbench.workers import peer_worker, threads_worker


def test_flop_count_formula():
    # paper: S = 20 + 100 + 20 = 140, S2 = 120, B = 64: 4*64*140 + 2*64*120 + 3*140.
    assert flops_per_member_step([2, 10, 10, 2], 64) == 51620
    assert flops_per_member_step([16, 16, 16, 16], 1) == 4 * 768 + 2 * 512 + 3 * 768
    # moment kernel, paper: 64 * 7 (batch rows) + 6 * 2 * 120 + 2 * 2 * 4 + 4 + 3 * 140
    assert moment_flops_per_member_step([2, 10, 10, 2], 64) == 448 + 1440 + 16 + 4 + 420


@pytest.mark.parametrize(
    "peer,kernel",
    [("numpy", None), ("grokescape", "moments"), ("grokescape-per-sample", "lane_batches")],
)
def test_peer_agrees_and_times(peer, kernel):
    task = {"peer": peer, "workload": "paper", "dtype": "float64", "mode": "quick", "sizes": [16]}
    res = peer_worker(task)
    assert res["status"] == "ok", res
    assert res.get("kernel") == kernel
    assert all(c["ok"] and c["max_rel_error"] < 1e-10 for c in res["verify"])
    assert res["best_n_members"] == 16
    assert res["member_steps_per_s"] > 0
    assert res["sizes"][0]["finite"]


def _report():
    """A small report as main() builds it: paper workload, three peers, no thread run."""
    report = {
        "mode": "quick",
        "date": "2026-01-01T00:00:00+00:00",
        "command": "python benchmarks/peers.py --quick",
        "machine": {
            "cpu_model": "cpu",
            "cpu_count": 2,
            "host": "h",
            "other_load_at_start": 0.0,
            "grokescape_config": {
                "grokescape": "0",
                "core_variant": "x",
                "compiler": "c",
                "openmp": True,
                "default_threads": 2,
                "numpy": "2",
                "python": "3",
            },
        },
        "peer_versions": {"numpy": "2", "jax": "not installed"},
        "peaks": [
            {"dtype": "float64", "gflops": 50.0, "times_s": [1.0]},
            {"dtype": "float32", "gflops": 100.0, "times_s": [1.0]},
        ],
        "repeats": 3,
        "target_s": 0.15,
        "workloads": ["paper"],
        "results": [
            {
                "peer": "grokescape",
                "workload": "paper",
                "dtype": "float64",
                "status": "ok",
                "best_n_members": 64,
                "member_steps_per_s": 2e5,
                "gflops": 10.0,
                "verify": [],
            },
            {
                "peer": "numpy",
                "workload": "paper",
                "dtype": "float64",
                "status": "ok",
                "best_n_members": 64,
                "member_steps_per_s": 1e5,
                "gflops": 5.0,
                "verify": [],
            },
            {
                "peer": "jax",
                "workload": "paper",
                "dtype": "float64",
                "status": "skipped",
                "reason": "jax not importable",
            },
        ],  # fmt: skip
        "threads": None,
    }
    report["results"][0]["kernel"] = "moments"
    return report


def test_markdown_report_renders():
    text = render_markdown(_report())
    assert "| paper | float64 | grokescape (moments) | 64 |" in text
    assert "| paper | float64 | numpy | 64 | 100 k | 5.00 | 10.0% | 2x | - | - |" in text
    assert "skipped: jax not importable" in text


def test_thread_scaling_worker_and_table():
    out = threads_worker({"mode": "quick", "thread_counts": [2, 1]})
    assert out["thread_counts"] == [1, 2]
    rows = out["rows"]
    assert [(r["workload"], r["threads"]) for r in rows] == [
        (w, t) for w in ("paper", "tiny", "escape") for t in (1, 2)
    ]
    by = {(r["workload"], r["threads"]): r for r in rows}
    for w in ("paper", "tiny", "escape"):
        one, two = by[w, 1], by[w, 2]
        assert one["rate"] > 0 and one["speedup"] == 1.0 and one["efficiency"] == 1.0
        assert two["speedup"] == pytest.approx(two["rate"] / one["rate"])
        assert two["efficiency"] == pytest.approx(two["speedup"] / 2)
        assert one["n_members"] == two["n_members"]
    assert by["escape", 1]["n_escaped"] > 0
    assert out["speedup_1_to_2"] == by["paper", 2]["speedup"]
    report = _report()
    report["threads"] = out
    text = render_markdown(report)
    assert "## Thread scaling (grokescape)" in text
    assert f"| tiny | {by['tiny', 2]['n_members']} | 2 |" in text


def test_bad_thread_counts_are_refused():
    with pytest.raises(SystemExit) as exc:
        peers.main(["--threads", "2", "0", "--out", "unused"])
    assert exc.value.code == 2
