"""Tests of the exact per-mode theory (grokescape.theory) and its plots."""

from __future__ import annotations

import math
import runpy

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.optimize import brentq, minimize_scalar  # noqa: E402

from grokescape import theory  # noqa: E402
from grokescape import theory_plots as tp  # noqa: E402
from grokescape.data import Dataset, teacher_data  # noqa: E402


def sig_round(x: float, digits: int) -> float:
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def sig_digits(text: str) -> int:
    """Significant digits of a number as written ("0.0375" -> 3, "5.27e-5" -> 3)."""
    mantissa = text.lower().split("e")[0].replace("-", "").replace(".", "").lstrip("0")
    return len(mantissa)


def matches_table(value: float, text: str) -> bool:
    return sig_round(value, sig_digits(text)) == float(text)


# ---------------------------------------------------------------------- physics.md tables
# eta, beta, s_sad, lambda_sad, s_min, lambda_min, E(sad)-E(0), E(sad)-E(min)   (L = 3)
TABLE_POINTS = [
    ("0.8", "0.32", "0.4523", "0.09255", "0.6998", "0.3427", "0.02845", "0.008829"),
    ("0.9", "0.32", "0.3783", "0.05415", "0.7914", "0.4956", "0.02143", "0.04406"),
    ("0.8", "0.03", "0.0375", "5.27e-5", "0.9155", "0.7672", "2.11e-5", "0.2818"),
]
# L, beta_c(0.9), beta*(0.9), beta_c(0.8), beta*(0.8)
TABLE_CRITICAL = [
    (3, "0.4105", "0.3448", "0.3509", "0.2947"),
    (4, "0.3286", "0.2324", "0.2754", "0.1947"),
    (5, "0.2931", "0.1777", "0.2428", "0.1472"),
]


@pytest.mark.parametrize("row", TABLE_POINTS)
def test_reference_stationary_points(row):
    eta, beta, *expected = row
    sp = theory.stationary_points(float(eta), float(beta), 3)
    got = [
        sp.s_saddle,
        sp.saddle,
        sp.s_minimum,
        sp.minimum,
        sp.barrier_trap,
        sp.barrier_learned,
    ]
    for value, text in zip(got, expected, strict=True):
        assert matches_table(float(value), text), (value, text)
    assert float(theory.barrier(float(eta), float(beta), 3)) == pytest.approx(
        float(sp.barrier_trap)
    )
    assert float(theory.barrier(float(eta), float(beta), 3, start="learned")) == pytest.approx(
        float(sp.barrier_learned)
    )
    # Barrier from the energies themselves (no cancellation trick).
    e = theory.energy(
        np.array([float(sp.saddle), 0.0, float(sp.minimum)]), float(eta), float(beta), 3
    )
    assert e[0] - e[1] == pytest.approx(float(sp.barrier_trap), rel=1e-9)
    assert e[0] - e[2] == pytest.approx(float(sp.barrier_learned), rel=1e-9)


@pytest.mark.parametrize("row", TABLE_CRITICAL)
def test_reference_critical_betas(row):
    depth, bc9, bs9, bc8, bs8 = row
    assert matches_table(theory.spinodal_beta(0.9, depth), bc9)
    assert matches_table(theory.coexistence_beta(0.9, depth), bs9)
    assert matches_table(theory.spinodal_beta(0.8, depth), bc8)
    assert matches_table(theory.coexistence_beta(0.8, depth), bs8)


def test_closed_forms_at_depth_three():
    eta = np.array([0.3, 0.8, 0.9])
    assert np.allclose(theory.spinodal_beta(eta, 3), 3 * (eta / 4) ** (4 / 3), rtol=1e-14)
    assert np.allclose(theory.coexistence_beta(eta, 3), (eta / 2) ** (4 / 3), rtol=1e-14)
    # The order parameter jumps by eta (L-2)/(L-1) at coexistence.
    for depth in (3, 4, 7):
        bs = theory.coexistence_beta(eta, depth)
        lam = theory.stationary_points(eta, bs, depth).minimum
        assert np.allclose(lam, eta * (depth - 2) / (depth - 1), rtol=1e-12)
    # Small-beta barrier dE ~ beta^3 / (2 eta^2) at L = 3.
    beta = 1e-3
    assert theory.barrier(0.8, beta, 3) == pytest.approx(beta**3 / (2 * 0.8**2), rel=5e-3)


