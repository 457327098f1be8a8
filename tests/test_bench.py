"""``grokescape bench`` (grokescape.selfbench): the rows it measures and the arithmetic of its
tables. Measurements run at a tiny size; nothing asserts on speed."""

from __future__ import annotations

import json

import pytest

from grokescape import cli, selfbench
from grokescape.selfbench import Timing
from grokescape.workloads import (
    ESCAPE_T0,
    WORKLOADS,
    flops_per_member_step,
    moment_flops_per_member_step,
)

TINY = Timing(target_s=0.01, repeats=2, fixed_cost_factor=1.0, escape_steps=300)


def test_default_thread_counts():
    assert selfbench.default_thread_counts(1) == [1]
    assert selfbench.default_thread_counts(2) == [1, 2]
    assert selfbench.default_thread_counts(6) == [1, 2, 4, 6]
    assert selfbench.default_thread_counts(16) == [1, 2, 4, 8, 16]


def test_bench_members_grow_with_threads():
    assert selfbench.bench_members("paper", 1) == 1024
    assert selfbench.bench_members("paper", 16) == 4096
    assert selfbench.bench_members("tiny", 4) == 2048
    assert selfbench.bench_members("wide", 2) == 64
    assert selfbench.bench_members("wide", 8) == 256
    assert selfbench.bench_members("escape", 2) == 512


@pytest.mark.parametrize(
    ("moments", "kernel", "flops"),
    [
        (True, "moments", moment_flops_per_member_step([2, 10, 10, 2], 64)),
        (False, "lane_batches", flops_per_member_step([2, 10, 10, 2], 64)),
    ],
)
def test_measure_train_row(moments, kernel, flops):
    row = selfbench.measure_train(
        "paper", "float64", 16, TINY, n_threads=1, moment_gradient=moments
    )
    assert (row["workload"], row["dtype"], row["kernel"]) == ("paper", "float64", kernel)
    assert (row["moment_gradient"], row["unit"]) == (moments, "member-steps/s")
    assert (row["n_members"], row["threads"]) == (16, 1)
    assert len(row["times_s"]) == 2
    assert row["rate"] > 0
    assert row["rate"] == pytest.approx(16 * row["steps"] / row["median_s"])
    assert row["gflops"] == pytest.approx(row["rate"] * flops / 1e9)
    assert row["fixed_cost_fraction"] == pytest.approx(row["fixed_cost_s"] / row["median_s"])


def test_measure_escape_row():
    # A hot run (T = 4 x the workload's) so that escapes come within 300 steps.
    row = selfbench.measure_escape(32, 300, temperature=2e-3, n_threads=1)
    assert (row["workload"], row["kernel"], row["unit"]) == (
        "escape",
        "moments",
        "escape trajectories/h",
    )
    assert (row["n_members"], row["steps"], row["threads"]) == (32, 300, 1)
    assert row["n_escaped"] > 0
    assert row["n_trajectories"] > 32  # refilled slots started new trajectories
    assert row["rate"] == pytest.approx(row["n_escaped"] / row["wall_s"] * 3600)
    assert row["member_steps_per_s"] == pytest.approx(32 * 300 / row["wall_s"])
    assert row["member_steps_per_escape"] == pytest.approx(32 * 300 / row["n_escaped"])
    assert 0 < row["mean_escape_steps"] <= 32 * 300 / row["n_escaped"]


def _row(workload, threads, rate, dtype="float64", n_members=1024):
    return {
        "workload": workload,
        "dtype": dtype,
        "moment_gradient": True,
        "n_members": n_members,
        "threads": threads,
        "rate": rate,
        "unit": "member-steps/s",
    }


def test_speedups_against_the_fewest_threads():
    rows = [_row("paper", 4, 30.0), _row("paper", 2, 10.0), _row("tiny", 2, 8.0)]
    out = selfbench.with_speedups(rows)
    assert [r["speedup"] for r in out] == [3.0, 1.0, 1.0]
    # efficiency: speed-up per thread relative to the fewest (2): 3.0 * 2 / 4
    assert [r["efficiency"] for r in out] == [1.5, 1.0, 1.0]
    assert "speedup" not in rows[0]  # copies, the inputs are left alone


def _fake_measurements(monkeypatch):
    """measure_train / measure_escape replaced by rows with rate = 100 x threads (+1 for
    escape); returns the list of (workload, threads) measured."""
    calls = []

    def train(workload, dtype, n_members, timing, *, n_threads=None, moment_gradient=True):
        calls.append((workload, dtype, moment_gradient, n_threads))
        row = _row(workload, n_threads, 100.0 * n_threads, dtype, n_members)
        return {**row, "moment_gradient": moment_gradient, "kernel": "k", "gflops": 1.0}

    def escape(n_slots, steps, *, temperature=ESCAPE_T0, n_threads=None, **_):
        calls.append(("escape", "float64", True, n_threads))
        row = _row("escape", n_threads, 100.0 * n_threads + 1, n_members=n_slots)
        extra = {"n_escaped": 7, "n_trajectories": 9, "wall_s": 1.0, "mean_escape_steps": 5.0}
        return {**row, "kernel": "k", "steps": steps, "temperature": temperature, **extra}

    monkeypatch.setattr(selfbench, "measure_train", train)
    monkeypatch.setattr(selfbench, "measure_escape", escape)
    return calls


