"""Importing grokescape is cheap, and its OpenMP runtime lives beside PyTorch's.

Each check runs in a fresh interpreter: what an import pulls in, and which OpenMP runtimes
a process holds, depend on everything imported before."""

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_leaves_heavy_dependencies_for_later():
    # pandas alone would be most of the import time; tables, plots, statistics and
    # progress bars load their libraries when first used.
    loaded = json.loads(
        run_python("""
        import json, sys
        import grokescape
        print(json.dumps(sorted(sys.modules)))
        """)
    )
    for heavy in ("pandas", "scipy", "matplotlib", "tqdm", "pyarrow"):
        assert heavy not in loaded


def test_train_returns_tables_after_a_lazy_import():
    out = run_python("""
        import grokescape as ge
        data = ge.teacher_data(eta=[0.9, 0.8], n_train=64, n_test=64, seed=0)
        ens = ge.Ensemble([2, 4, 2], n_members=4)
        ens.init_random(seed=1)
        hist = ens.train(data, steps=10, lr=0.05, beta=0.1, batch_size=8, record_every=5, seed=2)
        print(type(hist.final()).__name__, type(data.summary()).__name__)
        """)
    assert out.split() == ["DataFrame", "DataFrame"]


# Trains one ensemble on two threads and prints the hash of its weights; TORCH says where
# torch is imported (and made to run its own OpenMP thread pool) relative to grokescape.
COEXIST = """
import hashlib, json, os, sys

def use_torch():
    import torch
    torch.set_num_threads(2)
    a = torch.ones(512, 512, dtype=torch.float64)
    assert float((a @ a).sum()) == 512.0**3  # torch's parallel region ran

def train(threads):
    import grokescape as ge
    data = ge.teacher_data(eta=[0.9, 0.8], n_train=256, n_test=256, seed=0)
    ens = ge.Ensemble([2, 10, 10, 2], n_members=64)
    ens.init_random(seed=1)
    ens.train(data, steps=300, lr=0.08, beta=0.32, batch_size=32, seed=2, n_threads=threads)
    return hashlib.sha256(ens.params.tobytes()).hexdigest()

order = sys.argv[1]
if order == "torch first":
    use_torch()
hashes = [train(2)]
if order == "torch between":
    use_torch()
    hashes.append(train(2))
hashes.append(train(1))
with open("/proc/self/maps") as maps:
    gomp = sorted({line.split()[-1] for line in maps if "libgomp" in line})
print(json.dumps({"hashes": hashes, "libgomp": gomp}))
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.parametrize("order", ["torch first", "torch between"])
def test_two_openmp_runtimes_give_the_same_bits(order):
    done = subprocess.run(
        [sys.executable, "-c", COEXIST, order], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # serial, two threads, two threads after torch's pool started: one set of bits
    assert len(set(result["hashes"])) == 1, result
