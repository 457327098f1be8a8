import os
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))

FULL_VALIDATION = os.environ.get("GROKESCAPE_FULL_VALIDATION", "") == "1"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
