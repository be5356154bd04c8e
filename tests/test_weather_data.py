"""WeatherBench2-layout data: lazy reading, channels, segments, forcings, statistics, scores."""

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from meshsim.data import weather as W  # noqa: E402
from meshsim.evaluation.forecast import (  # noqa: E402
    anomaly_correlation,
    average_scores,
    forecast_dataset,
    forecast_scores,
    weighted_rmse,
    write_zarr,
)

LAT = np.linspace(-90, 90, 5)
LON = np.arange(0, 360, 45.0)


def synthetic_wb2(times=None, descending=False, seed=0):
    """A tiny WB2-layout dataset: a 3-D variable on 2 levels, a 2-D one, a static field."""
    rng = np.random.default_rng(seed)
    if times is None:
        first = np.arange(
            np.datetime64("2020-01-01T00"), np.datetime64("2020-01-03T00"), np.timedelta64(6, "h")
        )
        second = np.arange(
            np.datetime64("2020-02-01T00"), np.datetime64("2020-02-02T06"), np.timedelta64(6, "h")
        )
        times = np.concatenate([first, second]).astype("datetime64[ns]")
    t, h, w = len(times), len(LAT), len(LON)
    temperature = rng.normal(size=(t, 2, h, w)).astype(np.float32) + 250
    t2m = rng.normal(size=(t, h, w)).astype(np.float32) + 280
    lat = LAT[::-1] if descending else LAT
    if descending:
        temperature, t2m = temperature[:, :, ::-1], t2m[:, ::-1]
    return xr.Dataset(
        {
            "temperature": (("time", "level", "latitude", "longitude"), temperature),
            "2m_temperature": (("time", "latitude", "longitude"), t2m),
            "land_sea_mask": (("latitude", "longitude"), (rng.random((h, w)) > 0.5) * 1.0),
        },
        coords={"time": times, "level": [500, 850], "latitude": lat, "longitude": LON},
    )


@pytest.fixture
def store(tmp_path):
    ds = synthetic_wb2()
    path = tmp_path / "train.zarr"
    ds.to_zarr(path, zarr_format=2)
    return ds, path


def test_channels_stack_variables_times_levels_latitude_major(store):
    ds, path = store
    wd = W.WeatherDataset(path)
    assert wd.meta["channels"] == ["2m_temperature", "temperature/500", "temperature/850"]
    frames = W.read_frames(wd.ds, wd.channels, [3])
    assert frames.shape == (1, 5 * 8, 3) and frames.dtype == np.float32
    i, j = 2, 5  # node i·W + j is (lat i, lon j)
    np.testing.assert_array_equal(frames[0, i * 8 + j, 2], ds["temperature"].values[3, 1, i, j])
    np.testing.assert_array_equal(frames[0, i * 8 + j, 0], ds["2m_temperature"].values[3, i, j])
    only = W.WeatherDataset(path, variables=["2m_temperature"])
    assert only.meta["channels"] == ["2m_temperature"]
    with pytest.raises(ValueError, match="variables: 'nope' is not one of"):
        W.WeatherDataset(path, variables=["nope"])


def test_descending_latitudes_are_flipped(tmp_path):
    ds = synthetic_wb2(descending=True)
    ds.to_zarr(tmp_path / "d.zarr", zarr_format=2)
    wd = W.WeatherDataset(tmp_path / "d.zarr")
    np.testing.assert_array_equal(wd.latitudes, LAT)
    ref = synthetic_wb2()
    frame = W.read_frames(wd.ds, wd.channels, [0])[0]
    np.testing.assert_array_equal(frame[:, 0], ref["2m_temperature"].values[0].reshape(-1))


def test_segments_are_runs_of_equal_steps_and_frames_are_lazy(store):
    _, path = store
    wd = W.WeatherDataset(path)
    assert wd.segments == [(0, 8), (8, 13)] and len(wd) == 2
    assert wd.meta["time_step_hours"] == 6.0
    traj = wd[1]
    assert traj["state"].shape == (5, 40, 3) and traj["forcing"].shape == (5, 40, 5)
    np.testing.assert_array_equal(traj["state"][2], W.read_frames(wd.ds, wd.channels, [10])[0])
    np.testing.assert_array_equal(np.asarray(traj["state"])[1:3], traj["state"][1:3])
    assert traj["static"].shape == (40, 1)
    with pytest.raises(IndexError):
        traj["state"][5]


