"""Weather forecasts: scores against persistence and climatology, WeatherBench2-style output.

Scores follow WeatherBench2 (Rasp et al. 2024): latitude-weighted RMSE per
channel and lead time, and the anomaly correlation coefficient (ACC) against a
climatology. Forecasts are written in WeatherBench2's forecast convention: dims
`time` (the initialisation), `prediction_timedelta`, (`level`,) and the horizontal
dims in the source store's order and latitude direction, with its coordinate dtypes
and units attributes, one variable per forecast variable. tests/test_wb2_forecast.py
opens the written store under WB2's time conventions and checks it against the truth.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from meshsim import atomic
from meshsim.data.weather import Channel, StoreLayout


def _check(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> None:
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(
            f"pred, truth: expected equal [L, N, C] shapes, got {pred.shape} and {truth.shape}"
        )
    if weights.shape != pred.shape[1:2]:
        raise ValueError(f"weights: expected [{pred.shape[1]}], got {weights.shape}")


def weighted_rmse(pred, truth, weights) -> np.ndarray:
    """[L, C] latitude-weighted RMSE per lead time and channel.

    Args:
      pred, truth: [L, N, C] forecasts and verifying analyses (N grid nodes).
      weights: [N] area weights (mean 1, e.g. `meshsim.data.weather.node_weights`).
    """
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    weights = np.asarray(weights, np.float64)
    _check(pred, truth, weights)
    mse = np.einsum("lnc,n->lc", np.square(pred - truth), weights) / weights.sum()
    return np.sqrt(mse)


def anomaly_correlation(pred, truth, climatology, weights) -> np.ndarray:
    """[L, C] latitude-weighted ACC: Σw·f′a′ / √(Σw·f′² · Σw·a′²), anomalies from
    `climatology [N, C]` (WeatherBench2's definition; 1 is perfect, 0 no skill).

    A forecast equal to the climatology has zero anomaly; its ACC is reported as 0.
    """
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    weights = np.asarray(weights, np.float64)
    _check(pred, truth, weights)
    clim = np.asarray(climatology, np.float64)
    if clim.shape != pred.shape[1:]:
        raise ValueError(f"climatology: expected {pred.shape[1:]}, got {clim.shape}")
    f, a = pred - clim, truth - clim
    num = np.einsum("lnc,lnc,n->lc", f, a, weights)
    den = np.sqrt(
        np.einsum("lnc,lnc,n->lc", f, f, weights) * np.einsum("lnc,lnc,n->lc", a, a, weights)
    )
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def forecast_scores(pred, truth, climatology, weights, channels: Sequence[str]) -> dict:
    """RMSE and ACC of a model forecast, persistence and climatology, per channel.

    Args:
      pred, truth: [L + 1, N, C] with frame 0 the initial condition (lead 0).
      climatology: [N, C]; weights: [N]; channels: C names.

    Returns:
      {"rmse": {"model"|"persistence"|"climatology": {channel: [L floats]}},
       "acc": {"model"|"persistence": {channel: [L floats]}}} (leads 1..L).
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    lead = truth[1:]
    persistence = np.broadcast_to(truth[:1], lead.shape)
    clim = np.broadcast_to(np.asarray(climatology)[None], lead.shape)

    def per_channel(values):
        return {name: [float(v) for v in values[:, k]] for k, name in enumerate(channels)}

    return {
        "rmse": {
            "model": per_channel(weighted_rmse(pred[1:], lead, weights)),
            "persistence": per_channel(weighted_rmse(persistence, lead, weights)),
            "climatology": per_channel(weighted_rmse(clim, lead, weights)),
        },
        "acc": {
            "model": per_channel(anomaly_correlation(pred[1:], lead, climatology, weights)),
            "persistence": per_channel(
                anomaly_correlation(persistence, lead, climatology, weights)
            ),
        },
    }


def average_scores(scores: Sequence[dict]) -> dict:
    """Mean over forecasts (init times) of `forecast_scores` results; RMSE averages the
    MSE (then √), ACC the coefficient."""
    if not scores:
        raise ValueError("scores: expected at least one forecast")
    out: dict = {"rmse": {}, "acc": {}}
    for metric in ("rmse", "acc"):
        for kind in scores[0][metric]:
            out[metric][kind] = {}
            for channel in scores[0][metric][kind]:
                v = np.array([s[metric][kind][channel] for s in scores], np.float64)
                mean = np.sqrt(np.mean(v**2, 0)) if metric == "rmse" else v.mean(0)
                out[metric][kind][channel] = [float(x) for x in mean]
    return out


def forecast_dataset(
    predictions,
    *,
    init_times,
    lead_times,
    channels: Sequence[str],
    latitudes,
    longitudes,
    layout: StoreLayout | None = None,
):
    """An xarray Dataset of forecasts in WeatherBench2's forecast convention.

    Args:
      predictions: [I, L, H·W, C] forecasts (I init times, L lead times, latitude-major
        with latitude ascending, as meshsim's grids are), or [I, M, L, H·W, C] ensemble
        forecasts of M members (the `realization` dim, WB2's ensemble dimension).
      init_times: [I] datetime64; lead_times: [L] timedelta64.
      channels: C channel names (`variable` or `variable/level`).
      latitudes: [H] ascending; longitudes: [W] (deg).
      layout: the source store's `StoreLayout`; the forecast takes its horizontal dim
        order, latitude direction, coordinate dtypes and attributes (units...). None:
        latitude-major, ascending, float64 coordinates.

    Returns:
      Dataset with dims `time` (the initialisation), (`realization`, members 0..M − 1),
      `prediction_timedelta` (the lead), (`level`), and the horizontal dims; one
      variable per forecast variable (3-D ones over `level`). WB2's
      `schema.apply_time_conventions(ds, by_init=True)` renames them to `init_time` /
      `lead_time` and adds `valid_time`.
    """
    import xarray as xr

    predictions = np.asarray(predictions, np.float32)
    h, w = len(latitudes), len(longitudes)
    if predictions.ndim not in (4, 5) or predictions.shape[-2] != h * w:
        raise ValueError(
            f"predictions: expected [I, L, {h * w}, C] or [I, M, L, {h * w}, C], got "
            f"{predictions.shape}"
        )
    if predictions.shape[-1] != len(channels):
        raise ValueError(f"channels: expected {predictions.shape[-1]} names, got {len(channels)}")
    lead = predictions.shape[:-2]  # (I, L) or (I, M, L)
    grid = predictions.reshape(*lead, h, w, -1)  # [..., H, W, C]
    latitudes = np.asarray(latitudes, np.float64)
    horizontal = ("latitude", "longitude")
    if layout is not None:
        horizontal = tuple(layout.horizontal)
        if layout.latitude_descending:
            grid, latitudes = grid[..., ::-1, :, :], latitudes[::-1]
        if horizontal == ("longitude", "latitude"):
            grid = np.swapaxes(grid, -3, -2)  # [..., W, H, C]
    parsed = [Channel.parse(c) for c in channels]
    levels = sorted({c.level for c in parsed if c.level is not None})
    members = ("realization",) if predictions.ndim == 5 else ()
    dims2 = ("time", *members, "prediction_timedelta", *horizontal)
    n_lead = len(dims2) - 2  # dims before the horizontal ones
    data_vars = {}
    for variable in dict.fromkeys(c.variable for c in parsed):
        idx = [k for k, c in enumerate(parsed) if c.variable == variable]
        if parsed[idx[0]].level is None:
            data_vars[variable] = (dims2, grid[..., idx[0]])
        else:
            by_level = {parsed[k].level: k for k in idx}
            if sorted(by_level) != levels:
                raise ValueError(
                    f"channels: {variable!r} has levels {sorted(by_level)}, expected {levels}"
                )
            stack = np.stack([grid[..., by_level[lv]] for lv in levels], axis=n_lead)
            data_vars[variable] = (dims2[:n_lead] + ("level",) + dims2[n_lead:], stack)
    dtypes = dict(layout.coordinate_dtypes) if layout is not None else {}
    coords = {
        "time": np.asarray(init_times, "datetime64[ns]"),
        "prediction_timedelta": np.asarray(lead_times, "timedelta64[ns]"),
        "latitude": latitudes.astype(dtypes.get("latitude", np.float64)),
        "longitude": np.asarray(longitudes, np.float64).astype(dtypes.get("longitude", np.float64)),
    }
    if levels:
        coords["level"] = np.asarray(levels).astype(dtypes.get("level", np.int64))
    if members:
        coords["realization"] = np.arange(predictions.shape[1], dtype=np.int64)
    ds = xr.Dataset(data_vars, coords=coords, attrs={"source": "meshsim forecast"})
    if layout is not None:
        for name, attrs in {**layout.coordinate_attrs, **layout.variable_attrs}.items():
            if name in ds.variables:
                ds[name].attrs.update(attrs)
    return ds


def write_zarr(ds, path: str | os.PathLike) -> str:
    """Writes `ds` to a zarr store atomically: a temporary sibling, renamed when complete.

    Raises:
      FileExistsError: `path` exists (forecasts are never overwritten silently).
    """
    with ForecastStore(path) as store:
        store.append(ds)
    return store.path


class ForecastStore:
    """A new zarr store of forecasts written a batch of initial times at a time (zarr
    format 2, consolidated metadata, as WeatherBench2 publishes), so host memory holds
    one batch; atomic: the store appears under its name complete, or not at all.

        with ForecastStore("forecast.zarr") as store:
            for batch in batches:
                store.append(forecast_dataset(batch, ...))   # along `time`

    Raises:
      FileExistsError: on entry, when `path` exists (never overwritten silently).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        self._staged = None
        self._tmp: str | None = None

    def __enter__(self) -> ForecastStore:
        if os.path.exists(self.path):
            raise FileExistsError(f"out: {self.path!r} exists; choose another path or remove it")
        # A staging directory (`meshsim.atomic`): what a killed forecast left is removed
        # by the next one to the same path.
        self._staged = atomic.staged_directory(self.path)
        self._tmp = self._staged.__enter__()
        self._written = False
        return self

    def append(self, ds) -> None:
        """Writes `ds` (a `forecast_dataset`) after the initial times already written."""
        if self._written:
            ds.to_zarr(self._tmp, append_dim="time", zarr_format=2, consolidated=True)
        else:
            ds.to_zarr(self._tmp, mode="w", zarr_format=2, consolidated=True)
            self._written = True

    def __exit__(self, *exc) -> bool:
        return bool(self._staged.__exit__(*exc))


class ForecastReader:
    """A forecast store in WeatherBench2's convention read back, a few initial times at a
    time: any horizontal dim order and latitude direction, with or without the
    `realization` dim (meshsim's, or another forecaster's store on the same grid).

    Attributes:
      init_times: [I] datetime64[ns]; lead_times: [L] timedelta64[ns].
      members: M (1 without a `realization` dim).

    Iterating yields (init_times [b], forecasts [b, M, L, H·W, C] float32) with the
    nodes latitude-major and ascending like meshsim's grids, `batch` initial times at a
    time.

    Raises:
      FileNotFoundError: no such store.
      ValueError: a channel's variable or level missing, a variable over other dims, or
        a grid other than (`latitudes`, `longitudes`); each names what it found.
    """

    def __init__(self, path, channels: Sequence[str], latitudes, longitudes, *, batch: int = 8):
        from meshsim.data.weather_store import open_weather

        self.path = os.fspath(path)
        ds = open_weather(self.path)
        for dim, want in (("latitude", latitudes), ("longitude", longitudes)):
            have = np.asarray(ds[dim].values, np.float64)
            want = np.sort(np.asarray(want, np.float64))
            if have.shape != want.shape or not np.allclose(have, want, atol=1e-6):
                raise ValueError(
                    f"{self.path}: {dim}: expected the data's {want.size} values "
                    f"{want[0]:g}…{want[-1]:g}, got {have.size} values {have[0]:g}…{have[-1]:g}"
                )
        if "prediction_timedelta" not in ds.dims:
            raise ValueError(
                f"{self.path}: expected a forecast store (dims time, prediction_timedelta, "
                f"...), got dims {tuple(ds.dims)}"
            )
        self.members = int(ds.sizes.get("realization", 1))
        lead = ("time", *(("realization",) if "realization" in ds.dims else ()))
        lead += ("prediction_timedelta",)
        self.arrays = []
        for name in channels:
            channel = Channel.parse(name)
            if channel.variable not in ds.data_vars:
                raise ValueError(
                    f"{self.path}: no variable {channel.variable!r} (channel {name!r})"
                )
            da = ds[channel.variable]
            if channel.level is not None:
                if "level" not in da.dims or channel.level not in da["level"].values:
                    raise ValueError(
                        f"{self.path}: {channel.variable!r} has no level {channel.level}"
                    )
                da = da.sel(level=channel.level)
            if set(da.dims) != {*lead, "latitude", "longitude"}:
                raise ValueError(
                    f"{self.path}: {name!r}: expected dims {(*lead, 'latitude', 'longitude')} in "
                    f"any order, got {da.dims}"
                )
            self.arrays.append(da.transpose(*lead, "latitude", "longitude"))
        self.init_times = np.asarray(ds["time"].values, "datetime64[ns]")
        self.lead_times = np.asarray(ds["prediction_timedelta"].values, "timedelta64[ns]")
        self.batch = int(batch)

    def __iter__(self):
        for begin in range(0, self.init_times.size, self.batch):
            part = slice(begin, begin + self.batch)
            values = [np.asarray(da.isel(time=part).values, np.float32) for da in self.arrays]
            stack = np.stack(values, axis=-1)  # [b, (M,) L, H, W, C]
            if self.members == 1 and stack.ndim == 5:
                stack = stack[:, None]
            b, m, lead = stack.shape[:3]
            yield self.init_times[part], stack.reshape(b, m, lead, -1, stack.shape[-1])
