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
