"""Sweeps as data (cells, TOML, hashing), tasks whose rows are fixed by their cell, durable
results that resume, and executors: a thread pool, the embedded process pool, Dask (a
LocalCluster) and submitit's local executor."""

import concurrent.futures as cf
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import grokescape as ge
from grokescape import sweep
from grokescape.escape import ModeThreshold
from grokescape.sweep import Aligned, Cell, Sweep, TeacherData
from grokescape.sweep.store import Store
from grokescape.sweep.worker import SHARD_COLUMNS, run_task

DATA = TeacherData(eta=(0.9, 0.8), n_train=256, n_test=0, seed=24)


def small_cell(**changes):
    base = Cell(
        data=DATA,
        start=Aligned(rank=1),
        criterion=ModeThreshold(1, on="sv"),
        lr=0.05,
        beta=0.2,
        temperature=0.004,
        batch_size=64,
        max_steps=1200,
        trajectories=12,
        chunk=4,
        seed=1,
    )
    return base.replace(**changes)


def small_sweep(**changes):
    return Sweep.grid(small_cell(**changes), temperature=[0.003, 0.005], name="small")


def rows(tasks):
    """The rows of some tasks as one table, in the order a dataset is read (cell, slot)."""
    frames = [run_task(t, n_threads=1).table for t in tasks]
    t = pd.concat(frames, ignore_index=True).drop(columns="chunk")
    return t.sort_values(["slot", "trajectory"], kind="stable").reset_index(drop=True)


def per_cell(frame):
    return {
        c: g.drop(columns=["cell"]).reset_index(drop=True)
        for c, g in frame.groupby("cell", sort=True)
    }


