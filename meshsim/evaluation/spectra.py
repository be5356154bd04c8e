"""Energy spectra: spherical-harmonic power on a lat-lon grid, wavenumber power along a line.

Blurry forecasts lose power at small scales; these spectra show it (issue 25).

`sphere_power_spectrum` is a true spherical-harmonic transform, written here: an FFT
along each latitude row gives the zonal coefficients F_m(φ_j); a Legendre transform
with orthonormal associated Legendre functions P̄_l^m (the standard three-term
recurrence in l) and latitude quadrature weights gives
a_lm = 2π Σ_j w_j F_m(φ_j) P̄_l^m(sin φ_j). The weights are the interpolatory
quadrature of the grid's own latitudes (exact for polynomials in sin φ of degree
H − 1: Fejér's first rule on a cell-centred equiangular grid, Clenshaw–Curtis on one
with the poles), so a field band-limited to l ≤ (H − 1)/2 is transformed exactly.
Cost: O(L² H) for the Legendre part, L = lmax + 1.

`line_spectrum` is the one-sided FFT power of values sampled along a probe line
(meshes have no global harmonic basis), with the mean and linear trend removed first
so that a non-periodic line does not leak a ramp into every wavenumber.
"""

from __future__ import annotations

import numpy as np


def _quadrature_weights(mu: np.ndarray) -> np.ndarray:
    """[H] weights w with Σ_j w_j p(μ_j) = ∫_{-1}^{1} p(μ) dμ for every polynomial p of
    degree < H (solved against the Legendre basis, which keeps the system well posed on
    latitude grids)."""
    h = len(mu)
    basis = np.polynomial.legendre.legvander(mu, h - 1).T  # [H degrees, H nodes]
    rhs = np.zeros(h)
    rhs[0] = 2.0  # ∫ P_0 = 2, ∫ P_k = 0 for k ≥ 1
    return np.linalg.solve(basis, rhs)