def test_time_segments_validation():
    with pytest.raises(ValueError, match="at least 2 times"):
        W.time_segments(np.array(["2020-01-01"], "datetime64[ns]"))
    t = np.array(["2020-01-02", "2020-01-01"], "datetime64[ns]")
    with pytest.raises(ValueError, match="strictly increasing"):
        W.time_segments(t)


def test_open_weather_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such zarr store"):
        W.open_weather(tmp_path / "missing.zarr")
    bad = synthetic_wb2().rename({"latitude": "lat"})
    bad.to_zarr(tmp_path / "bad.zarr", zarr_format=2)
    with pytest.raises(ValueError, match="expected dims"):
        W.open_weather(tmp_path / "bad.zarr")


def test_netcdf_reads_like_zarr(tmp_path):
    ds = synthetic_wb2()
    ds.to_netcdf(tmp_path / "valid.nc")
    wd = W.open_weather_split(tmp_path, "valid")
    np.testing.assert_allclose(
        np.asarray(wd[0]["state"])[:, :, 0],
        ds["2m_temperature"].values[:8].reshape(8, -1),
    )
    assert W.is_weather_directory(tmp_path)
    with pytest.raises(FileNotFoundError, match="no train.zarr or train.nc"):
        W.open_weather_split(tmp_path, "train")


def test_statistics_match_numpy_and_round_trip(store, tmp_path):
    ds, path = store
    wd = W.WeatherDataset(path)
    stats = W.compute_statistics(wd, block=3)  # blocks split segments: diffs must still chain
    frames = np.asarray(W.read_frames(wd.ds, wd.channels, slice(0, 13)), np.float64)
    np.testing.assert_allclose(stats.mean, frames.mean((0, 1)), rtol=1e-10)
    np.testing.assert_allclose(stats.std, frames.std((0, 1)), rtol=1e-6)
    diffs = np.concatenate([np.diff(frames[:8], axis=0), np.diff(frames[8:], axis=0)])
    np.testing.assert_allclose(stats.diff_std, np.sqrt(np.mean(diffs**2, (0, 1))), rtol=1e-10)
    np.testing.assert_allclose(stats.climatology, frames.mean(0), rtol=1e-6)
    stats.save(tmp_path / "s.npz")
    back = W.WeatherStatistics.load(tmp_path / "s.npz")
    assert back.channels == stats.channels
    np.testing.assert_array_equal(back.forcing_std, stats.forcing_std)


def test_statistics_name_the_channel_and_time_of_a_nan(tmp_path):
    ds = synthetic_wb2()
    ds["2m_temperature"][4, 1, 1] = np.nan
    ds.to_zarr(tmp_path / "n.zarr", zarr_format=2)
    with pytest.raises(ValueError, match=r"'2m_temperature' holds NaN or Inf at time 2020-01-02"):
        W.compute_statistics(W.WeatherDataset(tmp_path / "n.zarr"))


def test_solar_radiation_geometry():
    lat = np.array([-90.0, 0.0, 90.0])
    lon = np.arange(0, 360, 1.0)
    noon_greenwich = np.array(["2021-03-20T12:00"], "datetime64[ns]")
    tisr = W.toa_incident_solar_radiation(noon_greenwich, lat, lon)[0]
    # Equinox: the sub-solar point is near (0°, 0°) at 12 UTC (equation of time ~ −7 min).
    assert abs(lon[np.argmax(tisr[1])] - 0) <= 3 or abs(lon[np.argmax(tisr[1])] - 360) <= 3
    assert tisr[1].max() == pytest.approx(W.SOLAR_CONSTANT, rel=0.02)
    assert tisr[1, 180] == 0.0  # midnight at the antimeridian
    # Daily mean at the equator at an equinox: S₀/π (integral of max(cos ω, 0)).
    day = np.arange(
        np.datetime64("2021-03-20T00"), np.datetime64("2021-03-21T00"), np.timedelta64(10, "m")
    ).astype("datetime64[ns]")
    mean = W.toa_incident_solar_radiation(day, [0.0], [0.0])[:, 0, 0].mean()
    assert mean == pytest.approx(W.SOLAR_CONSTANT / np.pi, rel=0.02)
    # June solstice: the north pole is lit all day, the south pole dark.
    june = np.array(["2021-06-21T00:00"], "datetime64[ns]")
    polar = W.toa_incident_solar_radiation(june, lat, [0.0])[0, :, 0]
    assert polar[2] > 0.3 * W.SOLAR_CONSTANT and polar[0] == 0.0


