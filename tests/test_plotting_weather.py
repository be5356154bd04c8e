"""Weather maps, animations, score curves and the multimesh drawing."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from meshsim.meshes.sphere import build_weather_mesh  # noqa: E402
from meshsim.plotting.weather import (  # noqa: E402
    animate_forecast,
    plot_forecast_maps,
    plot_multimesh,
    plot_score_curves,
)

LAT = np.linspace(-90, 90, 9)
LON = np.arange(0, 360, 22.5)


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_maps_and_animation_are_written(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(3, 9 * 16))
    pred = truth + 1e6 * (rng.random(truth.shape) > 0.9)  # a blow-up must not hide the truth
    out = plot_forecast_maps(tmp_path / "maps.png", pred[0], truth[0], LAT, LON, title="z")
    assert _png_size(out)[0] > 500
    written = animate_forecast(tmp_path / "f.gif", pred, truth, LAT, LON, lead_hours=[6, 12, 18])
    from PIL import Image

    with Image.open(written[0]) as im:
        assert im.n_frames == 3
    with pytest.raises(ValueError, match="pred: expected"):
        plot_forecast_maps(tmp_path / "bad.png", np.zeros(7), truth[0], LAT, LON)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gif", "maps.png"]


def test_score_curves_and_multimesh(tmp_path):
    scores = {
        "model": {"a": [1, 2], "b/500": [2, 3]},
        "persistence": {"a": [2, 3], "b/500": [3, 4]},
    }
    assert _png_size(plot_score_curves(tmp_path / "s.png", [6, 12], scores))[0] > 300
    mesh = build_weather_mesh(LAT, LON, splits=2)
    assert _png_size(plot_multimesh(tmp_path / "m.png", mesh, grid_points=10))[0] > 500


# ----------------------------------------------------------------------------- anomaly maps


def _capture(monkeypatch, module):
    """Replaces `module.save_figure` so the test can look at the figure's artists."""
    figures = []

    def keep(fig, path, dpi):
        figures.append(fig)
        return path

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def _geopotential(rng, frames=()):
    """A field that is mostly its time mean: a pole-to-equator slope plus small waves."""
    lat = np.radians(LAT)[:, None]
    lon = np.radians(LON)[None, :]
    clim = 50_000 + 3_000 * np.cos(lat) ** 2 + 0 * lon  # [H, W]
    waves = 40 * np.cos(3 * lon) * np.cos(lat) + rng.normal(size=(*frames, 9, 16))
    return clim, clim + waves


def test_maps_show_anomalies_when_the_climatology_dominates(tmp_path, monkeypatch):
    import meshsim.plotting.weather as weather

    rng = np.random.default_rng(1)
    clim, truth = _geopotential(rng)
    pred = truth + rng.normal(scale=5, size=truth.shape)
    figures = _capture(monkeypatch, weather)
    plot_forecast_maps(tmp_path / "a.png", pred, truth.ravel(), LAT, LON, climatology=clim.ravel())
    plot_forecast_maps(tmp_path / "b.png", pred, truth, LAT, LON)  # no climatology
    flat = np.full_like(clim, clim.mean())  # a climatology without a pattern: rule says no
    plot_forecast_maps(tmp_path / "c.png", pred, truth, LAT, LON, climatology=flat)
    anomaly, absolute, not_dominant = (
        [im for ax in fig.axes for im in ax.get_images()] for fig in figures
    )
    for im, field in zip(anomaly[:2], (pred, truth)):
        lo, hi = im.get_clim()
        assert lo == -hi and hi == pytest.approx(np.abs(truth - clim).max())
        np.testing.assert_allclose(im.get_array(), field - clim)
        assert im.get_cmap().name == "RdBu_r"
    titles = [ax.get_title() for ax in figures[0].axes[:3]]  # forecast, truth, error
    assert "anomaly" in titles[0] and "anomaly" in titles[1] and "anomaly" not in titles[2]
    # the error panel is forecast − truth with or without the climatology
    np.testing.assert_allclose(anomaly[2].get_array(), pred - truth)
    np.testing.assert_allclose(absolute[2].get_array(), pred - truth)
    for images in (absolute, not_dominant):
        np.testing.assert_allclose(images[1].get_array(), truth)
        assert images[1].get_clim() == (truth.min(), truth.max())
        assert images[1].get_cmap().name == "viridis"
    assert "anomaly" not in figures[1].axes[0].get_title()
    with pytest.raises(ValueError, match="climatology: expected shape"):
        plot_forecast_maps(tmp_path / "d.png", pred, truth, LAT, LON, climatology=np.zeros(5))