def sphere_power_spectrum(field, latitudes=None, *, lmax: int | None = None) -> np.ndarray:
    """[lmax + 1] power per total wavenumber l of a field on an equiangular lat-lon grid.

    power[l] = Σ_{m=−l..l} |a_lm|² / (4π) with a_lm the coefficients on orthonormal
    spherical harmonics, so Σ_l power[l] is the area mean of field² for a field
    band-limited to lmax (Parseval).

    Args:
      field: [H, W] values, rows at `latitudes`, W equally spaced longitudes over the
        full circle (any start).
      latitudes: [H] degrees, distinct, any order; None: the cell-centred equiangular
        grid −90 + (j + ½)·180/H (ascending).
      lmax: highest degree; None: min((H − 1) // 2, (W − 1) // 2), the largest for
        which a band-limited field is transformed exactly.

    Returns:
      [lmax + 1] float64.

    Raises:
      ValueError: a field that is not 2-D or not finite, latitudes of the wrong shape,
        outside [−90, 90] or repeated, or `lmax` beyond what the grid resolves.
    """
    field = np.asarray(field, np.float64)
    if field.ndim != 2 or min(field.shape) < 2:
        raise ValueError(f"field: expected [H ≥ 2, W ≥ 2], got shape {field.shape}")
    if not np.all(np.isfinite(field)):
        raise ValueError("field: expected finite values, got NaN or inf")
    h, w = field.shape
    if latitudes is None:
        latitudes = -90.0 + (np.arange(h) + 0.5) * 180.0 / h
    lat = np.asarray(latitudes, np.float64)
    if lat.shape != (h,):
        raise ValueError(f"latitudes: expected [{h}], got shape {lat.shape}")
    if np.any(np.abs(lat) > 90.0) or len(np.unique(lat)) != h:
        raise ValueError("latitudes: expected distinct values in [−90, 90] degrees")
    limit = min((h - 1) // 2, (w - 1) // 2)
    lmax = limit if lmax is None else int(lmax)
    if not 0 <= lmax <= limit:
        raise ValueError(f"lmax: expected 0..{limit} for a {h}×{w} grid, got {lmax}")

    mu = np.sin(np.deg2rad(lat))  # [H]
    cos_lat = np.sqrt(np.clip(1.0 - mu * mu, 0.0, None))
    wq = _quadrature_weights(mu)  # [H]
    zonal = np.fft.rfft(field, axis=1)[:, : lmax + 1] / w  # [H, lmax + 1] F_m(φ_j)
    zonal = zonal.T * (2.0 * np.pi * wq)  # [M, H] weighted for the Legendre sums

    m = np.arange(lmax + 1)
    power = np.zeros(lmax + 1)
    # P̄_l^m rows m = 0..lmax for the current and previous two degrees: [lmax + 1, H].
    prev2 = np.zeros((lmax + 1, h))
    prev1 = np.zeros((lmax + 1, h))
    diag = np.full(h, 1.0 / np.sqrt(4.0 * np.pi))  # P̄_m^m, starting at m = 0
    for degree in range(lmax + 1):
        cur = np.zeros((lmax + 1, h))
        if degree >= 1:
            # P̄_m^m = −√((2m + 1)/(2m)) cos φ P̄_{m−1}^{m−1}
            diag = -np.sqrt((2.0 * degree + 1.0) / (2.0 * degree)) * cos_lat * diag
            # P̄_{m+1}^m = √(2m + 3) μ P̄_m^m with m = degree − 1
            cur[degree - 1] = np.sqrt(2.0 * degree + 1.0) * mu * prev1[degree - 1]
        cur[degree] = diag
        if degree >= 2:
            k = m[: degree - 1]  # orders m ≤ l − 2: the three-term recurrence in l
            a = np.sqrt((4.0 * degree**2 - 1.0) / (degree**2 - k**2))
            b = np.sqrt(((degree - 1.0) ** 2 - k**2) / (4.0 * (degree - 1.0) ** 2 - 1.0))
            cur[: degree - 1] = a[:, None] * (
                mu * prev1[: degree - 1] - b[:, None] * prev2[: degree - 1]
            )
        coeffs = np.sum(zonal[: degree + 1] * cur[: degree + 1], axis=1)  # a_lm, m = 0..l
        sq = np.abs(coeffs) ** 2
        power[degree] = (sq[0] + 2.0 * np.sum(sq[1:])) / (4.0 * np.pi)
        prev2, prev1 = prev1, cur
    return power


def line_spectrum(values, spacing: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Wavenumber power of values along a probe line, mean and linear trend removed.

    Args:
      values: [K ≥ 2] samples at equal `spacing` along the line.
      spacing: distance between samples (> 0).

    Returns:
      (wavenumbers [K // 2 + 1] in cycles per unit length, power [K // 2 + 1]) with
      Σ power = the mean square of the detrended values (one-sided, Parseval).

    Raises:
      ValueError: values not 1-D with at least 2 finite entries, or `spacing` ≤ 0.
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"values: expected [K ≥ 2], got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values: expected finite values, got NaN or inf")
    if not float(spacing) > 0:
        raise ValueError(f"spacing: expected > 0, got {spacing!r}")
    k = len(values)
    x = np.arange(k, dtype=np.float64)
    design = np.stack([np.ones(k), x - x.mean()], axis=1)  # [K, 2]
    trend = design @ np.linalg.lstsq(design, values, rcond=None)[0]
    spectrum = np.abs(np.fft.rfft(values - trend)) ** 2 / k**2  # [K // 2 + 1]
    spectrum[1 : (k + 1) // 2] *= 2.0  # the negative frequencies' share (not DC, Nyquist)
    return np.fft.rfftfreq(k, d=float(spacing)), spectrum


def grid_spectra(fields, latitudes, width: int, *, lmax: int | None = None) -> np.ndarray:
    """[..., C, lmax + 1] `sphere_power_spectrum` of every channel of lat-lon fields.

    Args:
      fields: [..., H·W, C] values on a grid of H latitudes (rows, latitude-major) by
        `width` equally spaced longitudes, as meshsim's weather grids hold them.
      latitudes: [H] degrees.
      width: W longitudes.
      lmax: as `sphere_power_spectrum` (None: the largest the grid resolves).

    Raises:
      ValueError: a node count that is not H·W, or what `sphere_power_spectrum` raises.
    """
    fields = np.asarray(fields, np.float64)
    h = len(np.asarray(latitudes))
    if fields.ndim < 2 or fields.shape[-2] != h * int(width):
        raise ValueError(
            f"fields: expected [..., {h}·{width} = {h * int(width)} nodes, C], got shape "
            f"{fields.shape}"
        )
    lead = fields.shape[:-2]
    grids = fields.reshape(-1, h, int(width), fields.shape[-1])  # [F, H, W, C]
    out = [
        [sphere_power_spectrum(g[..., c], latitudes, lmax=lmax) for c in range(g.shape[-1])]
        for g in grids
    ]
    return np.asarray(out).reshape(*lead, fields.shape[-1], -1)


def small_scale_ratio(power, reference) -> np.ndarray:
    """[...] the power of `power` [..., L] at the upper half of the wavenumbers
    (l > lmax / 2) over `reference`'s there: 1 keeps the truth's small scales, below 1
    blurs them."""
    power, reference = np.asarray(power, np.float64), np.asarray(reference, np.float64)
    upper = slice(power.shape[-1] // 2 + 1, None)
    ref = reference[..., upper].sum(-1)
    return power[..., upper].sum(-1) / np.where(ref > 0, ref, 1.0)