# ---------------------------------------------------------------------- brute force, depths 1..10
def brute_roots(eta: float, beta: float, depth: int) -> list[float]:
    """Positive roots of dE/dlambda on a dense log grid + brentq (lambda coordinates)."""
    if depth == 1:
        return [eta / (1 + beta)]

    def h(lam):
        return lam - eta + beta * lam ** (2.0 / depth - 1.0)

    grid = eta * np.logspace(-16, 0.3, 4000)
    vals = h(grid)
    roots = []
    for i in np.nonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))[0]:
        roots.append(brentq(h, grid[i], grid[i + 1], xtol=1e-300, rtol=4 * np.finfo(float).eps))
    return roots


@pytest.mark.parametrize("depth", range(1, 11))
def test_stationary_points_match_brute_force(depth):
    for eta in (0.25, 0.8, 1.7):
        bc = theory.spinodal_beta(eta, depth)
        scale = bc if np.isfinite(bc) else eta
        for frac in (0.0, 1e-3, 0.05, 0.3, 0.6, 0.9, 0.99, 1.01, 1.5, 3.0):
            beta = frac * scale
            sp = theory.stationary_points(eta, beta, depth)
            roots = brute_roots(eta, beta, depth) if beta > 0 else [eta]
            if depth >= 3 and beta > 0:
                if frac < 1:
                    assert len(roots) == 2
                    assert float(sp.saddle) == pytest.approx(roots[0], rel=1e-9)
                    assert float(sp.minimum) == pytest.approx(roots[1], rel=1e-9)
                else:
                    assert roots == []
                    assert np.isnan(sp.saddle) and np.isnan(sp.minimum)
                assert float(sp.trap) == 0.0
            elif depth >= 3:  # beta = 0: trap and saddle merge at 0, minimum at eta
                assert float(sp.saddle) == 0.0 and float(sp.trap) == 0.0
                assert float(sp.minimum) == pytest.approx(eta, rel=1e-12)
            else:
                expected = roots[0] if roots else 0.0
                assert float(sp.minimum) == pytest.approx(expected, rel=1e-9, abs=1e-300)
                assert np.isnan(sp.saddle) and np.isnan(sp.trap)
            # Per-layer coordinates: s^L = lambda and the per-layer stationarity condition.
            for lam, s in ((sp.saddle, sp.s_saddle), (sp.minimum, sp.s_minimum)):
                if np.isfinite(lam):
                    assert float(s) ** depth == pytest.approx(float(lam), rel=1e-12, abs=1e-300)
                    if depth >= 3 and beta > 0:
                        s = float(s)
                        g = s ** (2 * depth - 2) - eta * s ** (depth - 2) + beta
                        assert abs(g) <= 1e-13 * max(beta, eta * s ** (depth - 2))
            # The global minimum agrees with a dense scan of E (away from coexistence).
            lam_grid = np.linspace(0.0, 1.2 * eta, 20001)
            best = lam_grid[np.argmin(theory.energy(lam_grid, eta, beta, depth))]
            assert abs(float(sp.global_minimum) - best) <= 2 * lam_grid[1]


@pytest.mark.parametrize("depth", range(3, 11))
def test_critical_betas_match_bisection(depth):
    for eta in (0.3, 0.8, 0.9):

        def min_h(beta, eta=eta):
            res = minimize_scalar(
                lambda lam: lam - eta + beta * lam ** (2.0 / depth - 1.0),
                bounds=(1e-12, eta),
                method="bounded",
                options={"xatol": 1e-15},
            )
            return res.fun

        lo, hi = 0.0, 10 * eta  # roots exist at lo, not at hi
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if min_h(mid) <= 0 else (lo, mid)
        beta_c = 0.5 * (lo + hi)
        assert theory.spinodal_beta(eta, depth) == pytest.approx(beta_c, rel=1e-9)

        def learned_minus_trap(beta, eta=eta):
            def h(lam):
                return lam - eta + beta * lam ** (2.0 / depth - 1.0)

            peak = minimize_scalar(h, bounds=(1e-12, eta), method="bounded").x
            lam = brentq(h, peak, eta, xtol=1e-16, rtol=1e-15)
            energy = 0.5 * (lam - eta) ** 2 + 0.5 * depth * beta * lam ** (2.0 / depth)
            return energy - 0.5 * eta**2

        beta_star = brentq(
            learned_minus_trap, 1e-4 * beta_c, beta_c * (1 - 1e-6), xtol=1e-16, rtol=1e-15
        )
        assert theory.coexistence_beta(eta, depth) == pytest.approx(beta_star, rel=1e-9)
        sp = theory.stationary_points(eta, beta_star, depth)
        assert float(sp.energy_minimum) == pytest.approx(float(sp.energy_trap), rel=1e-12)


