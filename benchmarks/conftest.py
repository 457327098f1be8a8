"""Shared data for the kernel benchmarks. CI runs them as a smoke test:
``python -m pytest benchmarks --benchmark-disable -q``."""

from __future__ import annotations

import numpy as np
import pytest

import grokescape as ge
from grokescape.workloads import WORKLOADS


@pytest.fixture(scope="session")
def workload_data():
    """The bench workloads' data sets, built once: {name: Dataset}."""
    return {name: wl.data() for name, wl in WORKLOADS.items()}


@pytest.fixture
def paper_ensemble():
    """64 members of the paper's network, fan-in normal initial weights."""
    ens = ge.Ensemble([2, 10, 10, 2], 64, dtype="float64")
    ens.init_random(seed=0)
    return ens


def all_finite(ens) -> bool:
    return bool(np.all(np.isfinite(ens.params)))
