"""The counter-based Philox4x64-10 generator of the core against numpy.random.Philox."""

import numpy as np
import pytest

from grokescape._native import core

U64 = np.uint64


@pytest.mark.parametrize("trial", range(20))
def test_raw_blocks_bit_identical_to_numpy_philox(trial):
    rng = np.random.default_rng(trial)
    key = rng.integers(0, 2**64, size=2, dtype=U64)
    counter = rng.integers(0, 2**64, size=4, dtype=U64)
    if trial < 4:  # carries across counter words
        counter[: trial + 1] = U64(2**64 - 1)
    n_blocks = 6
    gen = np.random.Philox(key=key, counter=counter)
    expected = gen.random_raw(4 * n_blocks).reshape(n_blocks, 4)
    # numpy increments the 256-bit counter before each block
    counters = []
    c = [int(v) for v in counter]
    for _ in range(n_blocks):
        value = (sum(v << (64 * i) for i, v in enumerate(c)) + 1) % 2**256
        c = [(value >> (64 * i)) & (2**64 - 1) for i in range(4)]
        counters.append(c)
    got = core.philox4x64_10(np.array(counters, dtype=U64), key)
    assert np.array_equal(got, expected)


def test_known_answer_zero_key_zero_counter():
    # Random123's published known-answer vector for philox4x64_10 with zero key and counter.
    got = core.philox4x64_10(np.zeros((1, 4), dtype=U64), np.zeros(2, dtype=U64))[0]
    expected = [0x16554D9ECA36314C, 0xDB20FE9D672D0FDC, 0xD7E772CEE186176B, 0x7E68B68AEC7BA23B]
    assert [int(v) for v in got] == expected


def test_standard_normal_streams_are_addressed_not_sequenced():
    out_a = np.empty((5, 1000))
    out_b = np.empty((3, 1000))
    core.standard_normal(7, np.arange(5, dtype=U64), 0, core.Purpose.init, out_a, 2)
    core.standard_normal(7, np.array([4, 0, 2], dtype=U64), 0, core.Purpose.init, out_b, 1)
    assert np.array_equal(out_b, out_a[[4, 0, 2]])
    other = np.empty((1, 1000))
    core.standard_normal(7, np.array([0], dtype=U64), 1, core.Purpose.init, other, 1)
    assert not np.array_equal(other[0], out_a[0])
    # the draws are standard normal: mean, variance and a KS test on 5000 values
    from scipy import stats

    values = out_a.ravel()
    assert abs(values.mean()) < 4 / np.sqrt(values.size)
    assert abs(values.var() - 1) < 6 * np.sqrt(2 / values.size)
    assert stats.kstest(values, "norm").pvalue > 1e-3


def test_epoch_permutation_is_a_uniform_permutation():
    import itertools

    from scipy import stats

    n = 4
    index = {p: i for i, p in enumerate(itertools.permutations(range(n)))}
    counts = np.zeros(len(index))
    for epoch in range(24000):
        perm = core.epoch_permutation(3, 1, epoch, n)
        counts[index[tuple(perm)]] += 1
    # all 24 permutations equally likely
    assert stats.chisquare(counts).pvalue > 1e-3
    # a large n is a permutation too, and epochs differ
    big = core.epoch_permutation(3, 1, 0, 1000)
    assert sorted(big) == list(range(1000))
    assert not np.array_equal(big, core.epoch_permutation(3, 1, 1, 1000))
