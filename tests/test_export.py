"""Rollout export to XDMF/VTK reads back through meshio."""

import os
import re

import numpy as np
import pytest

meshio = pytest.importorskip("meshio")

from meshsim.plotting.paraview import export_vtk_frames, export_xdmf  # noqa: E402
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
    assert sorted(os.listdir(tmp_path)) == ["rollout.h5", "rollout.xdmf"]  # no temp left
    text = (tmp_path / "rollout.xdmf").read_text()
    assert "rollout.h5:/" in text and ".tmp" not in text


def test_xdmf_failure_keeps_old_files_and_leaves_no_temp(tmp_path, monkeypatch):
    points, cells = grid_cells(4, 3)
    pred = np.zeros((3, 12, 1), np.float32)
    export_xdmf(tmp_path / "rollout.xdmf", points, cells, {"pred": pred})
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    seen = []
    write_data = meshio.xdmf.TimeSeriesWriter.write_data

    def failing_write_data(self, t, **kwargs):
        write_data(self, t, **kwargs)
        seen.append(sorted(os.listdir(tmp_path)))
        raise RuntimeError("disk full")

    monkeypatch.setattr(meshio.xdmf.TimeSeriesWriter, "write_data", failing_write_data)
    with pytest.raises(RuntimeError, match="disk full"):
        export_xdmf(tmp_path / "rollout.xdmf", points, cells, {"pred": pred + 1})
    # While writing, the heavy data went to a temporary dot-file named after the xdmf's.
    (listing,) = seen
    assert listing[1:] == ["rollout.h5", "rollout.xdmf"]
    assert re.fullmatch(r"\.rollout\.xdmf\.\d+-[0-9a-f]{8}\.tmp\.h5", listing[0]), listing
    after = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    assert after == before


def test_xdmf_relative_path(tmp_path, monkeypatch):
    points, cells = grid_cells(3, 3)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    path = export_xdmf(os.path.join("out", "r.xdmf"), points, cells, {"p": np.ones((2, 9, 1))})
    assert path == str(tmp_path / "out" / "r.xdmf")
    assert sorted(os.listdir(tmp_path / "out")) == ["r.h5", "r.xdmf"]
    assert os.listdir(tmp_path) == ["out"]


def test_vtk_frames_with_moving_points(tmp_path):
    points, cells = grid_cells(3, 3)
    world = np.random.default_rng(1).normal(size=(3, 9, 3))
    paths = export_vtk_frames(tmp_path, cells, {"speed": world[..., :1]}, points_per_frame=world)
    assert len(paths) == 3
    mesh = meshio.read(paths[2])
    np.testing.assert_allclose(mesh.points, world[2])
    np.testing.assert_allclose(mesh.point_data["speed"][:, 0], world[2, :, 0])
    assert sorted(os.listdir(tmp_path)) == [f"frame_{t:05d}.vtu" for t in range(3)]


def test_vtk_frame_failure_leaves_no_temp(tmp_path, monkeypatch):
    points, cells = grid_cells(3, 3)

    def failing_write(self, path, *args, **kwargs):
        assert re.fullmatch(
            r"\.frame_00000\.vtu\.\d+-[0-9a-f]{8}\.tmp\.vtu", os.path.basename(path)
        )
        with open(path, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(meshio.Mesh, "write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        export_vtk_frames(tmp_path, cells, {"s": np.ones((2, 9, 1))}, mesh_pos=points)
    assert os.listdir(tmp_path) == []


def test_export_rejects_mismatched_fields(tmp_path):
    points, cells = grid_cells(3, 3)
    with pytest.raises(ValueError, match=r"fields\['pred'\]: expected \[T, 9, d\]"):
        export_xdmf(tmp_path / "x.xdmf", points, cells, {"pred": np.zeros((2, 8, 2))})
