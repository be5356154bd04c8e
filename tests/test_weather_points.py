"""Weather data on an unstructured point set (one horizontal dim with latitude and
longitude coordinates along it): reading, area weights, and a tiny training run."""

import json
import os

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from meshsim.cli import main  # noqa: E402
from meshsim.data.weather_points import PointsDataset, voronoi_weights  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fibonacci_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """[n] latitudes, longitudes (deg) of a Fibonacci sphere: near-uniform points."""
    k = np.arange(n) + 0.5
    lat = np.degrees(np.arcsin(1 - 2 * k / n))
    lon = (k * 180 * (3 - np.sqrt(5))) % 360
    return lat, lon


def points_store(path, n=300, days=3, seed=0, area=False):
    rng = np.random.default_rng(seed)
    lat, lon = fibonacci_points(n)
    times = np.arange(
        np.datetime64("2020-01-01", "ns"),
        np.datetime64("2020-01-01", "ns") + np.timedelta64(days, "D"),
        np.timedelta64(6, "h"),
    )
    t = np.arange(times.size)[:, None]
    wave = np.cos(np.radians(lon)[None] - 0.4 * t) * np.cos(np.radians(lat))[None]  # [T, N]
    data = {
        "2m_temperature": (("time", "values"), (280 + 5 * wave).astype(np.float32)),
        "geopotential": (
            ("time", "values", "level"),
            np.stack([5e4 + 300 * wave, 1.4e4 + 100 * wave], -1).astype(np.float32)
            + rng.normal(size=(times.size, n, 2)).astype(np.float32),
        ),
        "land_sea_mask": (("values",), (rng.random(n) > 0.5).astype(np.float32)),
    }
    if area:
        data["cell_area"] = (("values",), np.full(n, 4 * np.pi / n))
    ds = xr.Dataset(
        data,
        coords={
            "time": times,
            "level": [500, 850],
            "latitude": ("values", lat),
            "longitude": ("values", lon),
        },
    )
    ds.to_zarr(path, zarr_format=2)
    return ds


def test_a_point_set_reads_with_its_own_area_weights(tmp_path):
    ds = points_store(tmp_path / "train.zarr")
    data = PointsDataset(tmp_path / "train.zarr")
    assert data.meta["points"] and data.meta["channels"] == [
        "2m_temperature",
        "geopotential/500",
        "geopotential/850",
    ]
    frames = data.frames(2, 4)  # [2, N, 3], whatever the order of the dims
    np.testing.assert_array_equal(frames[:, :, 2], ds["geopotential"].sel(level=850).values[2:4])
    np.testing.assert_array_equal(np.asarray(data[0]["state"][3]), data.frames(3, 4)[0])
    # Voronoi cells of near-uniform points: equal areas to a few percent, mean 1.
    np.testing.assert_allclose(data.weights.mean(), 1.0, rtol=1e-6)
    assert 0.9 < data.weights.min() and data.weights.max() < 1.1
    assert data.static_names == ("land_sea_mask",)
    # Points crowded into one hemisphere: the sparse ones weigh more.
    lat = np.concatenate([np.full(50, 60.0), np.full(5, -60.0)])
    lon = np.concatenate([np.linspace(0, 350, 50), np.linspace(0, 288, 5)])
    w = voronoi_weights(lat, lon)
    assert w[50:].min() > 5 * w[:50].max()


def test_a_store_area_variable_is_the_weight_not_an_input(tmp_path):
    points_store(tmp_path / "train.zarr", area=True)
    data = PointsDataset(tmp_path / "train.zarr")
    np.testing.assert_allclose(data.weights, 1.0)
    assert "cell_area" not in data.static_names


def test_point_set_errors(tmp_path):
    ds = points_store(tmp_path / "a.zarr")
    ds["odd"] = (("time",), np.zeros(ds.sizes["time"]))
    ds.to_zarr(tmp_path / "odd.zarr", zarr_format=2)
    with pytest.raises(ValueError, match=r"'odd' has dims \('time',\)"):
        PointsDataset(tmp_path / "odd.zarr")
    with pytest.raises(ValueError, match="variables: 'nope' is not one of"):
        PointsDataset(tmp_path / "a.zarr", variables=["nope"])


def test_a_point_set_trains_evaluates_and_inspects(tmp_path, capsys):
    data = tmp_path / "pts"
    points_store(data / "train.zarr", seed=0)
    points_store(data / "valid.zarr", seed=1)
    preset = os.path.join(ROOT, "experiments", "weather_shallow_water.py")
    sets = [
        f"data.path={data}",
        "data.batch_size=1",
        "task.options.mesh_splits=1",
        "model.latent_size=8",
        "model.num_message_passing_steps=1",
        "train.steps=2",
        "train.unroll_steps=1",
        "train.checkpoint_every=2",
    ]
    run = str(tmp_path / "run")
    argv = ["train", "--config", preset, "--workdir", run, *[f"--set={s}" for s in sets]]
    assert main(argv) == 0
    assert main(["evaluate", "--workdir", run, "--steps", "2"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(np.isfinite(v).all() for v in metrics["rmse"]["model"].values())
    capsys.readouterr()
    assert (
        main(
            [
                "forecast",
                "--workdir",
                run,
                "--init-times",
                "2020-01-01T06",
                "--steps",
                "1",
                "--out",
                str(tmp_path / "f.zarr"),
            ]
        )
        == 1
    )
    assert "point set" in capsys.readouterr().err
    assert main(["inspect", str(data)]) == 0
    assert "300 points along 'values'" in capsys.readouterr().out
