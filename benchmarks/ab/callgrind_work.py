"""The workloads of benchmarks/ab/callgrind.sh: ``python callgrind_work.py NAME CALLS``.

Written to run on grokescape before and after the one-driver rewrite (issue 18): the old
code switched the moment gradient with a module global and chunked in ``ensemble``, the new
one takes an Ensemble option and chunks in ``_engine``.
"""

import sys

import numpy as np

import grokescape as ge

NEW = hasattr(ge.Ensemble, "snapshot")
NAME, CALLS = sys.argv[1], int(sys.argv[2])

# one core call per train call in both versions: time-based chunking would shrink the calls
# under valgrind and count the chunking instead of the stepping
if NEW:
    import grokescape._engine as chunking
else:
    import grokescape.ensemble as chunking
chunking._CHUNK_SECONDS = 1e9


def ensemble(widths, m, dtype, moments=True):
    if NEW:
        return ge.Ensemble(widths, m, dtype=dtype, moment_gradient=moments)
    import grokescape.ensemble as old

    old._MOMENT_GRADIENT = moments
    return ge.Ensemble(widths, m, dtype=dtype)


if NAME == "escape":
    from grokescape import traps
    from grokescape.escape import ModeThreshold

    data = ge.teacher_data([0.9, 0.8], 512, 512, seed=0)
    trap = traps.aligned_weights(data, [2, 10, 10, 2], 1, 0.2)
    for r in range(CALLS):
        ens = ensemble([2, 10, 10, 2], 128, "float64")
        ens.set_weights(trap)
        ens.run_until_escape(
            data, ModeThreshold(1), 1500, 0.05, 0.2, batch_size=64, temperature=4.8e-4,
            refill=True, seed=r, n_threads=1,
        )  # fmt: skip
    sys.exit(0)

TINY_ETA = list(np.linspace(0.1, 0.9, 16))
WIDE_ETA = list(np.linspace(0.1, 0.9, 64))
# widths, n_train, batch, eta, dtype, members, steps, moment gradient, lr, beta
CASES = {
    "paper": ([2, 10, 10, 2], 512, 64, [0.9, 0.8], "float64", 256, 200, True, 0.05, 0.1),
    "paper_ps": ([2, 10, 10, 2], 512, 64, [0.9, 0.8], "float64", 64, 100, False, 0.05, 0.1),
    "wide": ([64, 64, 64, 64], 1024, 32, WIDE_ETA, "float32", 16, 10, True, 0.01, 0.01),
    "tiny": ([16, 16, 16, 16], 1024, 1, TINY_ETA, "float32", 256, 2000, True, 5e-3, 0.01),
}
widths, n, batch, eta, dtype, members, steps, moments, lr, beta = CASES[NAME]
data = ge.teacher_data(eta, n, 0, seed=0)
ens = ensemble(widths, members, dtype, moments)
ens.init_random(std="paper" if NAME.startswith("paper") else None, seed=1)
for _ in range(CALLS):
    ens.train(data, steps, lr, beta, batch_size=batch, seed=0, n_threads=1)
assert not ens.diverged.any()
