"""The forcings a weather network sees are those of the right times (issue 23, item 4).

At a step from t to t+1 the grid's `forcing` input must be `forcing_frames` at the
input time t and the target time t+1: in a training window, in the frames of an
unrolled loss, and at every step of a rollout (across chunk boundaries). Also: the
local-time sign of the day progress, and the forcing statistics' time subsample.
"""

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("xarray")

from meshsim.data import weather as W  # noqa: E402
from meshsim.data.forcing import (  # noqa: E402
    SOLAR_CONSTANT,
    forcing_frames,
    forcing_statistics,
    statistics_stride,
    toa_incident_solar_radiation,
)
from meshsim.rollout import rollout_trajectory  # noqa: E402
from meshsim.tasks.weather import NUM_FORCINGS, WeatherTask  # noqa: E402

LAT = np.linspace(-90.0, 90.0, 7)
LON = np.arange(0.0, 360.0, 30.0)
START = np.datetime64("2001-03-17T06", "ns")  # not midnight, not an equinox


def _trajectory(frames=20, hours=6):
    times = START + np.arange(frames) * np.timedelta64(hours, "h")
    n = LAT.size * LON.size
    return {
        "state": np.zeros((frames, n, 2), np.float32),
        "forcing": forcing_frames(times, LAT, LON),
        "static": np.zeros((n, 0), np.float32),
        "latitude": LAT,
        "longitude": LON,
        "time": times,
    }


def _at(time, radiation="instant"):
    """[N, 5] forcings computed afresh at one time; "step_mean": the radiation is the
    mean over the 6 h before (a fine Riemann sum of the instantaneous flux)."""
    out = forcing_frames(np.asarray([time]), LAT, LON)[0]
    if radiation == "step_mean":
        minutes = time - np.arange(360) * np.timedelta64(1, "m") - np.timedelta64(30, "s")
        flux = toa_incident_solar_radiation(minutes, LAT, LON) / SOLAR_CONSTANT
        out[:, 0] = flux.reshape(360, -1).mean(0)
    return out


@pytest.mark.parametrize("radiation", ["instant", "step_mean"])
def test_window_and_unrolled_frames_see_the_input_and_target_times(radiation):
    task = WeatherTask(output_size=2, mesh_splits=0, radiation=radiation)
    traj = _trajectory()
    structure = task.structure(traj)
    times = traj["time"]
    atol = 1e-6 if radiation == "instant" else 2e-3  # the reference is a Riemann sum

    def expected(a, b):
        return np.concatenate([_at(times[a], radiation), _at(times[b], radiation)], -1)

    for t in (1, 7, 15):
        window = task.window(traj, t, structure, horizon=3)
        np.testing.assert_allclose(window.fields["forcing"], expected(t, t + 1), atol=atol)
        future = window.fields["future|prescribed"]  # [N, 3, 2F]: the steps after
        for k in range(3):
            np.testing.assert_allclose(future[:, k], expected(t + 1 + k, t + 2 + k), atol=atol)
    if radiation == "step_mean":  # it differs from the instantaneous flux where it matters
        instant = forcing_frames(times, LAT, LON)[..., 0]
        mean = task.prescribed_frames(traj, -1, 19)[..., 0]  # times 0..18
        assert np.abs(mean - instant[:19]).max() > 0.2
        with pytest.raises(ValueError, match="radiation: expected one of"):
            WeatherTask(output_size=2, radiation="daily")


class _ForcingEcho:
    """A stand-in network: its "next state" is the radiation its input forcing gives for
    the input time (channel 0) and the target time (channel 1)."""

    bundle_steps = 1

    def __init__(self, task):
        self.task = task

    def predict(self, params, normalizers, fields, structure, *, current=False, noise=None):
        del params, normalizers, structure, current, noise
        forcing = fields["forcing"]  # [N, 2F]
        return jnp.stack([forcing[:, 0], forcing[:, NUM_FORCINGS]], -1)