def test_depth_one_and_two():
    eta, beta = np.array([0.9, 0.8, -0.5]), np.array([[0.0], [0.3], [0.85], [2.0]])
    sp1 = theory.stationary_points(eta, beta, 1)
    assert sp1.minimum.shape == (4, 3)
    assert np.allclose(sp1.minimum, eta / (1 + beta))
    sp2 = theory.stationary_points(eta, beta, 2)
    assert np.allclose(sp2.minimum, np.sign(eta) * np.maximum(np.abs(eta) - beta, 0))
    assert np.all(np.isnan(sp2.saddle)) and np.all(np.isnan(sp2.trap))
    assert theory.order_of_transition(1) is None
    assert theory.order_of_transition(2) == 2
    assert all(theory.order_of_transition(d) == 1 for d in range(3, 12))
    assert theory.spinodal_beta(0.7, 2) == 0.7 == theory.coexistence_beta(0.7, 2)
    assert theory.spinodal_beta(0.7, 1) == np.inf
    assert np.all(np.isnan(theory.barrier(0.7, [0.1, 1.0], 2)))


def test_near_spinodal_zero_beta_and_signs():
    depth, eta = 3, 0.8
    bc = theory.spinodal_beta(eta, depth)
    s_star = (eta * (depth - 2) / (2 * depth - 2)) ** (1 / depth)
    betas = np.array([bc * (1 - 1e-12), bc, np.nextafter(bc, 1.0)])
    sp = theory.stationary_points(eta, betas, depth)
    assert np.allclose(sp.s_saddle[:2], s_star, rtol=1e-5)
    assert np.allclose(sp.s_minimum[:2], s_star, rtol=1e-5)
    assert np.all(sp.s_saddle[:2] <= sp.s_minimum[:2])
    assert np.isnan(sp.saddle[2]) and np.isnan(sp.minimum[2]) and sp.trap[2] == 0
    # Negative eta: mirror image in lambda, same energies and per-layer magnitudes.
    pos = theory.stationary_points(0.8, 0.32, 3)
    neg = theory.stationary_points(-0.8, 0.32, 3)
    assert float(neg.saddle) == -float(pos.saddle) and float(neg.minimum) == -float(pos.minimum)
    assert float(neg.s_minimum) == float(pos.s_minimum)
    assert float(neg.barrier_trap) == float(pos.barrier_trap)
    assert float(theory.energy(-0.3, -0.8, 0.32, 3)) == float(theory.energy(0.3, 0.8, 0.32, 3))
    # eta = 0: no learned branch, the trap is the global minimum.
    zero = theory.stationary_points(0.0, 0.1, 3)
    assert float(zero.trap) == 0 and np.isnan(zero.saddle) and np.isnan(zero.minimum)
    assert float(zero.global_minimum) == 0
    # Global minimum switches exactly at beta*.
    bs = theory.coexistence_beta(eta, 3)
    glob = theory.stationary_points(eta, [bs * (1 - 1e-9), bs * (1 + 1e-9)], 3).learned_is_global
    assert glob.tolist() == [True, False]


