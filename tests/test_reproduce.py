"""`grokescape reproduce --quick` end to end: every figure, data file and REPORT.md is
written, and each experiment's numbers say what the physics says."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from grokescape import theory
from grokescape.reproduce import load_config, reproduce


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    results = reproduce(quick=True, out=out, progress=False, command="pytest")
    return out, results


def test_every_output_is_written(quick_run):
    out, results = quick_run
    report = (out / "REPORT.md").read_text()
    assert "## The paper's numbers beside ours" in report
    for name, res in results.items():
        assert f"## {name}" in report
        for fig in res.figures:
            assert (out / name / f"{fig}.png").stat().st_size > 10_000
        assert (out / name / "config.json").exists()
        assert len(res.values["files"]) >= len(res.figures) + len(res.tables)
        assert res.claims, f"{name} contributes no row to the report"
    assert "not measured in this run" not in report.split("## landscape")[0]


def test_phase_diagram_drops_at_spinodals_without_reentry(quick_run):
    res = quick_run[1]["phase-diagram"]
    drops = np.nanmedian(res.values["drops"], axis=0)
    assert np.all(np.abs(drops - res.values["beta_c"]) <= 0.02), (drops, res.values["beta_c"])
    assert res.values["reentries"] == 0 and res.values["jumps"] == 0


def test_landscape_numbers(quick_run):
    v = quick_run[1]["landscape"].values
    assert abs(v["lambda_saddle"] - 0.09255) < 5e-5 and abs(v["barrier"] - 0.02845) < 5e-5


def test_trapping_mechanisms(quick_run):
    s = quick_run[1]["trapping"].values["summary"]
    assert s[s.mechanism == "pure SGD"].escaped.sum() == 0  # exact traps never escape
    assert s[s.mechanism == "noise"].escaped.sum() > 0


def test_arrhenius_additive_noise_recovers_the_barrier(quick_run):
    v = quick_run[1]["arrhenius"].values
    assert abs(v["temperature_fit"].dE / v["theory_dE"] - 1) < 0.15
    assert v["sweeps"].escaped.sum() == 0  # SGD from the trap: the residual decays


def test_sparse_run_is_full_batch_and_residual_driven(quick_run):
    v = quick_run[1]["sparse-grokking"].values
    assert v["deterministic"]
    d = v["delays"].set_index("residual")
    assert d.loc[0.0, "escaped"] == 0 and d.loc[0.1, "escaped"] == d.loc[0.1, "n"]


def test_depth_and_nonlinear(quick_run):
    table = quick_run[1]["depth"].values["table"]
    assert np.all(np.diff(table.tau_epochs) > 0)
    assert np.all(np.diff(table.barrier) > 0)
    v = quick_run[1]["nonlinear"].values
    assert v["reentries"] == 0 and min(v["jumps"]) > 0.1


def test_each_experiment_separates_compute_plot_and_report():
    from matplotlib.figure import Figure

    from grokescape.experiments import EXPERIMENTS, landscape
    from grokescape.experiments.common import run_experiment

    for name, module in EXPERIMENTS.items():
        assert module.NAME == name
        for step in ("compute", "plot", "report"):
            assert callable(getattr(module, step, None)), (name, step)
    cfg = {**load_config(True)["landscape"], "seed": 0}
    computed = landscape.compute(cfg)
    figures = landscape.plot(computed, cfg)
    assert all(isinstance(f, Figure) for f in figures.values())
    rep = landscape.report(computed, cfg)
    res = run_experiment(landscape, cfg)
    assert rep.claims == res.claims and rep.markdown == res.markdown
    assert list(res.tables) == list(computed.tables) and list(res.figures) == list(figures)
    plt.close("all")


def test_config_echo_and_quick_overrides():
    full, quick = load_config(False), load_config(True)
    assert full["phase-diagram"]["members"] >= 1000 > quick["phase-diagram"]["members"]
    assert full["trapping"]["eta"] == [0.9, 0.8]
    for name, cfg in full.items():
        if "members" in cfg:
            assert cfg["members"] >= 1000, name
    assert abs(theory.spinodal_beta(0.8, 3) - 0.3509) < 1e-4
