"""WeatherBench2 in and out: the ERA5-shaped preset trains on a store written in WB2's
exact layout (`tests/wb2_data.py`, xarray alone), `meshsim inspect` describes it, and
`meshsim forecast` writes many initial times in WB2's forecast convention, which this
test opens the way WB2's evaluation does (`weatherbench2.schema.apply_time_conventions`
with `by_init=True`: `prediction_timedelta` → `lead_time`, `time` → `init_time`,
`valid_time = init_time + lead_time`, then the truth selected at `valid_time`)."""

import json
import os

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from wb2_data import wb2_era5_like, write_wb2  # noqa: E402

from meshsim.cli import main  # noqa: E402
from meshsim.runs import open_run  # noqa: E402
from meshsim.runs.build import open_split  # noqa: E402
from meshsim.runs.demo import quick_overrides  # noqa: E402
from meshsim.runs.forecast import parse_init_times  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = os.path.join(ROOT, "experiments", "era5_wb2_lowres.py")


def _times(first: str, days: int) -> np.ndarray:
    start = np.datetime64(first, "ns")
    return np.arange(start, start + np.timedelta64(days, "D"), np.timedelta64(6, "h"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb2")
    data = root / "era5"
    os.makedirs(data)
    truth = wb2_era5_like(resolution=30.0, times=_times("2016-01-01", 3), seed=1)
    write_wb2(truth, data / "train.zarr")
    valid = wb2_era5_like(resolution=30.0, times=_times("2017-01-01", 3), seed=2)
    write_wb2(valid, data / "valid.zarr")
    workdir = root / "run"
    sets = [f"--set={o}" for o in (*quick_overrides(PRESET), f"data.path={data}")]
    argv = ["train", "--config", PRESET, "--workdir", str(workdir), *sets]
    assert main(argv) == 0
    return root, workdir, valid


def test_the_preset_reads_graphcast_variables_from_the_wb2_layout(run):
    _, workdir, _ = run
    config = json.loads((workdir / "config.json").read_text())
    channels = open_split(open_run(str(workdir)).config, "valid").meta["channels"]
    assert len(channels) == 6 * 2 + 5  # 6 atmospheric variables × 2 levels + 5 surface
    assert "temperature/850" in channels and "total_precipitation_6hr" in channels
    assert config["data"]["static_variables"] == ["geopotential_at_surface", "land_sea_mask"]


def test_inspect_describes_a_weather_directory(run, capsys):
    root, _, _ = run
    assert main(["inspect", str(root / "era5")]) == 0
    out = capsys.readouterr().out
    assert "stored longitude×latitude, latitude ascending" in out
    assert "times      12 from 2017-01-01T00:00:00 to 2017-01-03T18:00:00, every 6 h" in out
    assert "levels     500, 850" in out and "11 (17 channels)" in out
    assert main(["inspect", str(root / "era5"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    train = report["splits"]["train"]
    assert train["trajectories"] == {"count": 1, "frames": {"min": 12, "mean": 12.0, "max": 12}}
    assert train["grid"]["latitudes"] == 6 and train["grid"]["longitudes"] == 12
    assert train["variables"]["temperature"]["units"] == "K"


def _apply_wb2_time_conventions(forecast):
    """WB2's documented init-time convention, applied as its evaluation does."""
    forecast = forecast.rename({"prediction_timedelta": "lead_time", "time": "init_time"})
    forecast.coords["valid_time"] = forecast.init_time + forecast.lead_time
    return forecast


def test_forecast_writes_many_init_times_in_wb2_convention(run, capsys):
    root, workdir, valid = run
    out = root / "forecast.zarr"
    argv = ["forecast", "--workdir", str(workdir), "--steps", "3", "--out", str(out)]
    # 2017-01-01T06 … 2017-01-02T06 every 12 h: 3 initial times, in batches of 2 (the
    # second batch padded), one compiled rollout.
    code = main([*argv, "--init-times", "2017-01-01T06/2017-01-02T06/12h", "--batch", "2"])
    assert code == 0, capsys.readouterr().err
    ds = xr.open_zarr(out)
    # The schema: WB2's forecast dims, the source's horizontal order and dtypes, units.
    assert ds["temperature"].dims == (
        "time",
        "prediction_timedelta",
        "level",
        "longitude",
        "latitude",
    )
    assert ds["2m_temperature"].dims == ("time", "prediction_timedelta", "longitude", "latitude")
    for coord in ("latitude", "longitude", "level"):
        assert ds[coord].dtype == valid[coord].dtype, coord
        np.testing.assert_array_equal(ds[coord].values, valid[coord].values)
        assert ds[coord].attrs.get("units") == valid[coord].attrs["units"]
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert ds["prediction_timedelta"].dtype == np.dtype("timedelta64[ns]")
    for name in valid.data_vars:
        if "time" in valid[name].dims:
            assert ds[name].attrs["units"] == valid[name].attrs["units"], name
    expected_init = np.array(["2017-01-01T06", "2017-01-01T18", "2017-01-02T06"], "M8[ns]")
    np.testing.assert_array_equal(ds["time"].values, expected_init)
    np.testing.assert_array_equal(
        ds["prediction_timedelta"].values, np.array([6, 12, 18], "m8[h]").astype("m8[ns]")
    )
    # Opened as WB2's evaluation opens it: every valid time is a time of the truth.
    wb2 = _apply_wb2_time_conventions(ds)
    assert set(wb2.dims) == {"init_time", "lead_time", "level", "longitude", "latitude"}
    valid_times = wb2["valid_time"].values.ravel()
    assert np.isin(valid_times, valid["time"].values).all()
    truth = valid["temperature"].sel(time=wb2["valid_time"])  # [init, lead, level, lon, lat]
    assert truth.dims[:2] == ("init_time", "lead_time")
    error = float(np.sqrt(((wb2["temperature"] - truth) ** 2).mean()))
    persistence = valid["temperature"].sel(time=wb2["init_time"])
    baseline = float(np.sqrt(((persistence - truth) ** 2).mean()))
    assert np.isfinite(error) and baseline > 0  # the pairing is real (not the same frames)


def test_batched_forecasts_equal_one_rollout_each(run):
    """Each initial time of a batched forecast equals its own single rollout, written
    back in the source's (longitude, latitude) order."""
    from meshsim.rollout import rollout_trajectory
    from meshsim.rollout_batch import iter_rollout_batch

    root, workdir, valid = run
    config, sim, state = open_run(str(workdir))[:3]
    dataset = open_split(config, "valid")
    traj = dataset[0]
    starts = [1, 3, 6]
    rows = np.concatenate(
        list(
            iter_rollout_batch(sim, state.params, state.normalizers, traj, starts, steps=4, batch=2)
        )
    )
    assert rows.shape == (3, 5, 6 * 12, 17)
    for k, start in enumerate(starts):
        single = rollout_trajectory(
            sim, state.params, state.normalizers, traj, steps=4, start=start, chunk=4
        )
        np.testing.assert_allclose(rows[k], single, rtol=1e-5, atol=1e-5)
    # Frame 0 is the truth at the initial time, in the source's values.
    channel = dataset.meta["channels"].index("temperature/850")
    source = valid["temperature"].sel(level=850).isel(time=3).transpose("latitude", "longitude")
    np.testing.assert_array_equal(rows[1, 0, :, channel], source.values.ravel())


def test_parse_init_times():
    times = _times("2017-01-01", 2)
    one = parse_init_times("2017-01-01T06", times)
    np.testing.assert_array_equal(one, np.array(["2017-01-01T06"], "M8[ns]"))
    listed = parse_init_times("2017-01-01T06, 2017-01-01T18", times)
    assert listed.size == 2
    every = parse_init_times("2017-01-01T06/2017-01-01T18", times)
    np.testing.assert_array_equal(every, times[1:4])
    stepped = parse_init_times("2017-01-01T00/2017-01-02T00/1D", times)
    np.testing.assert_array_equal(stepped, np.array(["2017-01-01", "2017-01-02"], "M8[ns]"))
    with pytest.raises(ValueError, match="expected a step such as 6h"):
        parse_init_times("2017-01-01T00/2017-01-02T00/6x", times)
    with pytest.raises(ValueError, match="expected a time such as"):
        parse_init_times("yesterday", times)
    with pytest.raises(ValueError, match="holds no time of the data"):
        parse_init_times("2018-01-01/2018-02-01", times)