def test_energy_conventions():
    lam = np.linspace(-1, 1, 11)
    for depth in (1, 2, 3, 5):
        cons = theory.energy(lam, 0.8, 0.3, depth)
        printed = theory.energy(lam, 0.8, 0.3, depth, convention="as_printed")
        assert np.allclose(printed, theory.energy(lam, 0.8, 0.3 / depth, depth))
        if depth == 1:
            assert np.allclose(cons, printed)
        s = np.linspace(0, 1, 7)
        assert np.allclose(
            theory.energy_per_layer(s, 0.8, 0.3, depth), theory.energy(s**depth, 0.8, 0.3, depth)
        )
        assert np.allclose(
            theory.energy_per_layer(s, 0.8, 0.3, depth, "as_printed"),
            theory.energy(s**depth, 0.8, 0.3, depth, "as_printed"),
        )
    # As printed, the critical points move by a factor L.
    assert theory.spinodal_beta(0.8, 3, "as_printed") == pytest.approx(
        3 * theory.spinodal_beta(0.8, 3)
    )
    sp = theory.stationary_points(0.8, 0.96, 3, convention="as_printed")
    assert float(sp.minimum) == pytest.approx(float(theory.stationary_points(0.8, 0.32, 3).minimum))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: theory.energy(0.1, 0.8, 0.3, 0), "depth"),
        (lambda: theory.energy(0.1, 0.8, 0.3, 2.5), "depth"),
        (lambda: theory.stationary_points(0.8, 0.3, True), "depth"),
        (lambda: theory.stationary_points(0.8, -0.1, 3), "beta"),
        (lambda: theory.stationary_points(np.nan, 0.1, 3), "eta"),
        (lambda: theory.energy(0.1, 0.8, 0.3, 3, convention="paper"), "convention"),
        (lambda: theory.barrier(0.8, 0.3, 3, start="saddle"), "start"),
        (lambda: theory.kramers_escape_time(0.8, 0.32, 3, 0.0), "temperature"),
        (lambda: theory.kramers_escape_time(0.8, 0.32, 3, 0.01, lr=-1), "lr"),
        (lambda: theory.kramers_escape_time(0.8, 0.32, 2, 0.01), "depth"),
        (lambda: theory.phase_diagram(None, [0.1], 3), "etas"),
        (lambda: theory.spinodal_beta("x", 3), "eta"),
        (lambda: tp.plot_landscape(coordinate="w"), "coordinate"),
    ],
)
def test_bad_input_names_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------- Kramers, width-1 chain
def test_kramers_acceptance_numbers():
    k = theory.kramers_escape_time(0.8, 0.32, 3, 0.006, lr=0.01)
    assert np.allclose(k.hessian_trap, [0.32, 0.32, 0.32], rtol=1e-14)
    assert np.allclose(k.hessian_saddle, [-0.1944, 0.64, 0.64], atol=5e-5)
    assert k.unstable_eigenvalue == pytest.approx(-0.194418, abs=1e-6)
    assert k.n_saddles == 4
    assert k.barrier == pytest.approx(0.02845346, rel=1e-6)
    assert float(k.tau) == pytest.approx(1444.563, rel=1e-6)  # this implementation's value
    assert abs(float(k.tau) - 1445) / 1445 < 0.01
    assert float(k.tau_steps) == pytest.approx(float(k.tau) / 0.01)
    assert float(k.rate) == pytest.approx(1 / float(k.tau))
    # Hand computation of the formula from its parts.
    mu = 3 * float(theory.stationary_points(0.8, 0.32, 3).s_saddle) ** 4 - 0.32
    by_hand = 1 / (
        4
        * abs(mu)
        / (2 * np.pi)
        * np.sqrt(0.32**3 / (abs(mu) * 0.64**2))
        * np.exp(-k.barrier / 0.006)
    )
    assert float(k.tau) == pytest.approx(by_hand, rel=1e-12)


def test_kramers_vectorised_and_arrhenius():
    temps = np.array([0.004, 0.006, 0.01])
    k = theory.kramers_escape_time(0.8, 0.32, 3, temps)
    assert k.tau.shape == (3,) and k.tau_steps is None
    slope = np.polyfit(1 / temps, np.log(k.tau), 1)[0]
    assert slope == pytest.approx(float(k.barrier), rel=1e-10)
    grid = theory.kramers_escape_time(np.array([0.8, 0.9])[:, None], 0.32, 4, temps[None, :])
    assert (
        grid.tau.shape == (2, 3) and grid.hessian_saddle.shape == (2, 1, 4) and grid.n_saddles == 8
    )
    above = theory.kramers_escape_time(0.8, [0.0, 0.2, 0.36], 3, 0.01)
    assert np.isnan(above.tau[0]) and np.isfinite(above.tau[1]) and np.isnan(above.tau[2])


