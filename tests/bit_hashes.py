"""Hashes of the weights (and escape tables) after the README example and after each
benchmark workload, at reduced size, for every core variant.

The stored values in ``bit_hashes.json`` were computed on the code before the engine was
rewritten as one driver (issue 18), so the test that reads them holds every later change
of the core to the same bits. ``python tests/bit_hashes.py --write`` records the variant
in use (``GROKESCAPE_ISA=baseline|avx2|avx512`` picks one); run it only when a change is
meant to alter the arithmetic, and say so in the commit.

The avx2 and avx512 variants give identical bits in most cases; baseline (SSE2, no FMA)
rounds differently, so each variant has its own entries.

The cases' inputs (teacher data, its moments and modes, trap weights) are made by numpy,
whose LAPACK and BLAS round differently between releases (numpy 2.5 differs from 2.4 in
the last bits of the teacher data's QR). Their hashes are stored apart ("inputs", one
per case, the same for every variant): where they differ, the core's bits cannot be
compared and the test says so instead of failing on numpy's change.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import grokescape as ge
from grokescape import traps
from grokescape.escape import ModeThreshold

STORE = Path(__file__).with_name("bit_hashes.json")

# digests of the inputs a case built with numpy, in the order it built them (see run())
_inputs: list[str] = []


def _digest(*arrays: object) -> str:
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(np.asarray(a))
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:24]


def _data(eta: list[float], n_train: int, n_test: int, seed: int) -> ge.Dataset:
    data = ge.teacher_data(eta, n_train, n_test, seed=seed)
    _inputs.append(
        _digest(
            data.x_train, data.y_train, data.x_test, data.y_test, data.sigma_xx,
            data.sigma_yx, data.mode_in, data.mode_out,
        )
    )  # fmt: skip
    return data


def _trap(data: ge.Dataset, widths: list[int], learned: int, beta: float, **kw: object) -> list:
    weights = traps.aligned_weights(data, widths, learned, beta, **kw)  # type: ignore[arg-type]
    _inputs.append(_digest(*weights))
    return weights


def _table_digest(res: ge.escape.EscapeResult) -> str:
    t = res.table
    cols = ["member", "trajectory", "escaped", "censored", "diverged", "detect_step", "time"]
    return _digest(*(t[c].to_numpy() for c in cols), t["escape_step"].fillna(-1).to_numpy())


def readme() -> str:
    """The README's minimal example, 200 members instead of 1000 and a shorter escape run."""
    data = _data([0.9, 0.8], 512, 512, seed=0)
    ens = ge.Ensemble([2, 10, 10, 2], n_members=200)
    ens.init_random(seed=1)
    hist = ens.train(data, steps=2000, lr=0.08, beta=0.32, batch_size=64, record_every=100, seed=2)
    trained = _digest(ens.params, hist.lam, hist.test_mse)
    ens.set_weights(_trap(data, [2, 10, 10, 2], learned=1, beta=0.2, n_members=200))
    res = ens.run_until_escape(
        data, ModeThreshold(1), max_steps=4000, lr=0.05, beta=0.2, batch_size=64,
        temperature=5e-4, refill=True, seed=3,
    )  # fmt: skip
    return _digest(trained, ens.params, ens.steps, ens.streams, _table_digest(res))