def test_animation_anomalies_use_one_symmetric_range(tmp_path, monkeypatch):
    import meshsim.plotting.weather as weather

    rng = np.random.default_rng(2)
    clim, truth = _geopotential(rng, frames=(3,))
    truth[2] += 30 * np.sin(np.radians(LAT))[:, None]  # the last frame departs most
    pred = truth + 1.0
    frames = []

    def record(fig, draw, indices, path, fps, dpi, mp4):
        for t in indices:
            draw(t)
            frames.append([im.get_array().copy() for ax in fig.axes for im in ax.get_images()])
        limits.extend(im.get_clim() for ax in fig.axes for im in ax.get_images())
        return [path]

    limits = []
    monkeypatch.setattr(weather, "write_animation", record)
    animate_forecast(
        tmp_path / "f.gif", pred, truth, LAT, LON, lead_hours=[6, 12, 18], climatology=clim
    )
    assert limits[0] == limits[1] == (-np.abs(truth - clim).max(), np.abs(truth - clim).max())
    for t, (forecast, true, error) in enumerate(frames):
        np.testing.assert_allclose(forecast, pred[t] - clim)
        np.testing.assert_allclose(true, truth[t] - clim)
        np.testing.assert_allclose(error, pred[t] - truth[t])


# ----------------------------------------------------------------------------- the globe


def test_orthographic_projection():
    from meshsim.meshes.coordinates import latlon_to_xyz
    from meshsim.plotting.globe import orthographic

    center = (35.0, 200.0)
    xy, visible = orthographic(latlon_to_xyz(*center), center)
    np.testing.assert_allclose(xy, 0.0, atol=1e-12)
    assert visible
    # the antipode and anything beyond 90° of arc is hidden; the rest is in the disc
    rng = np.random.default_rng(3)
    points = rng.normal(size=(500, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    xy, visible = orthographic(points, center)
    arc = np.degrees(np.arccos(points @ latlon_to_xyz(*center)))
    np.testing.assert_array_equal(visible, arc <= 90)
    np.testing.assert_allclose(np.hypot(*xy.T), np.sin(np.radians(arc)), atol=1e-12)
    # north is up and east is right, seen from the centre
    up, _ = orthographic(latlon_to_xyz(center[0] + 10, center[1]), center)
    right, _ = orthographic(latlon_to_xyz(0.0, center[1] + 90), center)
    assert up[1] > 0 and abs(up[0]) < 1e-12 and right[0] == pytest.approx(1.0)


def test_arcs_stay_on_the_sphere_and_never_jump_across_the_disc():
    from meshsim.meshes.coordinates import latlon_to_xyz
    from meshsim.plotting.globe import arc_points, arc_segments

    # edges across the date line, along it, near a pole, long and very short
    a = latlon_to_xyz(np.array([10.0, -20, 85, 0, 45]), np.array([179.0, 170, 0, 0, 30]))
    b = latlon_to_xyz(np.array([-5.0, 25, 85, 0, 45.001]), np.array([-178.0, 190, 180, 63, 30]))
    starts, ends = arc_points(a, b, max_step_deg=2.0)
    for p in (starts, ends):
        np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-12)
    pieces = np.degrees(np.arccos(np.clip(np.einsum("sk,sk->s", starts, ends), -1, 1)))
    assert pieces.max() <= 2.0 + 1e-9
    # each sample lies on its edge's great circle: perpendicular to a × b
    normal = np.cross(a, b)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    per_edge = np.ceil(np.degrees(np.arccos(np.einsum("ek,ek->e", a, b))) / 2.0).astype(int)
    per_edge = np.maximum(per_edge, 1)
    np.testing.assert_allclose(
        np.einsum("sk,sk->s", starts, np.repeat(normal, per_edge, 0)), 0.0, atol=1e-9
    )
    for center in ((0.0, 180.0), (89.0, 0.0), (0.0, 0.0)):
        segments = arc_segments(a, b, center, max_step_deg=2.0)
        lengths = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1)
        assert lengths.max() <= 2 * np.sin(np.radians(1.0)) + 1e-12  # a 2° chord at most
        assert (np.hypot(*segments.reshape(-1, 2).T) <= 1 + 1e-12).all()
    # the date-line edge seen from 180°E is drawn in full around the middle of the disc
    across = arc_segments(a[:1], b[:1], (0.0, 180.0))
    assert len(across) == 8 and np.abs(across).max() < 0.25


