"""The rotating shallow-water solver and its WeatherBench2-layout datasets.

Physics runs use T21 (32 x 64 Gaussian grid, 30-min steps) except the Galewsky jet,
which T21 resolves too coarsely (its 39°-wide jet spans ~7 grid rows): that runs at T42.
"""

import json
import math
import os

import jax
import numpy as np
import pytest

pytest.importorskip("dinosaur")
xr = pytest.importorskip("xarray")
pytest.importorskip("zarr")

from meshsim.solvers import shallow_water_model as swm  # noqa: E402
from meshsim.solvers.shallow_water import (  # noqa: E402
    VARIABLES,
    generate_shallow_water,
    output_grid,
    simulate_shallow_water,
)

A, OMEGA, G = swm.EARTH_RADIUS, swm.EARTH_ANGULAR_VELOCITY, swm.GRAVITY
# Williamson et al. (1992) test case 2: u0 = 2πa / 12 days, g h0 = 2.94e4 m²/s².
U0, GH0 = 2 * math.pi * A / (12 * 86400), 2.94e4
TC2_C = A * OMEGA * U0 + U0**2 / 2
TC2_MEAN_DEPTH = (GH0 - TC2_C / 3) / G  # global mean of sin² is 1/3
FIVE_DAYS = 21  # frames, 6 h apart, day 0 included
# Two half-day trajectories on a 17 x 32 grid over the cone mountain.
SMALL = dict(trajectories=2, days=0.5, resolution_deg=11.25, truncation=21, spinup_days=0.25)
SMALL["orography"] = "cone"


def tc2_fields(lon, lat, alpha=0.0):
    """Test case 2 wind (m/s) and free surface (m), flow axis tilted by alpha (steady
    only if the Coriolis axis is tilted too, so alpha ≠ 0 serves as a known field)."""
    u = U0 * (np.cos(lat) * np.cos(alpha) + np.cos(lon) * np.sin(lat) * np.sin(alpha))
    v = -U0 * np.sin(lon) * np.sin(alpha)
    mu = -np.cos(lon) * np.cos(lat) * np.sin(alpha) + np.sin(lat) * np.cos(alpha)
    return u, v, (GH0 - TC2_C * mu**2) / G


def l2_error(x, reference, lat_deg):
    """Williamson's normalised l2 error on an equiangular grid (cos-latitude weights)."""
    w = np.cos(np.radians(lat_deg))[:, None]
    return math.sqrt(np.sum(w * (x - reference) ** 2) / np.sum(w * reference**2))


@pytest.fixture(scope="module")
def t21():
    return swm.get_model(truncation=21)


@pytest.fixture(scope="module")
def small_dataset():
    return simulate_shallow_water(**SMALL, seed=3)


# ---------------------------------------------------------------------------- solver


def test_tc2_steady_geostrophic_flow_stays_steady():
    # Five days of the steady zonal flow: the height must stay at its analytic value.
    # Measured: l2 2.6e-4 at T21 (mostly the hyperdiffusion acting on the l = 2 height
    # mode: (6/462)² x 10 e-folding times ≈ 1.7e-3 of it), 2.1e-5 at T42.
    model = swm.get_model(truncation=21, mean_depth=TC2_MEAN_DEPTH)
    states = model.run(model.zonal_state(lambda lat: U0 * np.cos(lat)), outputs=FIVE_DAYS)
    lat, lon = output_grid(5.625)
    fields = model.to_latlon(states, lat, lon)
    lon2, lat2 = np.meshgrid(np.radians(lon), np.radians(lat))
    u, _, h = tc2_fields(lon2, lat2)
    assert l2_error(fields["geopotential"][0] / G, h, lat) < 1e-6  # balance solver
    assert l2_error(fields["geopotential"][-1] / G, h, lat) < 1e-3
    assert np.abs(fields["u"][-1] - u).max() < 0.1  # of 38.6 m/s
    assert np.abs(fields["v"][-1]).max() < 0.01


