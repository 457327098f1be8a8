"""Validation of the invariance of exact traps at scale (physics.md section 5): in a
bias-free linear network the set where every layer has rank <= 1 is invariant under SGD,
so an exactly trapped rank-1 state of the paper's [2, 10, 10, 2] network never escapes under
pure SGD (beta 0.32 and 0.03, lr 0.08, B 64), however long it runs. Reduced in CI (1000
members, 500 epochs); GROKESCAPE_FULL_VALIDATION=1 runs the documented size (1000 members,
20,000 epochs, docs/validation.md)."""

import numpy as np
import pytest
from conftest import FULL_VALIDATION

import grokescape as ge
from grokescape import traps
from grokescape.escape import ModeThreshold

WIDTHS = [2, 10, 10, 2]
MEMBERS = 1000
EPOCHS = 20_000 if FULL_VALIDATION else 500


@pytest.mark.slow
@pytest.mark.parametrize("beta", [0.32, 0.03])
def test_exact_rank1_trap_stays_rank1_under_pure_sgd(beta):
    data = ge.teacher_data([0.9, 0.8], 512, 512, seed=0)
    ens = ge.Ensemble(WIDTHS, MEMBERS)
    ens.set_weights(traps.aligned_weights(data, WIDTHS, 1, beta, n_members=MEMBERS))
    per_epoch = data.n_train // 64
    res = ens.run_until_escape(
        data, ModeThreshold(1), EPOCHS * per_epoch, lr=0.08, beta=beta, batch_size=64, seed=11
    )
    obs = ens.observables(data, beta)
    ratio = float(obs["sv_1"].max() / obs["sv_0"].min())
    residual = float(np.max(traps.layer_residuals(ens, 1)))
    print(
        f"\nbeta {beta}: {MEMBERS} members x {EPOCHS} epochs, escapes {res.n_escaped}, "
        f"max sv_1/sv_0 {ratio:.3g}, max layer residual {residual:.3g}, "
        f"lambda_0 {obs['lambda_0'].mean():.6f}"
    )
    assert res.n_escaped == 0 and res.table["censored"].all()
    assert np.all(res.table["time"] == EPOCHS * per_epoch)  # every member ran the budget
    assert ratio < 1e-14  # rank 1 to rounding
    assert residual == 0.0  # the unlearned channels stay exactly zero