def test_multimesh_on_the_globe_centres_on_a_refined_region(tmp_path, monkeypatch):
    from matplotlib.collections import LineCollection

    import meshsim.plotting.weather as weather
    from meshsim.meshes.regional import Refinement

    refinement = Refinement.box(20, 60, 340, 40, extra_splits=1)
    mesh = build_weather_mesh(LAT, LON, splits=2, refinement=refinement)
    assert weather.default_center(mesh) == (40.0, 10.0)
    assert weather.default_center(build_weather_mesh(LAT, LON, splits=1)) == (20.0, 0.0)
    figures = _capture(monkeypatch, weather)
    plot_multimesh(tmp_path / "m.png", mesh, grid_points=5)
    (ax,) = [ax for ax in figures[0].axes if ax.collections]
    assert "(40°N, 10°E)" in ax.get_title()
    segments = np.concatenate(
        [np.asarray(c.get_segments()) for c in ax.collections if isinstance(c, LineCollection)]
    )
    assert (np.hypot(*segments.reshape(-1, 2).T) <= 1 + 1e-12).all()  # inside the globe
    assert np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1).max() < 0.035  # ≤ 2° chords
    labels = {c.get_label() for c in ax.collections}
    assert {"mesh level 0", "mesh level 3", "grid→mesh", "mesh→grid"} <= labels
    with pytest.raises(ValueError, match="center"):
        plot_multimesh(tmp_path / "bad.png", mesh, center=(100.0, 0.0))


# ----------------------------------------------------------------------------- point maps


def _stretched_points():
    """A coarse global grid with pole rows plus a fine box across 0°E (40–60°N, 350–10°E)."""
    g_lat, g_lon = np.meshgrid(np.linspace(-90, 90, 13), np.arange(0, 360, 20.0), indexing="ij")
    r_lat, r_lon = np.meshgrid(np.arange(41, 60, 2.0), np.arange(-9, 10, 2.0), indexing="ij")
    lat = np.concatenate([g_lat.ravel(), r_lat.ravel()])
    return lat, np.mod(np.concatenate([g_lon.ravel(), r_lon.ravel()]), 360)


def _covered(x, y, triangles, px, py) -> np.ndarray:
    """[P] bool: whether each point lies in some triangle (barycentric test)."""
    tx, ty = x[triangles], y[triangles]  # [T, 3]
    det = (ty[:, 1] - ty[:, 2]) * (tx[:, 0] - tx[:, 2]) + (tx[:, 2] - tx[:, 1]) * (
        ty[:, 0] - ty[:, 2]
    )
    ok = np.abs(det) > 1e-12
    tx, ty, det = tx[ok], ty[ok], det[ok]
    dx, dy = px[:, None] - tx[None, :, 2], py[:, None] - ty[None, :, 2]
    l1 = ((ty[:, 1] - ty[:, 2]) * dx + (tx[:, 2] - tx[:, 1]) * dy) / det
    l2 = ((ty[:, 2] - ty[:, 0]) * dx + (tx[:, 0] - tx[:, 2]) * dy) / det
    return ((l1 >= -1e-9) & (l2 >= -1e-9) & (1 - l1 - l2 >= -1e-9)).any(axis=1)