def numeric_hessian(w, eta, beta, h=1e-4):
    n = w.size
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):

            def u(di, dj, i=i, j=j):
                x = w.copy()
                x[i] += di * h
                x[j] += dj * h
                return theory.chain_loss(x, eta, beta)

            out[i, j] = (u(1, 1) - u(1, -1) - u(-1, 1) + u(-1, -1)) / (4 * h * h)
    return out


def test_chain_hessian_matches_finite_differences(rng):
    for depth in (1, 2, 3, 5):
        for _ in range(3):
            w = rng.normal(0, 0.8, depth)
            exact = theory.chain_hessian(w, 0.8, 0.3)
            assert np.allclose(exact, numeric_hessian(w, 0.8, 0.3), atol=2e-6)
        w0 = np.zeros(depth)
        w0[0] = 0.0
        assert np.allclose(
            theory.chain_hessian(w0, 0.8, 0.3), numeric_hessian(w0, 0.8, 0.3), atol=2e-6
        )
    # Batched weights and closed-form eigenvalues at the balanced saddle.
    for depth in (3, 4, 6):
        sp = theory.stationary_points(0.8, 0.1, depth)
        s = float(sp.s_saddle)
        ev = np.linalg.eigvalsh(theory.chain_hessian(np.full((2, depth), s), 0.8, 0.1))
        expected = [depth * s ** (2 * depth - 2) - (depth - 2) * 0.1] + [0.2] * (depth - 1)
        assert np.allclose(ev, [expected, expected], atol=1e-12)
        barrier = theory.chain_loss(np.full(depth, s), 0.8, 0.1) - theory.chain_loss(
            np.zeros(depth), 0.8, 0.1
        )
        assert barrier == pytest.approx(float(sp.barrier_trap), rel=1e-9)


# ---------------------------------------------------------------------- data-set observables
@pytest.fixture(scope="module")
def exact_data():
    return teacher_data([0.9, 0.8], 512, 512, seed=0, exact_moments=True)


@pytest.fixture(scope="module")
def raw_data():
    return teacher_data([0.9, 0.6, 0.3], 64, 200, seed=3)


def test_aligned_map_has_requested_amplitudes(raw_data):
    lam = np.array([[0.5, -0.2, 0.1], [0.0, 0.3, 0.7]])
    w = theory.aligned_map(raw_data, lam)
    assert w.shape == (2, 3, 3)
    amps = np.einsum("oi,boj,jk->bik", raw_data.mode_out, w, raw_data.mode_in)
    assert np.allclose(amps, lam[:, :, None] * np.eye(3), atol=1e-12)
    # Its training data loss decomposes per mode with the empirical eta_hat.
    x, y = raw_data.x_train, raw_data.y_train
    for b in range(2):
        loss = 0.5 * np.mean(np.sum((y - x @ w[b].T) ** 2, axis=1))
        per_mode = 0.5 * np.sum((lam[b] - raw_data.eta_hat) ** 2) + raw_data.irreducible_loss
        assert loss == pytest.approx(per_mode, rel=1e-12)


def test_state_mse_matches_direct_evaluation(raw_data):
    lam = np.array([0.4, 0.2, 0.0])
    train, test = theory.state_mse(raw_data, lam)
    w = theory.aligned_map(raw_data, lam)
    assert train == pytest.approx(
        np.mean((raw_data.y_train - raw_data.x_train @ w.T) ** 2), rel=1e-12
    )
    assert test == pytest.approx(np.mean((raw_data.y_test - raw_data.x_test @ w.T) ** 2), rel=1e-12)
    no_test = Dataset(raw_data.x_train, raw_data.y_train)
    assert np.isnan(theory.state_mse(no_test, lam)[1])