def test_forcings_are_bounded_and_latitude_major():
    times = np.array(["2021-01-01T06:00", "2021-07-01T18:00"], "datetime64[ns]")
    f = W.forcing_frames(times, LAT, LON)
    assert f.shape == (2, 40, len(W.FORCING_NAMES))
    assert np.all(np.abs(f) <= 1.05)
    tisr = W.toa_incident_solar_radiation(times, LAT, LON) / W.SOLAR_CONSTANT
    np.testing.assert_allclose(f[..., 0], tisr.reshape(2, -1), rtol=1e-6)


def test_latitude_weights_are_cell_areas_with_half_cells_at_poles():
    lat = np.linspace(-90, 90, 181)
    w = W.latitude_weights(lat)
    assert w.mean() == pytest.approx(1.0)
    assert w[90] == pytest.approx(np.cos(0) * w[90], rel=0)  # largest at the equator
    assert np.argmax(w) == 90 and 0 < w[0] < w[1]
    np.testing.assert_allclose(w[1:-1] / w[90], np.cos(np.deg2rad(lat[1:-1])), rtol=1e-4)


def test_scores_properties():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(4, 40, 3))
    weights = W.node_weights(LAT, LON)
    np.testing.assert_allclose(weighted_rmse(truth, truth, weights), 0.0)
    shifted = weighted_rmse(truth + 2.0, truth, weights)
    np.testing.assert_allclose(shifted, 2.0)
    clim = rng.normal(size=(40, 3))
    np.testing.assert_allclose(anomaly_correlation(truth, truth, clim, weights), 1.0)
    np.testing.assert_allclose(anomaly_correlation(2 * truth - clim, truth, clim, weights), 1.0)
    assert np.all(
        anomaly_correlation(np.broadcast_to(clim, truth.shape), truth, clim, weights) == 0.0
    )
    # Weighted: an error only where the weight is zero does not count.
    w = np.ones(40)
    w[0] = 0.0
    bad = truth.copy()
    bad[:, 0] += 100
    np.testing.assert_allclose(weighted_rmse(bad, truth, w), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="weights: expected"):
        weighted_rmse(truth, truth, np.ones(3))


def test_forecast_scores_baselines():
    rng = np.random.default_rng(1)
    truth = np.cumsum(rng.normal(size=(5, 40, 2)), axis=0)
    scores = forecast_scores(truth, truth, truth.mean(0), np.ones(40), ["a", "b/500"])
    assert scores["rmse"]["model"]["a"] == [0.0] * 4
    assert len(scores["rmse"]["persistence"]["b/500"]) == 4
    assert scores["rmse"]["persistence"]["a"][0] > 0
    avg = average_scores([scores, scores])
    assert avg["rmse"]["persistence"]["a"] == pytest.approx(scores["rmse"]["persistence"]["a"])


def test_forecast_dataset_is_wb2_layout_and_writes_atomically(tmp_path):
    rng = np.random.default_rng(2)
    pred = rng.normal(size=(2, 3, 40, 3)).astype(np.float32)
    ds = forecast_dataset(
        pred,
        init_times=np.array(["2020-01-01T00", "2020-01-01T12"], "datetime64[ns]"),
        lead_times=np.arange(1, 4) * np.timedelta64(6, "h"),
        channels=["temperature/500", "temperature/850", "2m_temperature"],
        latitudes=LAT,
        longitudes=LON,
    )
    assert ds["temperature"].dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    assert ds["2m_temperature"].dims == (
        "time",
        "prediction_timedelta",
        "latitude",
        "longitude",
    )
    np.testing.assert_array_equal(
        ds["temperature"].sel(level=850).values[1, 2].reshape(-1), pred[1, 2, :, 1]
    )
    out = write_zarr(ds, tmp_path / "f.zarr")
    back = xr.open_zarr(out)
    assert back["prediction_timedelta"].values[0] == np.timedelta64(6, "h")
    with pytest.raises(FileExistsError, match="exists"):
        write_zarr(ds, out)
    assert [p.name for p in tmp_path.iterdir()] == ["f.zarr"]


def test_latitude_weights_follow_the_rows_whichever_way_latitude_runs():
    from meshsim.data.weather import latitude_weights

    lat = np.linspace(-90.0, 90.0, 13)
    up, down = latitude_weights(lat), latitude_weights(lat[::-1])
    np.testing.assert_allclose(down, up[::-1])
    assert up.mean() == pytest.approx(1.0) and up[0] > 0 and up[6] == up.max()
