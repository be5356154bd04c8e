"""Stretched grids: a fine regional grid set into a coarse global one (Nipen et al.).

Data (points, areas, frames), the generator's regional cut-out, graphs on arbitrary
points, interpolation, and a tiny end-to-end demo scored inside and outside the region.
"""

import json
import os

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from meshsim.data import stretched as S  # noqa: E402
from meshsim.data.forcing import forcing_frames, forcing_points  # noqa: E402
from meshsim.data.weather import WeatherDataset  # noqa: E402
from meshsim.evaluation.interpolate import interpolate_to_points  # noqa: E402
from meshsim.meshes.regional import Refinement  # noqa: E402
from meshsim.meshes.sphere import build_points_mesh, build_weather_mesh  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = (20.0, 60.0, 340.0, 40.0)  # crosses 0°E


def _experiment(name):
    """experiments/<name>.py, loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "experiments", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _store(path, lat, lon, times, seed, variables=("temperature",)):
    rng = np.random.default_rng(seed)
    data = {
        v: (("time", "latitude", "longitude"), rng.normal(size=(len(times), len(lat), len(lon))))
        for v in variables
    }
    data["land_sea_mask"] = (("latitude", "longitude"), rng.random((len(lat), len(lon))))
    ds = xr.Dataset(data, coords={"time": times, "latitude": lat, "longitude": lon})
    ds.astype(np.float32).to_zarr(path, zarr_format=2)
    return ds


@pytest.fixture
def pair(tmp_path):
    times = np.arange(
        np.datetime64("2020-01-01T00", "ns"), np.datetime64("2020-01-02T12", "ns"), 6 * 3600 * 10**9
    ).astype("datetime64[ns]")
    glat, glon = np.linspace(-90, 90, 13), np.arange(0, 360, 15.0)
    rlat = np.arange(20, 60.1, 5.0)
    rlon = np.concatenate([np.arange(340, 360, 5.0), np.arange(0, 40.1, 5.0)])
    order = np.argsort(rlon)
    g = _store(tmp_path / "train.zarr", glat, glon, times, 0)
    r = _store(tmp_path / "regional.zarr", rlat, rlon[order], times, 1)
    coarse = WeatherDataset(tmp_path / "train.zarr")
    fine = WeatherDataset(tmp_path / "regional.zarr", regional=True)
    return g, r, coarse, fine


def test_cell_areas_tile_the_sphere_and_the_box():
    lat, lon = np.linspace(-90, 90, 13), np.arange(0, 360, 15.0)
    np.testing.assert_allclose(S.cell_areas(lat, lon, to_poles=True).sum(), 4 * np.pi)
    rlat, rlon = np.arange(20, 60.1, 5.0), np.arange(0, 40.1, 5.0)
    box = (np.sin(np.radians(62.5)) - np.sin(np.radians(17.5))) * np.radians(45.0)
    np.testing.assert_allclose(S.cell_areas(rlat, rlon, to_poles=False).sum(), box)


def test_region_box_and_margin_across_greenwich():
    lon = np.concatenate([np.arange(0, 40.1, 5.0), np.arange(340, 360, 5.0)])
    assert S.region_box([20.0, 60.0], lon) == (20.0, 60.0, 340.0, 40.0)
    inside = S.in_box([30, 30, 30, 10], [350, 45, 200, 0], REGION)
    np.testing.assert_array_equal(inside, [True, False, False, False])
    np.testing.assert_array_equal(S.in_box([30, 17], [45, 0], REGION, margin=5.0), [True, True])


def test_stretched_dataset_joins_the_points(pair):
    g, r, coarse, fine = pair
    data = S.StretchedDataset(coarse, fine)
    lat, lon = data.point_latitudes, data.point_longitudes
    n_fine = fine.point_latitudes.size
    assert lat.size == int(data.keep.sum()) + n_fine and data.region_mask.sum() == n_fine
    # No global point is left inside the region; every global point outside is kept.
    global_inside = S.in_box(coarse.point_latitudes, coarse.point_longitudes, data.box)
    np.testing.assert_array_equal(data.keep, ~global_inside)
    assert global_inside.sum() == 3 * 4  # latitudes 30, 45, 60 × longitudes 345, 0, 15, 30
    # Frames: the kept global values, then the regional ones, time for time.
    frames = data.frames(2, 4)
    np.testing.assert_array_equal(frames[:, : data.keep.sum()], coarse.frames(2, 4)[:, data.keep])
    np.testing.assert_array_equal(frames[:, data.keep.sum() :], fine.frames(2, 4))
    traj = data[0]
    np.testing.assert_array_equal(np.asarray(traj["state"][1:3]), data.frames(1, 3))
    np.testing.assert_allclose(traj["forcing"], forcing_points(traj["time"], lat, lon))
    np.testing.assert_allclose(data.weights.mean(), 1.0, rtol=1e-6)
    # A fine cell weighs less than a coarse one at the same latitude (area, not count).
    k = int(np.flatnonzero((lat == 30) & data.region_mask)[0])
    j = int(np.flatnonzero((lat == 0) & ~data.region_mask)[0])
    assert data.weights[k] < data.weights[j] / 4
    stats = data.statistics()
    np.testing.assert_allclose(stats.mean, data.frames(0, 6).mean((0, 1)), rtol=1e-5)


def test_stretched_dataset_refuses_mismatched_splits(pair, tmp_path):
    g, r, coarse, fine = pair
    shifted = r.assign_coords(time=r["time"] + np.timedelta64(6, "h"))
    shifted.to_zarr(tmp_path / "late.zarr", zarr_format=2)
    with pytest.raises(ValueError, match="time: expected the times of the global split"):
        S.StretchedDataset(coarse, WeatherDataset(tmp_path / "late.zarr", regional=True))
    renamed = r.rename({"temperature": "t2m"})
    renamed.to_zarr(tmp_path / "other.zarr", zarr_format=2)
    with pytest.raises(ValueError, match="channels: expected those of the global split"):
        S.StretchedDataset(coarse, WeatherDataset(tmp_path / "other.zarr", regional=True))
    with pytest.raises(ValueError, match="region_margin"):
        S.StretchedDataset(coarse, fine, margin=-1.0)


def test_forcing_points_equal_the_grid_forcings():
    times = np.array(["2020-06-01T06", "2020-12-01T18"], "datetime64[ns]")
    lat, lon = np.linspace(-90, 90, 7), np.arange(0, 360, 30.0)
    grid = forcing_frames(times, lat, lon)
    points = forcing_points(times, np.repeat(lat, lon.size), np.tile(lon, lat.size))
    np.testing.assert_array_equal(grid, points)


def test_points_mesh_of_a_grid_is_the_grid_mesh():
    lat, lon = np.linspace(-90, 90, 9), np.arange(0, 360, 22.5)
    grid = build_weather_mesh(lat, lon, splits=2)
    points = build_points_mesh(np.repeat(lat, lon.size), np.tile(lon, lat.size), splits=2)
    assert points.scattered and not grid.scattered
    for name in ("grid2mesh", "mesh2grid", "mesh_edges"):
        for a, b in zip(getattr(grid, name), getattr(points, name)):
            np.testing.assert_array_equal(a, b)
    ga, pa = grid.graph(), points.graph()
    for name in ga.edge_sets:
        np.testing.assert_array_equal(ga.edge_sets[name].features, pa.edge_sets[name].features)
    with pytest.raises(ValueError, match="expected two \\[N\\] arrays"):
        build_points_mesh([0.0, 1.0], [0.0])


def test_refined_points_mesh_links_every_point():
    rng = np.random.default_rng(0)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 400)))
    lon = rng.uniform(0, 360, 400)
    fine_lat, fine_lon = np.meshgrid(np.arange(25, 56, 2.5), np.arange(0, 31, 2.5), indexing="ij")
    lat = np.concatenate([lat, fine_lat.ravel()])
    lon = np.concatenate([lon, fine_lon.ravel()])
    mesh = build_points_mesh(
        lat, lon, splits=2, refinement=Refinement.box(20, 60, 350, 40, extra_splits=2)
    )
    assert np.unique(mesh.grid2mesh[0]).size == lat.size  # every point sends an edge
    assert np.unique(mesh.mesh2grid[1]).size == lat.size  # and receives three
    assert mesh.mesh.num_vertices > build_points_mesh(lat, lon, splits=2).mesh.num_vertices


def test_bilinear_interpolation_is_exact_for_bilinear_fields():
    lat, lon = np.linspace(-80, 80, 9), np.arange(0, 360, 30.0)
    field = np.add.outer(2 * lat, np.zeros_like(lon)).reshape(-1, 1)  # linear in latitude
    pl, po = np.array([-75.0, 3.3, 79.9]), np.array([355.0, 12.0, 181.0])
    np.testing.assert_allclose(interpolate_to_points(field, lat, lon, pl, po)[:, 0], 2 * pl)
    # Periodic in longitude: halfway between 330° and 0° (= 360°).
    ring = np.tile(np.cos(np.radians(lon)), lat.size).reshape(-1, 1)
    got = interpolate_to_points(ring, lat, lon, np.array([0.0]), np.array([345.0]))
    np.testing.assert_allclose(got[0, 0], (np.cos(np.radians(330)) + 1) / 2)


def test_generator_cut_out_matches_the_global_store(tmp_path):
    pytest.importorskip("dinosaur")
    from meshsim.solvers.shallow_water import generate_shallow_water

    generate_shallow_water(
        tmp_path,
        trajectories=1,
        days=0.5,
        resolution_deg=11.25,
        region=REGION,
        region_resolution_deg=5.625,
        spinup_days=0.0,
    )
    g = xr.open_zarr(tmp_path / "train.zarr")
    r = xr.open_zarr(tmp_path / "regional" / "train.zarr")
    assert json.loads(r.attrs["region"]) == list(REGION)
    lat = r["latitude"].values
    assert lat.min() >= 20 and lat.max() <= 60 and r.sizes["longitude"] == 11  # 343.125..39.375
    # Shared points hold the same values: one simulation evaluated on two grids.
    shared = g.sel(latitude=22.5, longitude=[0.0, 11.25, 348.75])
    np.testing.assert_allclose(
        r["geopotential"].sel(latitude=22.5, longitude=[0.0, 11.25, 348.75]).values,
        shared["geopotential"].values,
        rtol=1e-6,
    )
    with pytest.raises(FileExistsError):
        generate_shallow_water(tmp_path, trajectories=1, days=0.5, region=REGION)


def test_stretched_demo_scores_inside_and_outside(tmp_path):
    pytest.importorskip("dinosaur")
    from meshsim.cli import main

    workdir = tmp_path / "demo"
    preset = os.path.join(ROOT, "experiments", "weather_stretched.py")
    code = main(["demo", "--config", preset, "--workdir", str(workdir), "--quick"])
    assert code in (0, 1)  # the quick run is too short for the persistence gate
    metrics = json.loads((workdir / "metrics.json").read_text())
    for part in ("inside", "outside"):
        rmse = metrics["regions"][part]["rmse"]["model"]
        assert all(np.isfinite(v).all() for v in rmse.values())
    report = (workdir / "report.md").read_text()
    assert "inside the region" in report and "outside the region" in report
    assert (workdir / "region.png").stat().st_size > 1000 and (workdir / "maps.png").exists()
    assert (workdir / "data" / "regional" / "valid.zarr").exists()
    # The comparison with a uniform coarse model (experiments/stretched_grid.py), on the
    # demo's data: both scored at the same points, inside and outside the region.
    result = _experiment("stretched_grid").compare(str(workdir), quick=True)
    assert result["forecasts"] >= 1 and {r["lead_h"] for r in result["table"]} >= {24}
    for row in result["table"]:
        for key in ("inside_stretched", "inside_uniform", "outside_stretched", "outside_uniform"):
            assert np.isfinite(row[key]) and row[key] > 0, (row, key)
    assert "| channel | lead (h) |" in (workdir / "stretched_grid.md").read_text()
    # The same data as a limited-area model: outside the region the host's truth.
    from meshsim.runs.demo import quick_overrides

    sets = [f"--set={o}" for o in quick_overrides(preset)]
    sets += [f"--set=data.path={workdir / 'data'}", "--set=task.options.limited_area=true"]
    sets += ["--set=train.steps=2", "--set=train.checkpoint_every=2"]
    lam = str(tmp_path / "lam")
    assert main(["train", "--config", preset, "--workdir", lam, *sets]) == 0
    assert main(["evaluate", "--workdir", lam, "--steps", "2"]) == 0
    regions = json.loads((tmp_path / "lam" / "metrics.json").read_text())["regions"]
    for channel, values in regions["outside"]["rmse"]["model"].items():
        assert values == [0.0, 0.0], channel
        assert all(v > 0 for v in regions["inside"]["rmse"]["model"][channel])


def test_limited_area_task_takes_the_boundary_from_the_host(pair):
    from meshsim.tasks.weather import NUM_FORCINGS, WeatherTask

    _, _, coarse, fine = pair
    data = S.StretchedDataset(coarse, fine)
    traj = data[0]
    task = WeatherTask(output_size=1, num_static=1, points=True, limited_area=True)
    frames = task.prescribed_frames(traj, 1, 2)  # [2, N, 2F + C]
    assert frames.shape == (2, data.weights.size, 2 * NUM_FORCINGS + 1)
    np.testing.assert_array_equal(frames[1, :, 2 * NUM_FORCINGS :], traj["state"][3])
    fields = {
        **task.static_fields(traj),
        **task.input_fields(traj, 1),
    }
    assert fields["forcing"].shape[-1] == 2 * NUM_FORCINGS
    predicted = np.full_like(fields["state"], 1e3)
    out = task.advance(fields, predicted, frames[0])
    inside = data.region_mask
    np.testing.assert_array_equal(np.asarray(out["state"])[inside], 1e3)
    np.testing.assert_array_equal(np.asarray(out["state"])[~inside], traj["state"][2][~inside])
    weights = np.asarray(task.loss_weights(fields, np.ones(inside.size, bool)))
    assert np.all(weights[~inside] == 0) and np.all(weights[inside] > 0)
    with pytest.raises(ValueError, match="limited_area: expected a stretched grid"):
        WeatherTask(output_size=1, limited_area=True)


def test_region_loss_fraction_shares_the_loss_weight(pair):
    """`task.options.region_loss_fraction`: the regional points carry that share of the
    loss weight, each part keeping its area proportions, the sum kept."""
    from meshsim.tasks.weather import WeatherTask

    _, _, coarse, fine = pair
    data = S.StretchedDataset(coarse, fine)
    traj = data[0]
    inside = data.region_mask
    area = WeatherTask(output_size=1, num_static=1, points=True).static_fields(traj)
    task = WeatherTask(output_size=1, num_static=1, points=True, region_loss_fraction=0.5)
    fields = {**task.static_fields(traj), **task.input_fields(traj, 1)}
    w = np.asarray(task.loss_weights(fields, np.ones(inside.size, bool)), np.float64)
    a = np.asarray(area["area_weight"], np.float64)
    np.testing.assert_allclose(w.sum(), a.sum(), rtol=1e-6)
    np.testing.assert_allclose(w[inside].sum() / w.sum(), 0.5, rtol=1e-6)
    assert a[inside].sum() / a.sum() < 0.5  # the region's area share is smaller
    for part in (inside, ~inside):  # proportions within each part are the area's
        np.testing.assert_allclose(w[part] / w[part].sum(), a[part] / a[part].sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="region_loss_fraction: expected a stretched grid"):
        WeatherTask(output_size=1, region_loss_fraction=0.5)
    with pytest.raises(ValueError, match=r"region_loss_fraction: expected in \[0, 1\)"):
        WeatherTask(output_size=1, points=True, region_loss_fraction=1.0)
    no_region = {k: v for k, v in traj.items() if k != "region_mask"}  # a plain point set
    with pytest.raises(ValueError, match="point set has no regional points"):
        task.static_fields(no_region)
    with pytest.raises(ValueError, match="region_mask: expected regional and other points"):
        S.region_weighted(a, np.ones(inside.size, bool), 0.5)


def test_uniform_model_is_the_stretched_preset_without_its_region():
    """experiments/stretched_grid.py compares like with like: the uniform model is the
    stretched preset (network, schedule, global grid) with the region taken out."""
    from meshsim.config import apply_overrides, load_config

    preset = _experiment("weather_stretched")
    stretched = apply_overrides(preset.get_config(), ["task.options.limited_area=true"])
    uniform = preset.uniform_config(stretched)
    assert stretched.data.regional_path == "regional" and uniform.data.regional_path == ""
    assert "region" in stretched.task.options
    assert stretched.task.options["region_loss_fraction"] == preset.REGION_LOSS_FRACTION > 0
    with pytest.raises(ValueError, match=r"region_loss_fraction: expected a float in \[0, 1\)"):
        apply_overrides(preset.get_config(), ["task.options.region_loss_fraction=1"])
    # the task's options back to the base preset's (no region, no limited area)
    base = load_config(os.path.join(ROOT, "experiments", "weather_shallow_water.py"))
    assert uniform.task.options == base.task.options != stretched.task.options
    assert uniform.model == stretched.model and uniform.train == stretched.train
    assert uniform.data.path == stretched.data.path
    # a 15° global grid around a 3° regional one (the generator's grid is 5.625°)
    assert 5.625 / stretched.data.generate_mesh_resolution == 15.0
    assert stretched.data.generate_region_resolution == 5.0
