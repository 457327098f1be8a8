"""The core variant is chosen by the CPU features its compile flags need."""

import pytest

from grokescape import _native
from grokescape._native import choose, supported

FULL = {"sse2": True, "avx2": True, "fma": True, "avx512f": True, "avx512dq": True,
        "avx512bw": True, "avx512vl": True}  # fmt: skip


def test_best_supported_variant_first():
    assert supported(FULL) == ["avx512", "avx2", "baseline"]
    assert choose(FULL) == ["avx512", "avx2", "baseline"]


@pytest.mark.parametrize("missing", ["avx512dq", "avx512bw", "avx512vl"])
def test_avx512f_without_the_other_extensions_gets_avx2(missing):
    assert choose({**FULL, missing: False})[0] == "avx2"


def test_avx512f_alone_gets_avx2():
    cpu = {"sse2": True, "avx2": True, "fma": True, "avx512f": True}
    assert choose(cpu)[0] == "avx2"


def test_no_fma_gets_baseline():
    assert choose({**FULL, "fma": False}) == ["baseline"]
    assert choose({}) == ["baseline"]


def test_forced_variant_is_checked_against_the_cpu():
    assert choose(FULL, "AVX2 ") == ["avx2"]
    with pytest.raises(ImportError, match="lacks"):
        choose({"avx2": True, "fma": True, "avx512f": True}, "avx512")
    with pytest.raises(ImportError, match="expected one of"):
        choose(FULL, "sse4")


def test_loaded_variant_is_supported_by_this_cpu():
    features = _native.core.build_info()["cpu_features"]
    assert _native.ISA in supported(features)