def test_point_triangulation_covers_the_map_without_wrapping():
    from meshsim.meshes.coordinates import latlon_to_xyz
    from meshsim.plotting.point_maps import plane_triangulation, sphere_triangles

    lat, lon = _stretched_points()
    triangles = sphere_triangles(lat, lon)
    rng = np.random.default_rng(4)
    for lon_start in (0.0, 350.0):
        x, y, plane, source = plane_triangulation(lat, lon, triangles, lon_start)
        np.testing.assert_array_equal(y, lat[source])
        np.testing.assert_allclose(np.mod(x - lon[source], 360.0)[np.abs(y) < 90], 0.0, atol=1e-9)
        spans = np.ptp(x[plane], axis=1)
        assert spans.max() < 180  # no triangle smeared across the map
        px = lon_start + rng.uniform(0, 360, 2000)
        py = rng.uniform(-90, 90, 2000)
        assert _covered(x, y, plane, px, py).all()  # seam and poles filled
    # the fine box alone: its hull's flat lid (faces ~20° across) is not a map triangle
    box = len(lat) - 100
    triangles = sphere_triangles(lat[box:], lon[box:])
    assert len(triangles) >= 2 * 9 * 9  # at least the 9 × 9 cells, two triangles each
    xyz = latlon_to_xyz(lat[box:], lon[box:])[triangles]  # [T, 3, 3]
    area = np.linalg.norm(np.cross(xyz[:, 1] - xyz[:, 0], xyz[:, 2] - xyz[:, 0]), axis=1).sum() / 2
    cells = (np.sin(np.radians(59)) - np.sin(np.radians(41))) * np.radians(18)
    assert area == pytest.approx(cells, rel=0.02)  # a lid would double it
    with pytest.raises(ValueError, match="latitudes, longitudes"):
        sphere_triangles([0.0, 0.0, 0.0, 0.0], [0.0, 90.0, 180.0, 270.0])  # one great circle


def test_point_maps_zoom_to_the_extent_and_show_anomalies(tmp_path, monkeypatch):
    import meshsim.plotting.point_maps as point_maps

    lat, lon = _stretched_points()
    clim = 50_000 + 3_000 * np.cos(np.radians(lat)) ** 2
    truth = clim + 30 * np.cos(np.radians(3 * lon))
    pred = truth + 2.0
    figures = _capture(monkeypatch, point_maps)
    point_maps.plot_point_maps(
        tmp_path / "r.png", pred, truth, lat, lon, extent=(40, 60, 350, 10), climatology=clim
    )
    point_maps.plot_point_maps(tmp_path / "g.png", pred, truth, lat, lon)
    regional, global_ = figures
    region = (lat >= 40) & (lat <= 60) & ((lon >= 350) | (lon <= 10))
    for ax in regional.axes[:3]:
        assert ax.get_xlim() == (350.0, 370.0) and ax.get_ylim() == (40.0, 60.0)
    for ax in global_.axes[:3]:
        assert ax.get_xlim() == (0.0, 360.0) and ax.get_ylim() == (-90.0, 90.0)
    (truth_mesh,) = regional.axes[1].collections
    lo, hi = truth_mesh.get_clim()
    assert lo == -hi == pytest.approx(-np.abs(truth - clim)[region].max())  # the region's range
    _, _, _, source = point_maps.plane_triangulation(
        lat, lon, point_maps.sphere_triangles(lat, lon), 350.0
    )
    np.testing.assert_allclose(truth_mesh.get_array(), (truth - clim)[source])
    assert "anomaly" in regional.axes[1].get_title()
    (error_mesh,) = regional.axes[2].collections
    np.testing.assert_allclose(error_mesh.get_array(), 2.0)
    with pytest.raises(ValueError, match="extent"):
        point_maps.plot_point_maps(tmp_path / "x.png", pred, truth, lat, lon, extent=(60, 40, 0, 1))
    with pytest.raises(ValueError, match="truth: expected shape"):
        point_maps.plot_point_maps(tmp_path / "x.png", pred, truth[:-1], lat, lon)
