"""Ensemble scores (`meshsim.evaluation.ensemble`), spectra (`meshsim.evaluation.spectra`)
and the CRPS training loss (`meshsim.training.crps`).

References are independent of the code under test: the Gaussian CRPS in closed form,
the CRPS written as the O(M²) double sum of its definition, the `scores` verification
library where it is installed, scipy's spherical harmonics, numpy's detrending, and
finite differences of the numpy score for the loss's gradient.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meshsim.data.weather import node_weights
from meshsim.evaluation import (
    almost_fair_crps,
    crps_ensemble,
    ensemble_scores,
    line_spectrum,
    rank_histogram,
    sphere_power_spectrum,
)
from meshsim.evaluation.forecast import weighted_rmse
from meshsim.training import crps_loss

stats = pytest.importorskip("scipy.stats")


def gaussian_crps(mu, sigma, y):
    """CRPS of N(μ, σ²) at y: σ[z(2Φ(z) − 1) + 2φ(z) − 1/√π] (Gneiting et al. 2005)."""
    z = (y - mu) / sigma
    return sigma * (
        z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi)
    )


def pairwise_crps(members, truth, *, spread_divisor):
    """The definition: mean_i |x_i − y| − Σ_ij |x_i − x_j| / (2K), O(M²)."""
    skill = np.mean(np.abs(members - truth[None]), axis=0)
    pairs = np.abs(members[:, None] - members[None, :]).sum(axis=(0, 1))
    return skill - pairs / (2 * spread_divisor)


# ---------------------------------------------------------------- pointwise CRPS


@pytest.mark.parametrize("y", [-2.3, 0.0, 0.4, 1.7])
def test_crps_of_a_gaussian_ensemble_matches_the_closed_form(y):
    # 1,000 members at the midpoint quantiles of N(μ, σ²): their empirical distribution
    # is the Gaussian up to O(1/M²) in CRPS, far below the 1e-3 bar. (A random draw of
    # 1,000 members would carry ~3 % Monte Carlo error.)
    mu, sigma, m = 0.3, 1.7, 1000
    members = mu + sigma * stats.norm.ppf((np.arange(m) + 0.5) / m)
    got = crps_ensemble(members, np.float64(y), fair=False)
    want = gaussian_crps(mu, sigma, y)
    assert got == pytest.approx(want, rel=1e-3)


def test_the_fair_crps_is_unbiased_and_the_standard_one_is_not():
    # Many 4-member ensembles drawn from N(0, 1) scored against a fixed y: the fair
    # estimator averages to the Gaussian's CRPS; the standard one is biased high by
    # E|X − X′| / (2M) = (2/√π) / 8 ≈ 0.141.
    rng = np.random.default_rng(0)
    m, points, y = 4, 200_000, 0.5
    members = rng.normal(size=(m, points))
    truth = np.full(points, y)
    want = gaussian_crps(0.0, 1.0, y)
    fair = crps_ensemble(members, truth, fair=True).mean()
    standard = crps_ensemble(members, truth, fair=False).mean()
    # standard error of the mean ≈ 0.6 / √200,000 ≈ 1.3e-3: 5e-3 is ~4 standard errors
    assert abs(fair - want) < 5e-3
    assert standard - want == pytest.approx(2 / math.sqrt(math.pi) / (2 * m), abs=5e-3)


def test_fair_and_standard_differ_by_the_spread_over_m_minus_one():
    rng = np.random.default_rng(1)
    members, truth = rng.normal(size=(6, 40)), rng.normal(size=40)
    fair = crps_ensemble(members, truth, fair=True)
    standard = crps_ensemble(members, truth, fair=False)
    half_spread = np.abs(members[:, None] - members[None]).sum((0, 1)) / (2 * 36)  # ½Σ/M²
    np.testing.assert_allclose(standard - fair, half_spread / 5, rtol=1e-12)
    assert np.all(fair <= standard)


def test_one_member_is_the_absolute_error():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    for fair in (False, True):
        np.testing.assert_array_equal(crps_ensemble(x[None], y, fair=fair), np.abs(x - y))
    np.testing.assert_array_equal(almost_fair_crps(x[None], y, 0.95), np.abs(x - y))


@pytest.mark.parametrize("integers", [False, True], ids=["continuous", "with-ties"])
def test_the_sorted_formula_equals_the_pairwise_one(integers):
    rng = np.random.default_rng(3)
    members = rng.normal(size=(7, 5, 3))
    truth = rng.normal(size=(5, 3))
    if integers:  # ties between members and with the truth
        members, truth = np.round(members * 2), np.round(truth * 2)
    m = members.shape[0]
    np.testing.assert_allclose(
        crps_ensemble(members, truth, fair=False),
        pairwise_crps(members, truth, spread_divisor=m * m),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        crps_ensemble(members, truth, fair=True),
        pairwise_crps(members, truth, spread_divisor=m * (m - 1)),
        rtol=1e-12,
        atol=1e-12,
    )


def test_almost_fair_crps_follows_lang_et_al_and_spans_fair_to_standard():
    rng = np.random.default_rng(4)
    members, truth = rng.normal(size=(5, 30)), rng.normal(size=30)
    m, alpha = 5, 0.95
    eps = (1 - alpha) / m
    # Lang et al. 2024: 1/(2M(M − 1)) Σ_{i≠j} (|x_i − y| + |x_j − y| − (1 − ε)|x_i − x_j|)
    err = np.abs(members - truth[None])
    off = ~np.eye(m, dtype=bool)
    terms = err[:, None] + err[None, :] - (1 - eps) * np.abs(members[:, None] - members[None])
    want = terms[off].sum(0) / (2 * m * (m - 1))
    np.testing.assert_allclose(almost_fair_crps(members, truth, alpha), want, rtol=1e-12)
    fair = crps_ensemble(members, truth, fair=True)
    standard = crps_ensemble(members, truth, fair=False)
    np.testing.assert_allclose(almost_fair_crps(members, truth, 1.0), fair, rtol=1e-12)
    np.testing.assert_allclose(almost_fair_crps(members, truth, 0.0), standard, rtol=1e-12)
    np.testing.assert_allclose(
        almost_fair_crps(members, truth, alpha), alpha * fair + (1 - alpha) * standard, rtol=1e-12
    )


@pytest.mark.parametrize("fair, method", [(True, "fair"), (False, "ecdf")])
def test_crps_matches_the_scores_library(fair, method):
    scores = pytest.importorskip("scores")
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(5)
    members, truth = rng.gamma(2.0, size=(9, 4, 6)), rng.gamma(2.0, size=(4, 6))
    fcst = xr.DataArray(members, dims=("member", "a", "b"))
    obs = xr.DataArray(truth, dims=("a", "b"))
    theirs = scores.probability.crps_for_ensemble(
        fcst, obs, "member", method=method, preserve_dims="all"
    )
    np.testing.assert_allclose(crps_ensemble(members, truth, fair=fair), theirs.values, rtol=1e-12)


def test_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match="truth"):
        crps_ensemble(np.zeros((3, 4)), np.zeros(5), fair=True)
    with pytest.raises(ValueError, match="alpha"):
        almost_fair_crps(np.zeros((3, 4)), np.zeros(4), 1.5)
    with pytest.raises(ValueError, match="weights"):
        ensemble_scores(np.zeros((2, 1, 4, 1)), np.zeros((1, 4, 1)), np.zeros((4, 1)),
                        np.ones(3), ["x"])  # fmt: skip
    with pytest.raises(ValueError, match="members"):
        ensemble_scores(np.zeros((1, 4, 1)), np.zeros((1, 4, 1)), np.zeros((4, 1)),
                        np.ones(4), ["x"])  # fmt: skip


# ---------------------------------------------------------------- ensemble scores


def synthetic_ensemble(rng, m, leads, nodes, channels, *, member_std, truth_std=1.0):
    """Members and truth around a common random centre; the truth is drawn like a member
    when `member_std` = `truth_std`."""
    centre = rng.normal(size=(leads, nodes, channels)) * 3.0
    members = centre[None] + member_std * rng.normal(size=(m, leads, nodes, channels))
    truth = centre + truth_std * rng.normal(size=(leads, nodes, channels))
    return members, truth


def test_a_calibrated_ensemble_has_spread_skill_one_and_a_flat_rank_histogram():
    rng = np.random.default_rng(6)
    m, leads, nodes = 8, 2, 12_000
    members, truth = synthetic_ensemble(rng, m, leads, nodes, 2, member_std=1.0)
    weights = np.ones(nodes)
    out = ensemble_scores(members, truth, np.zeros((nodes, 2)), weights, ["u", "v"])
    bound = stats.chi2.ppf(0.999, m)  # flat: χ² with M degrees of freedom
    for ch in ("u", "v"):
        # the ratio's sampling error over 12,000 nodes is ≈ 1 %: 0.05 is ~4–5 of it
        np.testing.assert_allclose(out["spread_skill"][ch], 1.0, atol=0.05)
        for counts in out["rank_histogram"][ch]:
            counts = np.asarray(counts)
            assert counts.sum() == nodes and len(counts) == m + 1
            expected = nodes / (m + 1)
            assert np.sum((counts - expected) ** 2 / expected) < bound


def test_an_under_dispersed_ensemble_has_a_low_ratio_and_a_u_shaped_histogram():
    rng = np.random.default_rng(7)
    m, nodes = 8, 6_000
    members, truth = synthetic_ensemble(rng, m, 1, nodes, 1, member_std=0.3)
    out = ensemble_scores(members, truth, np.zeros((nodes, 1)), np.ones(nodes), ["h"])
    assert out["spread_skill"]["h"][0] < 0.5
    counts = np.asarray(out["rank_histogram"]["h"][0])
    middle = counts[1:-1].mean()
    assert counts[0] > 3 * middle and counts[-1] > 3 * middle


def test_scores_reduce_with_area_weights_like_the_deterministic_ones():
    rng = np.random.default_rng(8)
    lat = np.linspace(-84.375, 84.375, 16)
    lon = np.arange(32) * 11.25
    weights = node_weights(lat, lon).astype(np.float64)  # [N] mean 1, latitude-major
    n = weights.size
    members, truth = synthetic_ensemble(rng, 5, 3, n, 2, member_std=0.7)
    clim = rng.normal(size=(n, 2))
    out = ensemble_scores(members, truth, clim, weights, ["a", "b"])
    mean = members.mean(0)
    rmse = weighted_rmse(mean, truth, weights)
    crps = crps_ensemble(members, truth, fair=False)
    for k, ch in enumerate(["a", "b"]):
        np.testing.assert_allclose(out["ensemble_mean_rmse"][ch], rmse[:, k], rtol=1e-12)
        want = (crps[..., k] * weights).sum(1) / weights.sum()
        np.testing.assert_allclose(out["crps"][ch], want, rtol=1e-12)
        spread = np.sqrt((members.var(0, ddof=1)[..., k] * weights).sum(1) / weights.sum())
        np.testing.assert_allclose(out["spread"][ch], spread, rtol=1e-12)
        np.testing.assert_allclose(
            out["spread_skill"][ch], np.sqrt(6 / 5) * spread / rmse[:, k], rtol=1e-12
        )
        assert np.all(np.asarray(out["crps_fair"][ch]) < np.asarray(out["crps"][ch]))
    # one member: CRPS is the weighted MAE, no spread, RMSE of that member
    one = ensemble_scores(members[:1], truth, clim, weights, ["a", "b"])
    mae = (np.abs(members[0] - truth) * weights[None, :, None]).sum(1) / weights.sum()
    np.testing.assert_allclose(one["crps"]["a"], mae[:, 0], rtol=1e-12)
    np.testing.assert_allclose(one["crps_fair"]["b"], mae[:, 1], rtol=1e-12)
    assert one["spread"]["a"] == [0.0] * 3 and one["spread_skill"]["b"] == [0.0] * 3
    # meshes have no climatology: everything but the ACC
    no_clim = ensemble_scores(members, truth, None, weights, ["a", "b"])
    assert set(out) - set(no_clim) == {"ensemble_mean_acc"}
    assert no_clim["crps"] == out["crps"]


def test_rank_histogram_breaks_ties_at_random():
    # Every member equals the truth: all M + 1 ranks are equally likely.
    counts = rank_histogram(np.zeros((3, 40_000)), np.zeros(40_000))
    np.testing.assert_allclose(counts / 40_000, 0.25, atol=0.01)


# ---------------------------------------------------------------- spectra


def real_harmonic(degree, order, lat_deg, lon_deg):
    sph_harm_y = getattr(pytest.importorskip("scipy.special"), "sph_harm_y", None)
    if sph_harm_y is None:
        pytest.skip("scipy.special.sph_harm_y needs scipy >= 1.15")
    theta = np.deg2rad(90.0 - np.asarray(lat_deg))[:, None]  # colatitude
    phi = np.deg2rad(np.asarray(lon_deg))[None, :]
    return sph_harm_y(degree, order, theta, phi)  # [H, W] complex, orthonormal on the sphere


@pytest.mark.parametrize("poles", [False, True], ids=["cell-centred", "with-poles"])
@pytest.mark.parametrize("degree, order", [(0, 0), (4, 0), (7, 3), (12, 12)])
def test_a_single_spherical_harmonic_puts_its_power_at_its_degree(degree, order, poles):
    h, w = (33, 64) if poles else (32, 64)
    lat = np.linspace(-90, 90, h) if poles else -90 + (np.arange(h) + 0.5) * 180 / h
    lon = 7.5 + np.arange(w) * 360 / w  # any start
    field = np.real(real_harmonic(degree, order, lat, lon))
    power = sphere_power_spectrum(field, lat)
    assert len(power) == (h - 1) // 2 + 1
    # Re Y_lm has area-mean square 1/(4π) for m = 0 and 1/(8π) otherwise
    assert power[degree] == pytest.approx(1 / (4 * np.pi) / (1 if order == 0 else 2), rel=1e-10)
    assert np.sum(np.delete(power, degree)) < 1e-12 * power[degree]


def test_power_of_a_band_limited_field_is_its_coefficients_and_sums_to_the_mean_square():
    rng = np.random.default_rng(9)
    h, w, top = 24, 48, 11
    lat = -90 + (np.arange(h) + 0.5) * 180 / h
    lon = np.arange(w) * 360 / w
    field = np.zeros((h, w))
    want = np.zeros(top + 1)
    for degree in range(top + 1):
        for order in range(degree + 1):
            c = complex(*rng.normal(size=2)) / (1 + degree)  # a red spectrum
            field += np.real(c * real_harmonic(degree, order, lat, lon))
            # Re(c Y_lm) carries |Re c|² at m = 0, |c|²/2 for m > 0 (split over ±m)
            want[degree] += (c.real**2 if order == 0 else abs(c) ** 2 / 2) / (4 * np.pi)
    power = sphere_power_spectrum(field, lat)
    np.testing.assert_allclose(power[: top + 1], want, rtol=1e-9)
    # Parseval against the grid's own area weights (cell areas: second-order quadrature;
    # 3e-5 here)
    mean_square = np.sum(field**2 * node_weights(lat, lon).reshape(h, w)) / (h * w)
    assert power.sum() == pytest.approx(mean_square, rel=1e-3)


def test_line_spectrum_finds_a_sinusoid_under_a_trend_and_keeps_parseval():
    k, cycles, spacing = 200, 9, 0.05
    x = np.arange(k)
    values = 4.0 + 0.03 * x + np.cos(2 * np.pi * cycles * x / k + 0.4)
    freq, power = line_spectrum(values, spacing)
    assert len(freq) == len(power) == k // 2 + 1
    assert freq[cycles] == pytest.approx(cycles / (k * spacing))
    assert np.argmax(power) == cycles and power[cycles] > 0.95 * power.sum()
    detrended = values - np.polyval(np.polyfit(x, values, 1), x)
    assert power.sum() == pytest.approx(np.mean(detrended**2), rel=1e-10)


def test_spectra_reject_bad_input():
    with pytest.raises(ValueError, match="field"):
        sphere_power_spectrum(np.zeros(10))
    with pytest.raises(ValueError, match="lmax"):
        sphere_power_spectrum(np.zeros((8, 16)), lmax=9)
    with pytest.raises(ValueError, match="latitudes"):
        sphere_power_spectrum(np.zeros((8, 16)), np.zeros(8))
    with pytest.raises(ValueError, match="values"):
        line_spectrum(np.zeros((3, 3)))


# ---------------------------------------------------------------- CRPS loss (jax)


def loss_inputs(seed=10, m=5, n=7, c=3):
    rng = np.random.default_rng(seed)
    members = rng.normal(size=(m, n, c)).astype(np.float32)
    target = rng.normal(size=(n, c)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, size=n).astype(np.float32)
    channel_weights = rng.uniform(0.5, 2.0, size=c).astype(np.float32)
    return members, target, weights, channel_weights


def numpy_loss(members, target, weights, channel_weights, kind, alpha=0.95):
    if kind == "fair":
        score = crps_ensemble(members, target, fair=True)
    else:
        score = almost_fair_crps(members, target, alpha)
    return np.sum(weights * (score @ channel_weights)) / np.sum(weights)


@pytest.mark.parametrize("kind", ["fair", "afcrps"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_crps_loss_equals_the_numpy_score(kind, jit):
    args = loss_inputs()
    fn = jax.jit(crps_loss, static_argnames=("kind", "alpha")) if jit else crps_loss
    got = fn(*map(jnp.asarray, args), kind=kind, alpha=0.95)
    assert got.shape == () and got.dtype == jnp.float32
    assert float(got) == pytest.approx(numpy_loss(*args, kind), rel=1e-5)


@pytest.mark.parametrize("kind", ["fair", "afcrps"])
def test_a_one_member_crps_loss_is_the_weighted_absolute_error(kind):
    members, target, weights, channel_weights = loss_inputs(m=1)
    want = np.sum(weights * (np.abs(members[0] - target) @ channel_weights)) / weights.sum()
    got = crps_loss(members, target, weights, channel_weights, kind=kind)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_masked_nodes_do_not_change_the_loss_or_poison_its_gradient():
    members, target, weights, channel_weights = loss_inputs()
    padded_members = np.concatenate([members, np.full((5, 2, 3), np.nan, np.float32)], axis=1)
    padded_target = np.concatenate([target, np.array([[np.inf] * 3, [1.0] * 3], np.float32)])
    padded_weights = np.concatenate([weights, np.zeros(2, np.float32)])
    loss = jax.jit(jax.value_and_grad(lambda x, *a: crps_loss(x, *a, kind="afcrps")))
    value, grad = loss(jnp.asarray(padded_members), padded_target, padded_weights, channel_weights)
    base, base_grad = loss(jnp.asarray(members), target, weights, channel_weights)
    assert float(value) == pytest.approx(float(base), rel=1e-6)
    np.testing.assert_allclose(grad[:, :7], base_grad, rtol=1e-6)
    np.testing.assert_array_equal(grad[:, 7:], 0.0)
    # a bool mask counts as 0/1 weights
    mask = np.arange(9) < 7
    value = crps_loss(padded_members, padded_target, mask, channel_weights, kind="fair")
    unweighted = numpy_loss(members, target, np.ones(7), channel_weights, "fair")
    assert float(value) == pytest.approx(unweighted, rel=1e-5)


@pytest.mark.parametrize("kind", ["fair", "afcrps"])
def test_crps_loss_gradient_matches_finite_differences(kind):
    members, target, weights, channel_weights = loss_inputs(seed=11, m=4, n=5, c=2)
    grad = jax.jit(jax.grad(lambda x: crps_loss(x, target, weights, channel_weights, kind=kind)))(
        jnp.asarray(members)
    )
    # The score is piecewise linear: central differences are exact unless a step
    # crosses a kink (two members, or a member and the target, within h).
    h = 1e-4
    values = np.concatenate([members.reshape(4, -1), target.reshape(1, -1)])
    gaps = np.abs(values[:, None] - values[None])[~np.eye(5, dtype=bool)]
    assert gaps.min() > 4 * h
    x64 = members.astype(np.float64)
    fd = np.zeros_like(x64)

    def score(x):
        return numpy_loss(x, target, weights, channel_weights, kind)

    for idx in np.ndindex(x64.shape):
        up, down = x64.copy(), x64.copy()
        up[idx] += h
        down[idx] -= h
        fd[idx] = (score(up) - score(down)) / (2 * h)
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-4, atol=1e-6)


def test_crps_loss_rejects_bad_arguments():
    members, target, weights, channel_weights = loss_inputs()
    with pytest.raises(ValueError, match="kind"):
        crps_loss(members, target, weights, channel_weights, kind="energy")
    with pytest.raises(ValueError, match="target"):
        crps_loss(members, target[:3], weights, channel_weights)
    with pytest.raises(ValueError, match="channel_weights"):
        crps_loss(members, target, weights, channel_weights[:2])