def test_phase_diagram_with_data(exact_data):
    betas = np.array([0.0, 0.2, 0.32, 0.36, 0.5])
    df = theory.phase_diagram(None, betas, 3, dataset=exact_data)
    assert len(df) == 10
    at = df[df.beta == 0.32].set_index("mode")
    # physics.md 6: plateau levels at beta = 0.32 with eta (0.9, 0.8): 1.00, 0.68, 0.46.
    lam9, lam8 = 0.49564894196165127, 0.342742839981987
    assert at.train_mse_rank0[0] == pytest.approx(1.0, abs=1e-12)
    assert at.train_mse_rank1[0] == pytest.approx(1 - 0.9 * lam9 + lam9**2 / 2, rel=1e-9)
    assert at.train_mse_rank2[0] == pytest.approx(
        1 - 0.9 * lam9 - 0.8 * lam8 + (lam9**2 + lam8**2) / 2, rel=1e-9
    )
    assert [round(at[f"train_mse_rank{r}"][0], 2) for r in range(3)] == [1.0, 0.68, 0.46]
    assert at.test_mse_rank1[0] == pytest.approx(
        theory.state_mse(exact_data, [lam9, 0.0])[1], rel=1e-12
    )
    # Phases at beta = 0.32: mode 0 learned globally (0.32 < beta*(0.9) = 0.345) with the
    # trap metastable; mode 1 learned only metastably (beta*(0.8) = 0.295 < 0.32 < 0.351).
    assert at.learned_global.tolist() == [True, False]
    assert at.trap_metastable.tolist() == [True, False]
    assert at.learned_metastable.tolist() == [False, True]
    assert at.global_rank[0] == 1 and at.max_stable_rank[0] == 2
    assert at.train_mse_global[0] == at.train_mse_rank1[0]
    at36 = df[df.beta == 0.36].set_index("mode")
    assert at36.global_rank[0] == 0 and at36.max_stable_rank[0] == 1
    assert np.isnan(at36.train_mse_rank2[0]) and np.isfinite(at36.train_mse_rank1[0])
    at0 = df[df.beta == 0.0]
    assert at0.learned_global.all() and not at0.trap_metastable.any()
    assert np.allclose(df.beta_c.iloc[:2], theory.spinodal_beta([0.9, 0.8], 3))


def test_expected_observables_and_thresholds(exact_data):
    obs = theory.expected_observables(exact_data, 0.32, 3)
    assert list(obs.eta) == [0.9, 0.8]
    assert np.allclose(obs.lambda_min, [0.4956489, 0.3427428], rtol=1e-6)
    assert np.allclose(obs.barrier_trap, [0.02143377, 0.02845346], rtol=1e-6)
    th = theory.mode_thresholds(0.8, 0.32, 3)
    assert float(th.lam) == pytest.approx((0.09254518 + 0.34274284) / 2, rel=1e-7)
    assert float(th.s) == pytest.approx((0.45232570 + 0.69982502) / 2, rel=1e-7)
    assert obs.lambda_threshold[1] == pytest.approx(float(th.lam))
    assert float(theory.mode_thresholds(0.8, 0.3, 2).lam) == pytest.approx(0.25)
    assert np.isnan(theory.mode_thresholds(0.8, 0.4, 3).lam)


# ---------------------------------------------------------------------- plots
def test_plot_landscape_data():
    fig, ax = plt.subplots()
    assert tp.plot_landscape(0.8, (0.29, 0.32, 0.35), 3, ax=ax) is ax
    for beta in (0.29, 0.32, 0.35):
        xy = tp.find_line(ax, f"curve:beta={beta:g}").get_xydata()
        sp = theory.stationary_points(0.8, beta, 3)
        # The plotted curve is E - E(0), its interior local minimum sits at lambda_min and
        # its local maximum at lambda_sad.
        assert np.allclose(xy[:, 1], theory.energy(xy[:, 0], 0.8, beta, 3) - 0.32, atol=1e-15)
        inner = xy[:, 0] > float(sp.saddle)
        assert xy[inner][np.argmin(xy[inner, 1]), 0] == float(sp.minimum)
        near = xy[:, 0] < float(sp.minimum)
        assert xy[near][np.argmax(xy[near, 1]), 0] == float(sp.saddle)
    mins = tp.find_line(ax, "minimum").get_xydata()
    assert np.allclose(mins[1], [0.342742839981987, 0.02845346173057811 - 0.008828980096701272])
    saddles = tp.find_line(ax, "saddle").get_xydata()
    assert saddles[1, 1] == pytest.approx(0.02845346, rel=1e-6)
    plt.close(fig)
    ax = tp.plot_landscape(0.8, (0.32,), 3, coordinate="s", convention="as_printed")
    assert tp.find_line(ax, "minimum").get_xydata()[0, 0] == pytest.approx(
        float(theory.stationary_points(0.8, 0.32, 3, "as_printed").s_minimum)
    )
    plt.close(ax.figure)