def test_output_evaluation_is_exact_including_the_pole_limits(t21):
    # Solid-body flow across the poles (test case 2, alpha = 90°): the wind at a pole
    # is one vector, so u and v there vary with the meridian as u0 (±cos λ, -sin λ).
    lon_g, lat_g = t21.gaussian_lonlat
    state = t21.nodal_state(*tc2_fields(lon_g, lat_g, math.pi / 2))
    lat, lon = output_grid(5.625)
    fields = t21.to_latlon(jax.tree.map(lambda x: x[None], state), lat, lon)  # one frame
    lon2, lat2 = np.meshgrid(np.radians(lon), np.radians(lat))
    u, v, h = tc2_fields(lon2, lat2, math.pi / 2)
    assert lat[0] == -90 and lat[-1] == 90
    np.testing.assert_allclose(fields["u"][0], u, atol=1e-3)  # float32 state
    np.testing.assert_allclose(fields["v"][0], v, atol=1e-3)
    np.testing.assert_allclose(fields["u"][0, -1], U0 * np.cos(np.radians(lon)), atol=1e-3)
    np.testing.assert_allclose(fields["u"][0, 0], -U0 * np.cos(np.radians(lon)), atol=1e-3)
    np.testing.assert_allclose(fields["geopotential"][0] / G, h, rtol=1e-5)


def test_mass_is_conserved_and_energy_lost_only_to_hyperdiffusion():
    # Five days of a random jet at T21. The global mean depth is the (0, 0) spectral
    # mode, which neither the tendencies nor the diffusion touch: mass drifts by float32
    # rounding only (measured ~2e-9). Energy: -5.6e-6 without diffusion (the scheme),
    # -8.9e-4 with the default 12-h ∇⁴ diffusion (-1.7e-4 at T42).
    params = swm.sample_jet_params(5)
    drifts = {}
    for hours in (swm.DIFFUSION_HOURS, 1e9):
        model = swm.get_model(truncation=21, diffusion_hours=hours)
        diag = model.diagnostics(model.run(model.initial_state(params), outputs=FIVE_DAYS))
        assert np.abs(diag["mass"] / diag["mass"][0] - 1).max() < 1e-7
        drifts[hours] = diag["energy"][-1] / diag["energy"][0] - 1
    assert abs(drifts[1e9]) < 5e-5
    assert -5e-3 < drifts[swm.DIFFUSION_HOURS] < -10 * abs(drifts[1e9])


def test_galewsky_jet_is_steady_unperturbed_and_unstable_perturbed():
    # Galewsky et al. (2004): the balanced jet alone stays steady; with the 120 m bump
    # it breaks into eddies around day 5. Measured at T42: max |v| 0.01 vs 25 m/s on
    # day 5, 9 m/s on day 4.
    model = swm.get_model(truncation=42)
    lat, lon = output_grid(5.625)
    steady = model.run(model.initial_state(swm.GALEWSKY._replace(bump_height=0.0)), outputs=25)
    steady = model.to_latlon(steady, lat, lon)
    assert np.abs(steady["v"]).max() < 0.2
    assert l2_error(steady["geopotential"][20], steady["geopotential"][0], lat) < 3e-3
    perturbed = model.to_latlon(model.run(model.initial_state(swm.GALEWSKY), outputs=25), lat, lon)
    v_max = np.abs(perturbed["v"]).max(axis=(1, 2))  # [frame]
    assert v_max[8] < 5  # day 2: still a jet
    assert v_max[20] > 15 and v_max[24] > 30  # days 5 and 6: rolled up


# ---------------------------------------------------------------------------- dataset


def test_dataset_layout(small_dataset):
    ds = small_dataset
    assert dict(ds.sizes) == {"time": 6, "level": 1, "latitude": 17, "longitude": 32}
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    lat, lon = ds["latitude"].values, ds["longitude"].values
    assert lat[0] == -90 and lat[-1] == 90 and np.all(np.diff(lat) == 11.25)
    assert lon[0] == 0 and lon[-1] < 360 and np.all(np.diff(lon) == 11.25)
    assert ds["level"].values.tolist() == [500] and ds["level"].attrs["units"] == "hPa"
    assert "nominal" in ds["level"].attrs["note"]
    for name in VARIABLES:
        assert ds[name].dims == ("time", "level", "latitude", "longitude")
        assert ds[name].dtype == np.float32 and np.isfinite(ds[name].values).all()
    assert ds["u_component_of_wind"].attrs["units"] == "m s**-1"
    assert ds["geopotential"].attrs["units"] == "m**2 s**-2"
    for name in ("geopotential_at_surface", "land_sea_mask"):
        assert ds[name].dims == ("latitude", "longitude") and ds[name].dtype == np.float32
    # Free surface ≈ g · 10 km; the mountain is at (270°E, 30°N) and is the only land.
    assert 8.5e4 < float(ds["geopotential"].min()) < float(ds["geopotential"].max()) < 1.1e5
    land = ds["land_sea_mask"].where(ds["land_sea_mask"] > 0, drop=True)
    # Within the cone's 20° great-circle radius of (270°E, 30°N).
    assert land.size > 0 and np.all(np.abs(land["longitude"].values - 270) < 25)
    assert np.all(np.abs(land["latitude"].values - 30) < 20)
    peak = ds["geopotential_at_surface"].sel(latitude=33.75, longitude=270.0)
    assert 1.0e4 < float(peak) < G * swm.MOUNTAIN_HEIGHT
    assert ds.attrs["truncation"] == "T21" and ds.attrs["orography"] == "cone"


