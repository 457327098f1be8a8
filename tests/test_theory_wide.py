"""Tests of the escape theory of networks wider than one (grokescape.theory.wide):
every closed form against a direct numerical evaluation (finite-difference Hessians, Gram
determinants, brute-force quadrature), the limits that tie the methods together, and the
reference numbers of physics.md section 8."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from grokescape import theory
from grokescape.theory import wide

ETA = [0.9, 0.8]
BETA = 0.32
D_E = 0.0284534617305781  # per-mode barrier of eta 0.8 at beta 0.32 (physics.md 4)


def random_weights(widths, rng, scale=0.7):
    return [scale * rng.standard_normal((widths[i + 1], widths[i])) for i in range(len(widths) - 1)]


def flat(ws):
    return np.concatenate([w.ravel() for w in ws])


def unflat(x, like):
    out, i = [], 0
    for w in like:
        out.append(x[i : i + w.size].reshape(w.shape))
        i += w.size
    return out


@pytest.mark.parametrize("widths", [[2, 3, 3, 2], [2, 3, 4, 3, 2], [3, 2, 4, 1]])
def test_network_gradient_and_hessian_match_finite_differences(widths, rng):
    ws = random_weights(widths, rng)
    eta = [0.9, 0.8, 0.5][: min(widths[0], widths[-1])]
    x = flat(ws)
    eps = 1e-6
    grad = flat(wide.network_gradient(ws, eta, 0.3))
    fd_grad = np.array(
        [
            (
                wide.network_loss(unflat(x + eps * e, ws), eta, 0.3)
                - wide.network_loss(unflat(x - eps * e, ws), eta, 0.3)
            )
            / (2 * eps)
            for e in np.eye(x.size)
        ]
    )
    np.testing.assert_allclose(grad, fd_grad, atol=1e-8)
    hess = wide.network_hessian(ws, eta, 0.3)
    fd = np.column_stack(
        [
            (
                flat(wide.network_gradient(unflat(x + 1e-5 * e, ws), eta, 0.3))
                - flat(wide.network_gradient(unflat(x - 1e-5 * e, ws), eta, 0.3))
            )
            / 2e-5
            for e in np.eye(x.size)
        ]
    )
    np.testing.assert_allclose(hess, hess.T, atol=1e-14)
    np.testing.assert_allclose(hess, fd, atol=1e-8)


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("h", [2, 3, 5])
def test_orbit_volume_closed_form_matches_gram_determinant(depth, h):
    sp = theory.stationary_points(np.array(ETA), BETA if depth == 3 else 0.2, depth)
    s0, s1 = float(sp.s_minimum[0]), float(sp.s_saddle[1])
    for amps in ([s0, 0.0], [s0, s1]):
        ws = wide.aligned_network([2] + [h] * (depth - 1) + [2], amps)
        tangents = wide.orbit_tangents(ws, int(np.count_nonzero(amps)))
        k = int(np.count_nonzero(amps))
        stiefel = math.prod(
            2 * math.pi ** (j / 2) / math.gamma(j / 2) for j in range(h - k + 1, h + 1)
        )
        gram_volume = stiefel ** (depth - 1) * math.sqrt(np.linalg.det(tangents @ tangents.T))
        assert tangents.shape[0] == wide._orbit_dim(h, depth, k)
        assert wide.orbit_volume(h, depth, amps) == pytest.approx(gram_volume, rel=1e-10)


def test_in_span_gram_determinant_of_physics_md():
    # L = 3: the two in-span generators' Gram determinant is 4 (s0^4 + s0^2 s1^2 + s1^4)
    s0, s1 = 0.7, 0.4
    ws = wide.aligned_network([2, 2, 2, 2], [s0, s1])
    t = wide.orbit_tangents(ws, 2)
    assert np.linalg.det(t @ t.T) == pytest.approx(4 * (s0**4 + s0**2 * s1**2 + s1**4), rel=1e-12)


@pytest.mark.parametrize("h", [2, 3, 4, 10])
def test_zero_mode_structure_of_the_paper_network(h):
    zm = theory.zero_mode_structure([2, h, h, 2], ETA, BETA)
    assert zm.barrier == pytest.approx(D_E, rel=1e-12)
    assert (zm.orbit_dim_trap, zm.orbit_dim_saddle) == (2 * (h - 1), 2 * (2 * h - 3))
    assert zm.exponent == h - 2
    # the saddle's unstable direction is the chain's; the trap's soft mode is h-independent
    chain = theory.kramers_escape_time(0.8, BETA, 3, 0.001)
    assert zm.unstable_eigenvalue == pytest.approx(float(chain.unstable_eigenvalue), rel=1e-10)
    assert zm.softest_trap == pytest.approx(0.0791391523871, rel=1e-10)
    assert zm.direct


def test_log_det_extension_beyond_direct_width_is_exact(monkeypatch):
    ext = theory.zero_mode_structure([2, 18, 18, 2], ETA, BETA)
    assert not ext.direct
    monkeypatch.setattr(wide, "_DIRECT_MAX_WIDTH", 100)
    direct = theory.zero_mode_structure([2, 18, 18, 2], ETA, BETA)
    assert direct.direct
    assert ext.log_det_trap == pytest.approx(direct.log_det_trap, abs=1e-8)
    assert ext.log_det_saddle == pytest.approx(direct.log_det_saddle, abs=1e-8)
    assert ext.log_C == pytest.approx(direct.log_C, abs=1e-8)


@pytest.mark.parametrize("depth,beta", [(3, 0.32), (4, 0.2)])
def test_zero_modes_of_width_one_subsystem_is_the_chain(depth, beta):
    # [1, 1, ..., 1]: the "orbit" of the saddle is its 2^(L-1) sign patterns (vol S^0 = 2)
    zm = theory.zero_mode_structure([1] * (depth + 1), [0.8], beta, rank=0)
    temps = np.array([0.002, 0.005])
    chain = theory.kramers_escape_time(0.8, beta, depth, temps)
    np.testing.assert_allclose(zm.tau(temps), chain.tau, rtol=1e-10)


def test_mode_coupling_factor_is_h_independent():
    c = [theory.mode_coupling_factor([2, h, h, 2], ETA, BETA) for h in (2, 3, 4, 10)]
    np.testing.assert_allclose(c, 0.820562066555, rtol=1e-9)


def test_reduced_stationary_points_and_hessian(rng):
    sub = theory.ReducedSubsystem(5, 0.8, BETA)
    temp = 0.5 * sub.collapse_temperature
    sp = sub.stationary_points(temp)
    for u, b, hess in (
        (sp.u_trap, sp.b_trap, sp.hessian_trap),
        (sp.u_saddle, sp.b_saddle, sp.hessian_saddle),
    ):
        p = np.array([np.sqrt(u), np.sqrt(u), b])  # (alpha, gamma, b)

        def f(q):
            return float(sub.free_energy(q[0], q[2], q[1], temp))

        eps = 1e-6
        grad = [(f(p + eps * e) - f(p - eps * e)) / (2 * eps) for e in np.eye(3)]
        np.testing.assert_allclose(grad, 0.0, atol=1e-9)
        np.testing.assert_allclose(hess, sub.hessian(p[0], p[2], p[1], temp), atol=0)
        fd = np.array(
            [
                [
                    (
                        f(p + eps * (ei + ej))
                        - f(p + eps * (ei - ej))
                        - f(p - eps * (ei - ej))
                        + f(p - eps * (ei + ej))
                    )
                    / (4 * eps**2)
                    for ej in np.eye(3)
                ]
                for ei in np.eye(3)
            ]
        )
        np.testing.assert_allclose(hess, fd, atol=2e-4)
    assert sp.barrier > 0
    assert np.linalg.eigvalsh(sp.hessian_trap).min() > 0
    assert np.sum(np.linalg.eigvalsh(sp.hessian_saddle) < 0) == 1
    assert sp.kappa < 0


def test_collapse_temperature_of_physics_md():
    sub = theory.ReducedSubsystem(9, 0.8, BETA)
    assert sub.theta_c == pytest.approx(0.0133952750620, rel=1e-9)
    assert theory.collapse_temperature([2, 10, 10, 2], ETA, BETA) == pytest.approx(
        0.0133952750620 / 8, rel=1e-9
    )
    assert theory.collapse_temperature([2, 2, 2, 2], ETA, BETA) == np.inf
    # the barrier vanishes continuously at T_c and depends on (n - 1) T only
    t_c = sub.collapse_temperature
    assert sub.stationary_points(t_c * (1 - 1e-6)).barrier < 1e-9
    assert np.isnan(sub.stationary_points(t_c * 1.001).barrier)
    other = theory.ReducedSubsystem(3, 0.8, BETA)
    assert other.stationary_points(4 * 0.5 * t_c).u_saddle == pytest.approx(
        sub.stationary_points(0.5 * t_c).u_saddle, rel=1e-12
    )


def box_integral(sub, temp, func, nodes=(160, 160, 240)):
    """int over alpha, gamma in [0, 2], b in [-2, 2] of func * exp(-(F - eta^2/2) / T), by a
    Gauss-Legendre product rule (F includes the entropic (alpha gamma)^(n-1))."""
    (xa, wa), (xg, wg), (xb, wb) = (special.roots_legendre(k) for k in nodes)
    a, g, b = 1 + xa, 1 + xg, 2 * xb
    a3, g3, b3 = a[:, None, None], g[None, :, None], b[None, None, :]
    f = np.exp(-(sub.free_energy(a3, b3, g3, temp) - 0.5 * sub.eta**2) / temp)
    w = wa[:, None, None] * wg[None, :, None] * (2 * wb)[None, None, :]
    return float(np.sum(w * f * func(a3, b3, g3)))


@pytest.mark.parametrize("n", [1, 3])
def test_trap_population_matches_direct_quadrature(n):
    sub = theory.ReducedSubsystem(n, 0.8, BETA)
    temp = 0.01
    direct = box_integral(sub, temp, lambda a, b, g: 1.0)
    got = sub.log_trap_population(temp, 4.0) + 0.32 / temp
    assert got == pytest.approx(math.log(direct), abs=1e-7)


def test_lambda_profile_integrates_to_the_reduced_density():
    # int p(lambda) dlambda and int D p dlambda against the three-dimensional integrals
    n, temp = 3, 0.01
    sub = theory.ReducedSubsystem(n, 0.8, BETA)
    lam = np.linspace(-0.3, 1.2, 6001)
    log_p, diff = sub.lambda_profile(lam, temp)
    p = np.exp(log_p + 0.32 / temp)
    total = integrate.trapezoid(p, lam)
    free = (n - 1) * temp / BETA
    z = box_integral(sub, temp, lambda a, b, g: 1.0)
    d3 = box_integral(
        sub, temp, lambda a, b, g: temp * ((a**2 + g**2) * (b**2 + free) + a**2 * g**2)
    )
    assert total / z == pytest.approx(1.0, rel=1e-6)
    assert integrate.trapezoid(p * diff, lam) / total == pytest.approx(d3 / z, rel=1e-6)


def test_reduced_tends_to_zero_modes_as_t_goes_to_zero():
    for h, tol in ((2, 0.002), (4, 0.01)):
        red = theory.wide_escape_time([2, h, h, 2], ETA, BETA, D_E / 400, method="reduced")
        zm = theory.wide_escape_time([2, h, h, 2], ETA, BETA, D_E / 400, method="zero_modes")
        assert abs(math.log(red.tau[0] / zm.tau[0])) < tol
    # the correction is linear in T (ln tau = ln tau_ZM + C T): halving T halves it
    a = [
        math.log(
            theory.wide_escape_time([2, 4, 4, 2], ETA, BETA, D_E / r, method="reduced").tau[0]
            / theory.wide_escape_time([2, 4, 4, 2], ETA, BETA, D_E / r, method="zero_modes").tau[0]
        )
        for r in (200, 400)
    ]
    assert a[0] / a[1] == pytest.approx(2.0, rel=0.05)


def test_mfpt_agrees_with_reduced_langer_where_the_barrier_is_high():
    temps = D_E / np.array([15.0, 30.0])
    red = theory.wide_escape_time([2, 4, 4, 2], ETA, BETA, temps, method="reduced")
    mf = theory.wide_escape_time([2, 4, 4, 2], ETA, BETA, temps, method="mfpt_1d")
    np.testing.assert_allclose(mf.tau / red.tau, 1.0, atol=0.015)


def test_mfpt_grid_convergence():
    sub = theory.ReducedSubsystem(9, 0.8, BETA)
    thr = float(theory.mode_thresholds(0.8, BETA, 3).lam)
    for ratio in (9.0, 21.0):
        a = sub.mean_first_passage(D_E / ratio, thr, n_grid=3000)
        b = sub.mean_first_passage(D_E / ratio, thr, n_grid=6000)
        assert a == pytest.approx(b, rel=1e-4)


def test_wide_escape_time_methods_and_slopes():
    temps = D_E / np.array([20.0, 25.0])
    out = {
        m: theory.wide_escape_time([2, 10, 10, 2], ETA, BETA, temps, method=m, lr=0.05)
        for m in ("zero_modes", "reduced", "chain")
    }
    zm = out["zero_modes"]
    np.testing.assert_allclose(zm.tau_steps, zm.tau / 0.05)
    np.testing.assert_allclose(zm.arrhenius_slope, D_E - 8 * temps)
    np.testing.assert_allclose(out["chain"].arrhenius_slope, D_E)
    # numerical slope of the zero-mode formula agrees with its closed form
    up = theory.wide_escape_time([2, 10, 10, 2], ETA, BETA, temps / 1.0001, method="zero_modes")
    dn = theory.wide_escape_time([2, 10, 10, 2], ETA, BETA, temps / 0.9999, method="zero_modes")
    num = (np.log(up.tau) - np.log(dn.tau)) / (2e-4 / temps)
    np.testing.assert_allclose(num, zm.arrhenius_slope, rtol=1e-6)
    red = out["reduced"]
    assert red.coupling_factor == pytest.approx(0.8205620665, rel=1e-8)
    assert np.all(red.valid)
    assert np.all(red.tau > zm.tau)
    assert np.all(red.arrhenius_slope < D_E)
    # above T_c there is no barrier: reduced has no answer, mfpt_1d has one
    hot = theory.wide_escape_time([2, 10, 10, 2], ETA, BETA, D_E / 9, method="reduced")
    assert np.isnan(hot.tau[0]) and not hot.valid[0]
    assert np.isnan(hot.free_energy_barrier[0])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"method": "nope"}, "method"),
        ({"widths": [2, 4, 5, 2]}, "widths"),
        ({"widths": [2, 1, 1, 2]}, "widths"),
        ({"eta": [0.9]}, "eta"),
        ({"beta": 0.5}, "beta"),
        ({"temperature": -1.0}, "temperature"),
        ({"widths": [2, 4, 4, 4, 2], "beta": 0.2, "method": "reduced"}, "depth 3"),
        ({"widths": [2, 2, 2, 2], "method": "mfpt_1d"}, "mfpt_1d"),
    ],
)
def test_wide_escape_time_argument_errors(kwargs, match):
    args = {"widths": [2, 4, 4, 2], "eta": ETA, "beta": BETA, "temperature": 0.003}
    args.update(kwargs)
    widths, eta, beta, temp = (args.pop(k) for k in ("widths", "eta", "beta", "temperature"))
    with pytest.raises(ValueError, match=match):
        theory.wide_escape_time(widths, eta, beta, temp, **args)