def test_plot_bifurcation_data():
    ax = tp.plot_bifurcation((0.9, 0.8), depth=3)
    for eta in (0.9, 0.8):
        learned = tp.find_line(ax, f"learned:eta={eta:g}").get_xydata()
        saddle = tp.find_line(ax, f"saddle:eta={eta:g}").get_xydata()
        assert np.allclose(learned[:, 1], theory.stationary_points(eta, learned[:, 0], 3).minimum)
        assert np.allclose(saddle[:, 1], theory.stationary_points(eta, saddle[:, 0], 3).saddle)
        bc = theory.spinodal_beta(eta, 3)
        assert learned[-1, 0] == bc and saddle[-1, 0] == bc
        fold = tp.find_line(ax, f"spinodal:eta={eta:g}").get_xydata()
        assert fold[0, 0] == bc and fold[0, 1] == pytest.approx(
            eta / 4, rel=1e-6
        )  # lambda_c = eta/4
        coex = tp.find_line(ax, f"coexistence:eta={eta:g}").get_xydata()
        assert np.allclose(
            coex, [[theory.coexistence_beta(eta, 3), 0], [theory.coexistence_beta(eta, 3), eta / 2]]
        )
    assert np.all(tp.find_line(ax, "trap").get_xydata()[:, 1] == 0)
    assert (
        ax.lines[0].get_linestyle() == "-"
        and tp.find_line(ax, "saddle:eta=0.8").get_linestyle() == "--"
    )
    plt.close(ax.figure)
    ax = tp.plot_bifurcation((0.8,), depth=2, betas=np.linspace(0, 1, 11))
    assert np.allclose(
        tp.find_line(ax, "learned:eta=0.8").get_xydata()[:, 1],
        np.maximum(0.8 - np.linspace(0, 1, 11), 0),
    )
    plt.close(ax.figure)


def test_plot_phase_diagram_data():
    betas = np.linspace(0, 0.5, 501)
    fig, ax = plt.subplots()
    tp.plot_phase_diagram((0.9, 0.8), betas, 3, ax=ax)
    glob = tp.find_line(ax, "global_rank").get_xydata()
    top = tp.find_line(ax, "max_stable_rank").get_xydata()
    bs, bc = theory.coexistence_beta([0.9, 0.8], 3), theory.spinodal_beta([0.9, 0.8], 3)
    assert np.array_equal(glob[:, 1], (glob[:, 0] < bs[0]).astype(int) + (glob[:, 0] < bs[1]))
    assert np.array_equal(top[:, 1], (top[:, 0] <= bc[0]).astype(int) + (top[:, 0] <= bc[1]))
    assert {p.get_gid() for p in ax.patches} == {"hysteresis:eta=0.9", "hysteresis:eta=0.8"}
    for p in ax.patches:  # axvspan rectangles span [beta*, beta_c] in data x
        lo, hi = p.get_x(), p.get_x() + p.get_width()
        i = 0 if p.get_gid().endswith("0.9") else 1
        assert lo == pytest.approx(bs[i], rel=1e-12) and hi == pytest.approx(bc[i], rel=1e-12)
    plt.close(fig)


def test_example_script_writes_pngs(tmp_path, repo_file):
    example = repo_file("examples/theory_figures.py")
    runpy.run_path(str(example), run_name="not_main")["main"](["x", str(tmp_path)])
    for name in ("landscape.png", "bifurcation.png", "phase_diagram.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
