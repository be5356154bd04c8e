"""Rollout export to XDMF/VTK reads back through meshio."""

import numpy as np
import pytest

meshio = pytest.importorskip("meshio")

from meshsim.export import export_vtk_frames, export_xdmf  # noqa: E402
from tests.conftest import grid_cells  # noqa: E402


def test_xdmf_time_series_round_trip(tmp_path):
    points, cells = grid_cells(4, 3)
    pred = np.random.default_rng(0).normal(size=(5, 12, 2)).astype(np.float32)
    path = export_xdmf(tmp_path / "rollout.xdmf", points, cells, {"pred": pred}, dt=0.01)
    with meshio.xdmf.TimeSeriesReader(path) as reader:
        pts, cell_blocks = reader.read_points_cells()
        assert pts.shape == (12, 3) and cell_blocks[0].data.shape == cells.shape
        assert reader.num_steps == 5
        for t in range(5):
            time, point_data, _ = reader.read_data(t)
            assert time == pytest.approx(0.01 * t)
            np.testing.assert_allclose(point_data["pred"], pred[t])
    assert not list(tmp_path.glob("*.tmp*"))


def test_vtk_frames_with_moving_points(tmp_path):
    points, cells = grid_cells(3, 3)
    world = np.random.default_rng(1).normal(size=(3, 9, 3))
    paths = export_vtk_frames(tmp_path, cells, {"speed": world[..., :1]}, points_per_frame=world)
    assert len(paths) == 3
    mesh = meshio.read(paths[2])
    np.testing.assert_allclose(mesh.points, world[2])
    np.testing.assert_allclose(mesh.point_data["speed"][:, 0], world[2, :, 0])


def test_export_rejects_mismatched_fields(tmp_path):
    points, cells = grid_cells(3, 3)
    with pytest.raises(ValueError, match=r"fields\['pred'\]: expected \[T, 9, d\]"):
        export_xdmf(tmp_path / "x.xdmf", points, cells, {"pred": np.zeros((2, 8, 2))})
