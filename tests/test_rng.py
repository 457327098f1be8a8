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


def _fisher_yates(words32, n):
    """Reference epoch permutation (physics.md, section 2): Fisher-Yates over i = n-1 .. 1,
    j uniform in [0, i] by Lemire's multiply-shift on 32-bit draws with rejection."""
    perm = list(range(n))
    draws = iter(words32)
    for i in range(n - 1, 0, -1):
        r = i + 1
        m = next(draws) * r
        if m % 2**32 < r:
            threshold = (2**32 - r) % r
            while m % 2**32 < threshold:
                m = next(draws) * r
        j = m >> 32
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _stream_words(seed, stream, step, purpose, n_blocks):
    """64-bit words of the stream (seed, stream, step, purpose) from numpy's Philox: numpy
    increments its counter before each block, so start one below (index 0, step)."""
    gen = np.random.Philox(
        key=np.array([seed, stream], dtype=U64),
        counter=np.array([2**64 - 1, step - 1, purpose, 0], dtype=U64),
    )
    return gen.random_raw(4 * n_blocks)


@pytest.mark.parametrize("n, epoch", [(2, 1), (5, 3), (64, 1), (512, 7), (1000, 2), (100_000, 1)])
def test_epoch_permutation_matches_reference_fisher_yates(n, epoch):
    # n = 100,000 draws rejections (probability ~ n^2 / 2^33 per epoch), so the exact
    # sequential path is covered as well as the vectorised one.
    words = _stream_words(3, 1, epoch, int(core.Purpose.permutation), n // 4 + 8)
    words32 = np.stack([words & U64(0xFFFFFFFF), words >> U64(32)], axis=1).ravel()
    expected = _fisher_yates((int(w) for w in words32), n)
    assert list(core.epoch_permutation(3, 1, epoch, n)) == expected


def _rejections(words32, n):
    count, draws = 0, iter(words32)
    for i in range(n - 1, 0, -1):
        r = i + 1
        m = next(draws) * r
        threshold = (2**32 - r) % r
        while m % 2**32 < threshold:
            count += 1
            m = next(draws) * r
    return count


def test_reference_permutation_case_exercises_rejection():
    words = _stream_words(3, 1, 1, int(core.Purpose.permutation), 100_000 // 4 + 8)
    words32 = np.stack([words & U64(0xFFFFFFFF), words >> U64(32)], axis=1).ravel()
    assert _rejections((int(w) for w in words32), 100_000) > 0


@pytest.mark.parametrize("n", [1, 2, 7, 142, 1001, 400_001])
def test_standard_normals_follow_the_documented_box_muller_formula(n):
    # normal.hpp: pair j from words w_{2j}, w_{2j+1}: u = (w >> 11) 2^-53,
    # z = sqrt(-2 ln(1 - u_{2j})) (cos, sin)(2 pi u_{2j+1}); blocks vectorised in the core.
    seed, stream, step = 9, 12345, 77
    purpose = int(core.Purpose.langevin)
    out = np.empty((1, n))
    core.standard_normal(seed, np.array([stream], dtype=U64), step, core.Purpose.langevin, out, 1)
    pairs = (n + 1) // 2
    words = _stream_words(seed, stream, step, purpose, (2 * pairs + 3) // 4)
    u = (words[: 2 * pairs] >> U64(11)).astype(np.float64) * 2.0**-53
    r = np.sqrt(-2.0 * np.log1p(-u[0::2]))
    z = np.stack([r * np.cos(2 * np.pi * u[1::2]), r * np.sin(2 * np.pi * u[1::2])], axis=1)
    expected = z.ravel()[:n]
    # few-ulp polynomials and log in the core vs numpy's libm: absolute 1e-14 on |z| < 10
    assert np.max(np.abs(out[0] - expected)) < 1e-14
    if n > 100_000:  # the radii cover 1 - u from 1 down to ~1e-5: the log's exponents 0..-16
        assert np.min(1.0 - u[0::2]) < 2.0**-15 and np.max(np.abs(out[0])) > 4.0