def test_trajectories_share_one_time_axis_with_gaps(small_dataset):
    times = small_dataset["time"].values
    traj = small_dataset["trajectory"].values
    assert traj.dtype == np.int32 and traj.tolist() == [0, 0, 0, 1, 1, 1]
    steps = np.diff(times)
    six_hours = np.timedelta64(6, "h")
    assert (steps[[0, 1, 3, 4]] == six_hours).all()
    assert steps[2] == np.timedelta64(int((0.5 + 5.0) * 24), "h") - 2 * six_hours
    assert str(times[0]).startswith("2000-01-01T00")
    params = json.loads(small_dataset.attrs["trajectory_parameters"])
    assert len(params) == 2 and set(params[0]) == set(swm.JetParams._fields)


def test_reproducible_from_the_seed_and_trajectories_differ(small_dataset):
    again = simulate_shallow_water(**SMALL, seed=3)
    xr.testing.assert_identical(again, small_dataset)
    z = small_dataset["geopotential"].values
    assert np.abs(z[:3] - z[3:]).max() > 10.0  # two trajectories of one dataset
    other = simulate_shallow_water(**SMALL, seed=4)
    assert np.abs(other["geopotential"].values - z).max() > 10.0
    test_split = simulate_shallow_water(**SMALL, seed=3, split="test")
    assert np.abs(test_split["geopotential"].values - z).max() > 10.0


def test_zarr_round_trip_and_no_overwrite(tmp_path):
    path = generate_shallow_water(tmp_path, split="valid", seed=1, **SMALL)
    assert path == os.path.join(tmp_path, "valid.zarr")
    assert os.listdir(tmp_path) == ["valid.zarr"]  # no temporary left behind
    stored = xr.open_zarr(path, chunks=None)
    expected = simulate_shallow_water(split="valid", seed=1, **SMALL)
    xr.testing.assert_identical(stored.load(), expected)
    with pytest.raises(FileExistsError, match="valid.zarr"):
        generate_shallow_water(tmp_path, split="valid", seed=2, **SMALL)
    xr.testing.assert_identical(xr.open_zarr(path, chunks=None).load(), expected)


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(self, *args, **kwargs):
        os.makedirs(args[0])  # a half-written store
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", fail)
    with pytest.raises(OSError, match="disk full"):
        generate_shallow_water(tmp_path, **SMALL)
    assert os.listdir(tmp_path) == []
    with pytest.raises(OSError, match="disk full"):
        generate_shallow_water(tmp_path / "new" / "dir", **SMALL)
    assert os.listdir(tmp_path) == []  # nor the directories it made


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"trajectories": 0}, "trajectories"),
        ({"days": 0.1}, "days"),
        ({"days": -1.0}, "days"),
        ({"spinup_days": 0.3}, "spinup_days"),
        ({"resolution_deg": 7.0}, "resolution_deg"),
        ({"split": "a/b"}, "split"),
        ({"seed": -1}, "seed"),
        ({"truncation": 5}, "truncation"),
        ({"time_step_s": 1000.0}, "time_step_s"),
        ({"orography": "alps"}, "orography"),
        ({"params": [swm.GALEWSKY]}, "params"),  # two trajectories, one params
        ({"params": [swm.GALEWSKY._replace(half_width=0.0)] * 2}, "half_width"),
        ({"params": [swm.GALEWSKY._replace(latitude=80.0)] * 2}, "latitude"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    args = {**SMALL, **kwargs}
    with pytest.raises(ValueError, match=name):
        simulate_shallow_water(**args)