def test_thread_scaling_rows_and_reuse(monkeypatch):
    calls = _fake_measurements(monkeypatch)
    known = [_row("paper", 4, 1000.0, n_members=1024)]  # paper at 4 threads: 256 x 4 members
    rows = selfbench.thread_scaling([4, 1, 2], TINY, known=known)
    assert [(r["workload"], r["threads"]) for r in rows] == [
        (w, t) for w in ("paper", "tiny", "escape") for t in (1, 2, 4)
    ]
    assert ("paper", "float64", True, 4) not in calls  # reused
    assert len(calls) == 8
    by = {(r["workload"], r["threads"]): r for r in rows}
    assert by["paper", 4]["rate"] == 1000.0
    assert by["paper", 4]["speedup"] == 10.0
    assert by["paper", 4]["efficiency"] == 2.5
    assert by["tiny", 2]["speedup"] == 2.0 and by["tiny", 2]["efficiency"] == 1.0
    assert by["escape", 4]["speedup"] == pytest.approx(401 / 101)
    assert {r["n_members"] for r in rows if r["workload"] == "tiny"} == {2048}
    assert {r["n_members"] for r in rows if r["workload"] == "escape"} == {1024}
    with pytest.raises(ValueError, match="thread_counts"):
        selfbench.thread_scaling([0, 1], TINY)


def test_run_bench_report(monkeypatch):
    calls = _fake_measurements(monkeypatch)
    seen = []
    report = selfbench.run_bench(quick=True, thread_counts=[2, 1], on_row=seen.append)
    assert report["mode"] == "quick" and report["thread_counts"] == [1, 2]
    assert [(r["workload"], r["dtype"], r["moment_gradient"]) for r in report["kernels"]] == list(
        selfbench.KERNEL_ROWS
    )
    assert all(r["threads"] == 2 for r in [*report["kernels"], report["escape"]])
    # kernel rows and escape at 2 threads, then only the 1-thread scaling rows
    assert calls[:6] == [(w, d, m, 2) for w, d, m in selfbench.KERNEL_ROWS] + [
        ("escape", "float64", True, 2)
    ]
    assert calls[6:] == [("paper", "float64", True, 1), ("tiny", "float32", True, 1),
                         ("escape", "float64", True, 1)]  # fmt: skip
    assert len(seen) == len(calls)
    scaling = {(r["workload"], r["threads"]): r for r in report["thread_scaling"]}
    assert scaling["tiny", 2]["speedup"] == 2.0
    assert scaling["escape", 2]["rate"] == report["escape"]["rate"]
    text = selfbench.format_report(report)
    assert "| wide | float32 | k | 64 | 2 | 200 | 1.00 | - |" in text
    assert "| tiny | 1024 | 2 | 200 member-steps/s | 2.00x | 100% |" in text
    json.dumps(report)
    single = selfbench.run_bench(quick=True, thread_counts=[1])
    assert single["thread_scaling"] == []
    assert "speed-up" not in selfbench.format_report(single)


def test_cli_bench_writes_json(monkeypatch, tmp_path, capsys):
    _fake_measurements(monkeypatch)
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--threads", "1", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["thread_counts"] == [1, 2]
    captured = capsys.readouterr()
    assert "| paper | float64 | k | 1024 | 2 |" in captured.out
    assert "member-steps/s" in captured.err  # one progress line per row


def test_cli_bench_refuses_bad_thread_counts(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--threads", "2", "0"])
    assert exc.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_workloads_share_one_definition():
    assert WORKLOADS["escape"].flops("moments") == moment_flops_per_member_step((2, 10, 10, 2), 64)
    assert WORKLOADS["tiny"].flops("lanes") == flops_per_member_step((16, 16, 16, 16), 1)


def test_size_rows_and_interrupt_latency():
    from grokescape import selfbench

    rows = selfbench.measure_sizes([64, 32], n_threads=1, steps=16)
    assert [r["n_members"] for r in rows] == [32, 64]
    assert rows[0]["ratio"] == 1.0
    for r in rows:
        assert r["kernel"] == "moments" and r["steps"] == 16
        assert r["rate"] == pytest.approx(r["n_members"] * 16 / r["wall_s"])
    assert rows[1]["ratio"] == pytest.approx(rows[1]["rate"] / rows[0]["rate"])
    out = selfbench.interrupt_latency(256, after_s=0.3, n_threads=1)
    assert out["members_in_step"] and out["steps_done"] > 0 and out["latency_s"] < 5.0