@pytest.mark.parametrize("chunk, radiation", [(3, "instant"), (50, "instant"), (5, "step_mean")])
def test_every_rollout_step_sees_the_forcings_of_its_own_times(chunk, radiation):
    task = WeatherTask(output_size=2, mesh_splits=0, radiation=radiation)
    traj = _trajectory()
    times, start, steps = traj["time"], 2, 12
    atol = 1e-6 if radiation == "instant" else 2e-3
    out = rollout_trajectory(
        _ForcingEcho(task), None, None, traj, steps=steps, start=start, chunk=chunk
    )
    for k in range(1, steps + 1):  # frame k: the step from start+k-1 to start+k
        before, after = _at(times[start + k - 1], radiation), _at(times[start + k], radiation)
        np.testing.assert_allclose(out[k, :, 0], before[:, 0], atol=atol)
        np.testing.assert_allclose(out[k, :, 1], after[:, 0], atol=atol)


def test_trajectories_of_a_store_get_the_forcings_of_their_own_times(tmp_path):
    from tests.test_weather_data import synthetic_wb2

    ds = synthetic_wb2()  # two trajectories: 2020-01-01.. and 2020-02-01..
    ds.to_zarr(tmp_path / "train.zarr", zarr_format=2)
    data = W.WeatherDataset(tmp_path / "train.zarr")
    task = WeatherTask(output_size=3, num_static=1, mesh_splits=0)
    second = data[1]
    start = data.segments[1][0]
    window = task.window(second, 2, task.structure(second))
    absolute = data.times[start + 2 : start + 4]
    expected = forcing_frames(absolute, data.latitudes, data.longitudes)
    np.testing.assert_allclose(
        window.fields["forcing"], np.concatenate([expected[0], expected[1]], -1), atol=1e-6
    )


def test_day_progress_and_radiation_agree_on_local_time():
    lat, lon = np.array([0.0]), np.arange(0.0, 360.0, 7.5)
    for hour in (0, 5, 13, 18):
        when = np.datetime64("2001-03-21T00", "ns") + np.timedelta64(hour, "h")
        f = forcing_frames(np.asarray([when]), lat, lon)[0]  # [W, 5]
        local = np.angle(f[:, 4] + 1j * f[:, 3]) % (2 * np.pi) * 24 / (2 * np.pi)
        # east is later: local time = UTC + longitude / 15 h
        np.testing.assert_allclose(local, (hour + lon / 15.0) % 24.0, atol=1e-3)
        # the sun is up in the local day and highest near local noon (equation of
        # time: within a quarter of an hour)
        up = f[:, 0] > 0
        assert np.all(np.abs(local[up] - 12.0) <= 6.25)
        assert abs(local[np.argmax(f[:, 0])] - 12.0) <= 0.25 + 7.5 / 15.0


@pytest.mark.parametrize("hours, frames", [(6, 2048), (6, 4096), (1, 12288), (3, 600)])
def test_forcing_statistics_subsample_walks_through_the_day(hours, frames):
    times = START + np.arange(frames) * np.timedelta64(hours, "h")
    stride = statistics_stride(times)
    per_day = 24 // hours
    assert np.gcd(stride, per_day) == 1 or stride == 1
    assert frames // 512 <= stride <= frames // 512 + per_day
    hours_seen = {int(h) for h in (times[::stride].astype("datetime64[h]").astype(int) % 24)}
    assert len(hours_seen) == per_day  # every time of day is sampled
    # a regional grid (one longitude band): the statistics match those of every time
    lat, lon = np.linspace(35.0, 70.0, 8), np.arange(0.0, 30.0, 5.0)
    mean, std = forcing_statistics(times, lat, lon)
    full = forcing_frames(times, lat, lon).reshape(-1, NUM_FORCINGS).astype(np.float64)
    np.testing.assert_allclose(mean, full.mean(0), atol=0.03)
    np.testing.assert_allclose(std, full.std(0), rtol=0.05)