def _trained(
    widths: list[int],
    n_train: int,
    eta: list[float],
    members: int,
    steps: int,
    lr: float,
    beta: float,
    batch_size: int | None,
    dtype: str = "float64",
    temperature: float = 0.0,
    sampling: str = "epoch",
    **ensemble_kw: object,
) -> str:
    data = _data(eta, n_train, 0, seed=0)
    ens = ge.Ensemble(widths, members, dtype=dtype, **ensemble_kw)  # type: ignore[arg-type]
    ens.init_random(seed=0)
    hist = ens.train(
        data, steps, lr, beta, batch_size=batch_size, temperature=temperature,
        sampling=sampling, seed=0, record_every=max(1, steps // 4),
    )  # fmt: skip
    return _digest(ens.params, ens.steps, hist.train_mse, hist.lam)


def _escape() -> str:
    data = _data([0.9, 0.8], 512, 512, seed=0)
    ens = ge.Ensemble([2, 10, 10, 2], 64)
    ens.set_weights(_trap(data, [2, 10, 10, 2], 1, 0.2))
    res = ens.run_until_escape(
        data, ModeThreshold(1), 3000, 0.05, 0.2, batch_size=64, temperature=4.8e-4,
        refill=True, seed=0,
    )  # fmt: skip
    return _digest(ens.params, ens.steps, ens.streams, _table_digest(res))


_TINY_ETA = [float(v) for v in np.linspace(0.1, 0.9, 16)]
_WIDE_ETA = [float(v) for v in np.linspace(0.1, 0.9, 64)]
_PAPER = dict(widths=[2, 10, 10, 2], n_train=512, eta=[0.9, 0.8])

# name -> computation: the benchmark workloads (grokescape.workloads) at reduced size, plus
# the kernels the workloads do not reach (tanh rows and samples, biases, full batch, noise).
CASES: dict[str, Callable[[], str]] = {
    "readme": readme,
    "paper": lambda: _trained(**_PAPER, members=64, steps=400, lr=0.08, beta=0.32, batch_size=64),
    "paper_per_sample": lambda: _trained(
        **_PAPER, members=64, steps=400, lr=0.08, beta=0.32, batch_size=64, moment_gradient=False
    ),
    "tiny_float32": lambda: _trained(
        [16, 16, 16, 16], 1024, _TINY_ETA, 64, 1000, 5e-3, 0.01, 1, "float32"
    ),
    "tiny_float64": lambda: _trained(
        [16, 16, 16, 16], 1024, _TINY_ETA, 64, 1000, 5e-3, 0.01, 1, "float64"
    ),
    "wide_float32": lambda: _trained(
        [64, 64, 64, 64], 1024, _WIDE_ETA, 6, 20, 0.01, 0.01, 32, "float32"
    ),
    "escape": _escape,
    "tanh_rows_noise": lambda: _trained(
        **_PAPER,
        members=9,
        steps=200,
        lr=0.05,
        beta=0.1,
        batch_size=64,
        temperature=1e-3,
        activation="tanh",
        bias=True,
    ),  # fmt: skip
    "tanh_samples": lambda: _trained(
        **_PAPER, members=9, steps=300, lr=0.05, beta=0.1, batch_size=1, activation="tanh"
    ),
    "bias_lane_batches_replacement": lambda: _trained(
        **_PAPER,
        members=11,
        steps=300,
        lr=0.05,
        beta=0.1,
        batch_size=16,
        temperature=1e-3,
        sampling="replacement",
        bias=True,
    ),  # fmt: skip
    "full_batch_noise": lambda: _trained(
        **_PAPER, members=11, steps=300, lr=0.05, beta=0.1, batch_size=None, temperature=1e-3
    ),
    "rows_small_batch": lambda: _trained(
        [3, 7, 5, 3],
        90,
        [0.9, 0.5, 0.2],
        5,
        100,
        0.02,
        0.1,
        5,
        temperature=1e-3,
        activation="tanh",
    ),  # fmt: skip
}


def run(name: str) -> tuple[str, str]:
    """(digest of the case's numpy-made inputs, digest of the core's results)."""
    _inputs.clear()
    result = CASES[name]()
    return _digest(np.array(_inputs)), result


def compute() -> dict[str, tuple[str, str]]:
    return {name: run(name) for name in CASES}


def stored() -> dict[str, dict[str, str]]:
    return json.loads(STORE.read_text()) if STORE.exists() else {}


if __name__ == "__main__":
    from grokescape._native import ISA

    hashes = compute()
    print(ISA, json.dumps(hashes, indent=1))
    if "--write" in sys.argv:
        data = stored()
        data[ISA] = {name: result for name, (_, result) in hashes.items()}
        data["inputs"] = {name: inputs for name, (inputs, _) in hashes.items()}
        STORE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {STORE} [{ISA}, inputs]")
