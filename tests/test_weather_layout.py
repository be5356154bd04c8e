"""WeatherBench2 stores as published: either horizontal order, either latitude direction,
partly transposed stores, and variables whose dims are not a grid field's."""

import logging

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from wb2_data import wb2_era5_like, write_wb2  # noqa: E402

from meshsim.data import weather as W  # noqa: E402


def _layouts(ds):
    """The same data in four layouts: WB2's (lon, lat) ascending, lat-major ascending,
    ERA5's lat-major descending, and a store transposed for some variables only."""
    lat_major = ds.transpose("time", "level", "latitude", "longitude")
    descending = lat_major.isel(latitude=slice(None, None, -1))
    mixed = ds.copy()
    for name in ("temperature", "2m_temperature", "land_sea_mask"):
        mixed[name] = lat_major[name]
    mixed = mixed.isel(latitude=slice(None, None, -1))
    return {"wb2": ds, "lat_major": lat_major, "descending": descending, "mixed": mixed}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    ds = wb2_era5_like(resolution=30.0, levels=(500, 700, 850))
    return ds, {k: write_wb2(v, root / f"{k}.zarr") for k, v in _layouts(ds).items()}


def test_every_layout_reads_the_same_frames_and_statistics(stores):
    ds, paths = stores
    reference = W.WeatherDataset(paths["wb2"])
    # The frames are latitude-major and ascending, whatever the source's order.
    lat = ds["latitude"].values
    assert np.all(np.diff(reference.latitudes) > 0)
    np.testing.assert_array_equal(reference.latitudes, lat)
    frame = W.read_frames(reference.ds, reference.channels, [5])[0]  # [H·W, C]
    k = reference.meta["channels"].index("temperature/700")
    expected = ds["temperature"].sel(level=700).isel(time=5).transpose("latitude", "longitude")
    np.testing.assert_array_equal(frame[:, k], expected.values.reshape(-1))
    s = reference.static_names.index("land_sea_mask")
    np.testing.assert_array_equal(
        reference.static[:, s],
        ds["land_sea_mask"].transpose("latitude", "longitude").values.ravel(),
    )
    stats = reference.statistics()
    assert len(reference.channels) == 5 + 6 * 3 and reference.static.shape[1] == 2
    for name, path in paths.items():
        other = W.WeatherDataset(path)
        assert other.meta == reference.meta, name
        np.testing.assert_array_equal(other.static, reference.static, err_msg=name)
        np.testing.assert_array_equal(
            np.asarray(other[0]["state"]), np.asarray(reference[0]["state"]), err_msg=name
        )
        got = other.statistics()
        for field in ("mean", "std", "diff_std", "static_mean", "static_std", "climatology"):
            np.testing.assert_array_equal(getattr(got, field), getattr(stats, field), name)


def test_layout_remembers_the_source(stores):
    _, paths = stores
    wb2 = W.WeatherDataset(paths["wb2"]).layout
    assert wb2.horizontal == ("longitude", "latitude") and not wb2.latitude_descending
    assert wb2.coordinate_dtypes["level"] == "int64"
    assert wb2.variable_attrs["temperature"]["units"] == "K"
    era5 = W.WeatherDataset(paths["descending"]).layout
    assert era5.horizontal == ("latitude", "longitude") and era5.latitude_descending


def test_a_variable_with_other_dims_is_named_not_dropped(tmp_path, caplog):
    ds = wb2_era5_like(resolution=45.0, surface=("2m_temperature",), atmospheric=("temperature",))
    ds["zonal_mean"] = (("time", "latitude"), ds["2m_temperature"].mean("longitude").values)
    path = write_wb2(ds, tmp_path / "odd.zarr")
    with pytest.raises(ValueError, match=r"'zonal_mean' has dims \('time', 'latitude'\)"):
        W.WeatherDataset(path)
    with pytest.raises(ValueError, match=r"'zonal_mean' has dims"):
        W.WeatherDataset(path, variables=["zonal_mean"])
    with caplog.at_level(logging.WARNING):
        only = W.WeatherDataset(path, variables=["temperature"])  # named: the rest is skipped
    assert only.meta["channels"] == ["temperature/500", "temperature/850"]
    assert "zonal_mean" in caplog.text and "not read" in caplog.text


def test_static_variables_are_selectable(stores):
    _, paths = stores
    one = W.WeatherDataset(paths["wb2"], static=["land_sea_mask"])
    assert one.static_names == ("land_sea_mask",) and one.static.shape[1] == 1
    none = W.WeatherDataset(paths["wb2"], static=[])
    assert none.static.shape == (len(none.latitudes) * len(none.longitudes), 0)
    with pytest.raises(ValueError, match="static variables: 'orography' is not one of"):
        W.WeatherDataset(paths["wb2"], static=["orography"])
