"""The diurnal `2m_temperature` channel: column physics, advection, the generator option."""

import math

import numpy as np
import pytest

from meshsim.data.forcing import forcing_frames
from meshsim.solvers.surface_temperature import (
    TEMPERATURE_VARIABLE,
    ColumnParameters,
    equilibrium_temperature,
    integrate_temperature,
)

LAT = np.linspace(-90.0, 90.0, 13)  # 15° spacing, poles included
LON = np.arange(0.0, 360.0, 15.0)
START = np.datetime64("2000-03-20T00", "ns")


def _times(n, hours=6):
    return START + np.arange(n) * np.timedelta64(hours, "h")


def _calm(n):
    return np.zeros((n, LAT.size, LON.size)), np.zeros((n, LAT.size, LON.size))


def test_without_radiation_columns_relax_to_equilibrium_exponentially():
    params = ColumnParameters(heating_k_per_day=0.0, relaxation_days=1.0)
    n = 13  # 3 days
    t_eq = equilibrium_temperature(LAT, params)[:, None]
    initial = t_eq + 10.0 + np.zeros((LAT.size, LON.size))
    out = integrate_temperature(*_calm(n), _times(n), LAT, LON, initial=initial, params=params)
    elapsed_days = np.arange(n) * 0.25
    expected = t_eq[None] + 10.0 * np.exp(-elapsed_days)[:, None, None]
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-9)
    assert equilibrium_temperature([0.0], params)[0] == params.equator_k
    assert equilibrium_temperature([90.0], params)[0] == pytest.approx(params.pole_k)


def test_warmer_by_day_peaking_in_the_afternoon():
    params = ColumnParameters(advect=False)
    n = 4 * 5 + 1  # 5 days of 6-hourly outputs, the last at 00 UTC
    out = integrate_temperature(*_calm(n), _times(n), LAT, LON, params=params)
    equator = out[-1, LAT.size // 2]  # [W] at 00 UTC: local time = longitude / 15 h
    local = LON / 15.0
    # the warmest column is in the afternoon, the coldest around dawn
    assert 12.0 < local[np.argmax(equator)] < 21.0
    assert 3.0 <= local[np.argmin(equator)] <= 9.0
    swing = equator.max() - equator.min()
    assert 2.0 < swing < 8.0  # the docstring's ±2.4 K at the equator
    # the warm side is the side the sun has shone on: afternoon columns are warmer
    # than the mirror-image morning ones (local 6 h + x against 18 h - x)
    tisr = forcing_frames(_times(n)[-1:], LAT, LON)[0, :, 0].reshape(LAT.size, LON.size)
    day = tisr[LAT.size // 2] > 0
    assert np.all((local[day] >= 6.0) & (local[day] <= 18.0))
    for x in (1.0, 3.0, 5.0):
        assert equator[local == 18.0 - x][0] > equator[local == 6.0 + x][0]
    # radiation warms: every column is above its no-radiation equilibrium
    t_eq = equilibrium_temperature(LAT, params)[:, None]
    assert np.all(out[-1, 1:-1] > t_eq[1:-1])


def test_advection_carries_a_bump_with_solid_body_rotation():
    params = ColumnParameters(heating_k_per_day=0.0, relaxation_days=1e9, substeps=6)
    lat = np.linspace(-90.0, 90.0, 37)  # 5°
    lon = np.arange(0.0, 360.0, 5.0)
    n = 5  # one day
    speed = 40.0  # m/s at the equator
    u = np.broadcast_to(speed * np.cos(np.radians(lat))[None, :, None], (n, lat.size, lon.size))
    v = np.zeros_like(u)
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    bump = np.exp(-((lo - np.pi / 2) ** 2 + la**2) / (2 * np.radians(15.0) ** 2))
    initial = 280.0 + bump
    out = integrate_temperature(u, v, _times(n), lat, lon, initial=initial, params=params)
    shift = math.degrees(speed * 86400.0 / 6.37122e6)  # ≈ 31° east in a day
    row = out[-1, lat.size // 2]
    centre = np.sum(lon * (row - 280.0)) / np.sum(row - 280.0)
    assert centre == pytest.approx(90.0 + shift, abs=2.5)
    # bilinear interpolation only damps: no new extremes
    assert out.max() <= initial.max() + 1e-6 and out.min() >= initial.min() - 1e-6


def test_bad_inputs_raise_naming_the_field():
    with pytest.raises(ValueError, match="relaxation_days"):
        ColumnParameters(relaxation_days=0.0)
    with pytest.raises(ValueError, match="substeps"):
        ColumnParameters(substeps=0)
    u, v = _calm(3)
    with pytest.raises(ValueError, match=r"v: expected \[T, H, W\]"):
        integrate_temperature(u, v[:, :-1], _times(3), LAT, LON)
    with pytest.raises(ValueError, match="times: expected equally spaced"):
        integrate_temperature(u, v, _times(3)[[0, 1, 1]], LAT, LON)


def test_generator_option_writes_the_channel_and_leaves_the_flow_alone():
    pytest.importorskip("dinosaur")
    from meshsim.solvers.generate import generate_dataset
    from meshsim.solvers.shallow_water import simulate_shallow_water

    small = dict(trajectories=1, days=0.5, resolution_deg=11.25, truncation=21, spinup_days=0.25)
    plain = simulate_shallow_water(**small)
    ds = simulate_shallow_water(**small, diurnal=True)
    assert TEMPERATURE_VARIABLE not in plain and "diurnal" not in plain.attrs
    t2m = ds[TEMPERATURE_VARIABLE]
    assert t2m.dims == ("time", "latitude", "longitude") and t2m.dtype == np.float32
    assert t2m.attrs["units"] == "K" and np.all(np.isfinite(t2m.values))
    assert 230.0 < float(t2m.min()) and float(t2m.max()) < 320.0
    for name in plain.data_vars:  # the flow is the same with or without the channel
        np.testing.assert_array_equal(plain[name].values, ds[name].values)
    with pytest.raises(ValueError, match="only the shallow_water domain"):
        generate_dataset("flag", "unused", trajectories=1, steps=3, diurnal=True)