def assert_same_results(a, b):
    pa, pb = per_cell(a), per_cell(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        pd.testing.assert_frame_equal(pa[k], pb[k], check_exact=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small sweep run in this process, uninterrupted."""
    out = tmp_path_factory.mktemp("reference")
    with cf.ThreadPoolExecutor(1) as ex:
        sweep.run(small_sweep(), out, ex, n_threads=1, progress=False)
    return sweep.load(out)


# ---------------------------------------------------------------------------- cells
def test_cell_ids_are_content_hashes():
    a, b = small_cell(), small_cell()
    assert a.id == b.id and len(a.id) == 16
    assert small_cell(temperature=0.0041).id != a.id
    assert small_cell(**{"start.rank": 0}).id != a.id
    assert small_cell(labels={"x": 1, "y": "z"}).id == small_cell(labels={"y": "z", "x": 1}).id
    # the same id in another process (no per-process hash seeds)
    here = str(__import__("pathlib").Path(__file__).parent)
    code = f"import sys; sys.path.insert(0, {here!r}); from test_sweep import small_cell; "
    code += "print(small_cell().id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == a.id


def test_cell_replace_and_checks():
    c = small_cell(**{"criterion.mode": 0, "start.beta": 0.3, "labels.kind": "x"})
    assert c.criterion == ModeThreshold(0, on="sv") and c.start.beta == 0.3
    assert c.label_dict == {"kind": "x"}
    with pytest.raises(ValueError, match="unknown settings"):
        small_cell(temprature=0.1)
    with pytest.raises(ValueError, match="lr"):
        small_cell(lr=0.0)
    with pytest.raises(ValueError, match="trajectories"):
        small_cell(trajectories=0)
    assert [small_cell(chunk=5).task_range(j) for j in range(3)] == [(0, 5), (5, 10), (10, 12)]
    assert small_cell(chunk=None).n_tasks == 1


def test_sweep_from_toml_grid_variants_and_cells(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        """
name = "t"
[cell]
data = { eta = [0.9, 0.8], n_train = 256, seed = 24 }
start = { kind = "aligned", rank = 1 }
criterion = { kind = "mode", mode = 1, on = "sv" }
lr = 0.05
beta = 0.2
batch_size = 64
max_epochs = 10
trajectories = 8
[grid]
temperature = [0.003, 0.004]
start.rank = [0, 1]
mechanism = [{ name = "noise" }, { name = "noise+residual", residual = 0.01 }]
[[cells]]
temperature = 0.01
labels = { note = "extra" }
"""
    )
    s = Sweep.from_toml(path)
    assert s.name == "t" and len(s) == 2 * 2 * 2 + 1
    assert {c.max_steps for c in s.cells} == {10 * 4}  # 256 // 64 batches per epoch
    assert {c.label_dict.get("mechanism") for c in s.cells} == {"noise", "noise+residual", None}
    assert {c.residual for c in s.cells} == {0.0, 0.01}
    assert {c.start.rank for c in s.cells} == {0, 1}
    assert Sweep.from_toml(path).hash == s.hash
    assert Sweep(list(reversed(s.cells))).hash == s.hash  # order does not count
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace("lr = 0.05", "lr = 0.05\nlearning_rate = 1"))
    with pytest.raises(ValueError, match="unknown settings"):
        Sweep.from_toml(bad)
    with pytest.raises(ValueError, match="appears twice"):
        Sweep([small_cell(), small_cell()])


def test_example_sweep_parses(repo_file):
    s = Sweep.from_toml(repo_file("examples/sweep_quick.toml"))
    assert len(s) == 8 and s.n_tasks == 32


# ---------------------------------------------------------------------------- tasks
def test_rows_do_not_depend_on_the_chunk_size():
    # no refill: trajectory i starts from member i of the cell's start and runs on stream i,
    # so any split into tasks gives the same rows bit for bit
    cell = small_cell(residual=1e-3, temperature=0.005)
    whole = rows(cell.replace(chunk=None).tasks())
    for chunk in (1, 5):
        pd.testing.assert_frame_equal(
            rows(cell.replace(chunk=chunk).tasks()), whole, check_exact=True
        )
    assert whole.escaped.sum() > 0 and whole.trajectory.tolist() == list(range(12))


def test_cell_run_whole_equals_run_until_escape():
    cell = small_cell(chunk=None, residual=1e-3, refill=True, trajectories=6)
    data = DATA.build()
    ens = ge.Ensemble([2, 10, 10, 2], 6)
    ens.set_weights(ge.traps.aligned_weights(data, [2, 10, 10, 2], 1, 0.2, n_members=6))
    ens.set_weights(
        [
            w + r
            for w, r in zip(
                ens.weights, ge.traps.random_residual([2, 10, 10, 2], 6, 1e-3, seed=1), strict=True
            )
        ]
    )
    ref = ens.run_until_escape(
        data,
        ModeThreshold(1, on="sv"),
        1200,
        0.05,
        0.2,
        batch_size=64,
        temperature=0.004,
        seed=1,
        refill=True,
    ).table
    got = rows(cell.tasks()).rename(columns={"slot": "member"})
    pd.testing.assert_frame_equal(got, ref[got.columns.tolist()], check_exact=True)


def test_refill_trajectories_are_unique_across_tasks():
    cell = small_cell(refill=True, chunk=3, temperature=0.006)
    t = rows(cell.tasks())
    assert t.trajectory.is_unique and len(t) > cell.trajectories
    assert set(t.slot) == set(range(12))


def test_saved_states_as_start(tmp_path):
    # the experiments' path: a cell whose start is an ensemble's member states (here
    # mid-epoch, with their own step counters and sample orders)
    data = DATA.build()
    ens = ge.Ensemble([2, 10, 10, 2], 10)
    w = ge.traps.aligned_weights(
        data, [2, 10, 10, 2], 1, 0.2, residual=1e-3, residual_kind="random", n_members=10, seed=2
    )
    ens.set_weights(w)
    ens.train(data, 7, 0.05, 0.2, batch_size=64, temperature=1e-3, seed=2)
    snap = ens.snapshot()
    cell = small_cell(data=data, start=snap, trajectories=10, chunk=3, seed=7)
    ref = ens.run_until_escape(
        data,
        ModeThreshold(1, on="sv"),
        1200,
        0.05,
        0.2,
        batch_size=64,
        temperature=0.004,
        seed=7,
    ).table
    got = rows(cell.tasks()).rename(columns={"slot": "member"})
    pd.testing.assert_frame_equal(got, ref[got.columns.tolist()], check_exact=True)
    path = snap.save(tmp_path / "snap.npz")
    from_file = cell.replace(start=sweep.Snapshot(str(path)))
    assert from_file.id != cell.id
    pd.testing.assert_frame_equal(
        rows(from_file.tasks()).rename(columns={"slot": "member"}), got, check_exact=True
    )


# ---------------------------------------------------------------------------- results
def test_run_resume_load_table_and_refusal(tmp_path, reference):
    out = tmp_path / "r"
    s = small_sweep()
    with cf.ThreadPoolExecutor(2) as ex:
        first = sweep.run(s, out, ex, n_threads=1, progress=False)
        assert (first.tasks, first.skipped, first.ran) == (6, 0, 6)
        again = sweep.run(s, out, ex, n_threads=1, progress=False)
        assert (again.skipped, again.ran) == (6, 0)  # nothing recomputed
    frame = sweep.load(out)
    assert_same_results(frame, reference)
    assert list(frame.columns[: 1 + len(SHARD_COLUMNS)]) == ["cell", *SHARD_COLUMNS]
    assert not frame.duplicated(["cell", "trajectory"]).any() and len(frame) == 24
    m = json.loads((out / "manifest.json").read_text())
    assert m["sweep"] == s.hash and len(m["runs"]) == 2 and m["runs"][-1]["finished"]
    assert {"grokescape", "core_variant", "created"} <= set(m)
    tab = sweep.table(out)
    assert len(tab) == 2 and "temperature" in tab.columns
    assert (tab.n == 12).all() and (tab.tau_lower <= tab.tau).all()
    assert tab.tasks_done.tolist() == ["3/3", "3/3"]
    # another sweep in the same directory is refused
    with pytest.raises(sweep.SweepMismatch, match="another sweep"):
        sweep.run(Sweep.grid(small_cell(), temperature=[0.004]), out, progress=False)


def test_corrupt_and_truncated_shards_are_detected_and_recomputed(tmp_path, reference):
    out = tmp_path / "r"
    with cf.ThreadPoolExecutor(2) as ex:
        sweep.run(small_sweep(), out, ex, n_threads=1, progress=False)
    shards = sorted(out.glob("trajectories/cell=*/chunk-*.parquet"))
    assert len(shards) == 6
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2])  # a torn write
    table, meta = Store(out).read_shard(shards[1])
    table.loc[0, "time"] += 1  # a changed value with the shard still readable
    Store(out).write_shard((meta["cell"], meta["chunk"]), table)
    meta_path = Store(out).shard_path(meta["cell"], meta["chunk"])
    raw = json.loads(
        __import__("pyarrow.parquet", fromlist=["x"])
        .read_schema(meta_path)
        .metadata[b"grokescape.shard"]
    )
    assert raw["rows"] == len(table)
    # write_shard stamped the changed rows with their own digest: fake a bit flip instead
    import pyarrow as pa
    import pyarrow.parquet as pq

    tab = pq.read_table(meta_path)
    bad = tab.replace_schema_metadata(
        {b"grokescape.shard": json.dumps({**raw, "sha256": "0" * 64}).encode()}
    )
    pq.write_table(pa.Table.from_batches(bad.to_batches(), bad.schema), meta_path)
    st = sweep.status(out)
    assert (st["done"], st["corrupt"]) == (4, 2)
    with pytest.raises(ValueError, match="not done"):
        sweep.load(out)
    with cf.ThreadPoolExecutor(2) as ex:
        s = sweep.run(small_sweep(), out, ex, n_threads=1, progress=False)
    assert (s.ran, s.recomputed, s.skipped) == (2, 2, 4)
    assert len(list((out / "corrupt").iterdir())) == 2
    assert_same_results(sweep.load(out), reference)


def test_failed_tasks_are_reported_and_the_others_kept(tmp_path, monkeypatch):
    class Flaky(cf.ThreadPoolExecutor):
        def submit(self, fn, task, *args):
            if task.chunk == 1:
                return super().submit(lambda: 1 / 0)
            return super().submit(fn, task, *args)

    out = tmp_path / "r"
    with Flaky(2) as ex, pytest.raises(sweep.SweepError, match="2 of 6 tasks failed"):
        sweep.run(small_sweep(), out, ex, n_threads=1, progress=False)
    assert sweep.status(out)["done"] == 4
    with cf.ThreadPoolExecutor(2) as ex:
        assert sweep.run(small_sweep(), out, ex, n_threads=1, progress=False).ran == 2


# ---------------------------------------------------------------------------- executors
def test_embedded_process_pool(tmp_path, reference):
    out = tmp_path / "r"
    summary = sweep.run(small_sweep(), out, workers=2, progress=False)
    assert summary.ran == 6 and summary.executor.startswith("local pool (2 processes)")
    assert_same_results(sweep.load(out), reference)
    threads = {Store(out).read_shard(p)[1]["threads"] for p in out.glob("trajectories/*/*")}
    assert threads == {max(1, sweep.executors.available_cores() // 2)}


def test_forking_process_pool_is_refused(tmp_path):
    # fork after the core's OpenMP threads started hangs the children
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(1, mp_context=fork) as ex, pytest.raises(ValueError, match="spawn"):
        sweep.run(small_sweep(), tmp_path / "r", ex, progress=False)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    # the nanny gives workers OMP_NUM_THREADS=1 unless the caller's environment sets it
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved
        yield client


def test_dask_local_cluster_runs_every_chunk(tmp_path, reference, dask_client):
    out = tmp_path / "r"
    summary = sweep.run(small_sweep(), out, dask_client, progress=False)
    assert summary.ran == 6
    assert_same_results(sweep.load(out), reference)
    threads = {Store(out).read_shard(p)[1]["threads"] for p in out.glob("trajectories/*/*")}
    assert threads == {1}  # the nanny's OMP_NUM_THREADS=1: no oversubscription


def test_dask_pure_executor_pitfall(tmp_path, reference, dask_client):
    # Dask's default pure=True gives identical calls one key: a resubmitted task would
    # return the cached result of the first instead of running again
    task = small_sweep().tasks()[0]
    a = dask_client.submit(run_task, task, 1, pure=True)
    b = dask_client.submit(run_task, task, 1, pure=True)
    assert a.key == b.key
    c = dask_client.submit(run_task, task, 1, pure=False)
    d = dask_client.submit(run_task, task, 1, pure=False)
    assert c.key != d.key
    del a, b, c, d
    # the sweep passes pure=False even to an executor made with pure=True: two tasks of
    # one cell (different chunks) and a task run twice are distinct submissions
    ex = dask_client.get_executor(pure=True)
    sub = sweep.executors.Submitted(ex)
    sub.submit_all(
        run_task, [((task.cell.id, 0), (task, 1)), ((task.cell.id, 0, "again"), (task, 1))]
    )
    keys = {f.key for f in ex._futures}
    assert len(keys) == 2
    results = [out for _, out, _ in sub.as_completed()]
    pd.testing.assert_frame_equal(results[0].table, results[1].table, check_exact=True)
    out = tmp_path / "r"
    sweep.run(small_sweep(), out, ex, progress=False)
    assert_same_results(sweep.load(out), reference)


def test_submitit_local_executor(tmp_path, reference):
    submitit = pytest.importorskip("submitit")
    ex = submitit.LocalExecutor(folder=tmp_path / "jobs")
    ex.update_parameters(timeout_min=10)
    s = Sweep.grid(small_cell(chunk=6), temperature=[0.003, 0.005], name="small")
    out = tmp_path / "r"
    summary = sweep.run(s, out, ex, n_threads=1, progress=False)
    assert summary.ran == 4
    ref = {k: v.drop(columns="chunk") for k, v in per_cell(reference).items()}
    got = {k: v.drop(columns="chunk") for k, v in per_cell(sweep.load(out)).items()}
    # the chunk size is part of a cell, so ids differ; the rows match cell by cell
    assert len(got) == len(ref)
    for a, b in zip(
        sorted(ref.values(), key=lambda t: t.temperature[0]),
        sorted(got.values(), key=lambda t: t.temperature[0]),
        strict=True,
    ):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


# ---------------------------------------------------------------------------- command line
def test_cli_sweep_run_status_table(tmp_path, capsys):
    from grokescape.cli import main

    path = tmp_path / "s.toml"
    path.write_text(
        """
[cell]
data = { eta = [0.9, 0.8], n_train = 256, seed = 24 }
start = { kind = "aligned", rank = 1 }
criterion = { kind = "mode", mode = 1, on = "sv" }
lr = 0.05
beta = 0.2
temperature = 0.005
batch_size = 64
max_steps = 600
trajectories = 6
chunk = 3
"""
    )
    out = tmp_path / "r"
    assert (
        main(["sweep", "run", str(path), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    )
    assert "2 run" in capsys.readouterr().out
    assert main(["sweep", "status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tasks 2: 2 done, 0 to do, 0 corrupt" in text
    assert main(["sweep", "table", str(out), "--csv", str(tmp_path / "t.csv")]) == 0
    assert "tau_upper" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 1
    other = tmp_path / "o.toml"
    other.write_text(path.read_text().replace("trajectories = 6", "trajectories = 7"))
    assert main(["sweep", "run", str(other), "--out", str(out), "--no-progress"]) == 1
    assert "another sweep" in capsys.readouterr().err


def test_only_sweep_rows_are_written(tmp_path):
    # a dataset holds shards only: temporary files start with a dot and are skipped
    out = tmp_path / "r"
    with cf.ThreadPoolExecutor(1) as ex:
        sweep.run(small_sweep(), out, ex, n_threads=1, progress=False)
    (
        out
        / "trajectories"
        / next(iter(sorted(p.name for p in (out / "trajectories").iterdir())))
        / ".chunk-00000.parquet.123.tmp"
    ).write_bytes(b"partial")
    assert len(sweep.load(out)) == 24
    assert np.all(sweep.load(out).groupby("cell").size() == 12)


# ---------------------------------------------------------------------------- reproduce
def test_experiment_escapes_through_the_machinery_equal_in_process(tmp_path):
    from grokescape.experiments import depth
    from grokescape.reproduce import load_config
    from grokescape.sweep.points import PointsRunner

    # min_escapes 0: brute force at every depth (splitting runs in process either way)
    cfg = dict(load_config(quick=True)["depth"], seed=0, members=12, epochs=200, min_escapes=0)
    tasks = 3 * len(cfg["depths"])  # chunk 5: 3 tasks of 12 members per depth
    plain = depth.compute(cfg)
    with cf.ThreadPoolExecutor(2) as ex:
        runner = PointsRunner(
            tmp_path / "e", ex, identity="x", name="depth", progress=False, chunk=5
        )
        with runner.active():
            through = depth.compute(cfg)
        assert (runner.ran, runner.skipped) == (tasks, 0)
        for name, table in plain.tables.items():
            pd.testing.assert_frame_equal(through.tables[name], table, check_exact=True)
        again = PointsRunner(
            tmp_path / "e", ex, identity="x", name="depth", progress=False, chunk=5
        )
        with again.active():
            depth.compute(cfg)
        assert (again.ran, again.skipped) == (0, tasks)
        other = PointsRunner(tmp_path / "e", ex, identity="y", name="depth", progress=False)
        with pytest.raises(sweep.SweepMismatch), other.active():
            depth.compute(cfg)


def test_reproduce_keeps_finished_work(tmp_path, capsys):
    from grokescape.reproduce import load_config, reproduce

    out = tmp_path / "r"
    with cf.ThreadPoolExecutor(2) as ex:
        first = reproduce(["depth"], quick=True, members=8, out=out, progress=False, scheduler=ex)
        table = pd.read_csv(out / "depth" / "trajectories.csv")
        # as after a kill during the experiment: not finished, one escape task not written
        (out / "depth" / "result.json").unlink()
        next(iter((out / "depth" / "escapes").glob("trajectories/*/*.parquet"))).unlink()
        capsys.readouterr()
        reproduce(["depth"], quick=True, members=8, out=out, progress=False, scheduler=ex)
        kept_tasks = len(load_config(quick=True)["depth"]["depths"]) - 1  # one task per depth
        assert f"{kept_tasks} escape tasks kept from a killed run" in capsys.readouterr().err
        pd.testing.assert_frame_equal(
            pd.read_csv(out / "depth" / "trajectories.csv"), table, check_exact=True
        )
        kept = reproduce(["depth"], quick=True, members=8, out=out, progress=False, scheduler=ex)
    assert kept["depth"].values["resumed"] and kept["depth"].claims == first["depth"].claims
    assert "## depth" in (out / "REPORT.md").read_text()
