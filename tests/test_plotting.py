"""Tests for meshsim.plotting: files are written, GIF frame counts, shape checks."""

import json
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from meshsim import plotting


def _grid(nx=4, ny=3):
    """A structured triangulation of the unit rectangle: [nx*ny, 2] nodes, [C, 3] cells."""
    xs, ys = np.meshgrid(np.linspace(0, 2, nx), np.linspace(0, 1, ny))
    pos = np.stack([xs.ravel(), ys.ravel()], axis=1)
    cells = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            a = j * nx + i
            cells += [(a, a + 1, a + nx), (a + 1, a + nx + 1, a + nx)]
    return pos.astype(np.float32), np.asarray(cells, np.int32)


def _gif_frames(path):
    with Image.open(path) as image:
        return image.n_frames


def test_plot_comparison_writes_png(tmp_path):
    pos, cells = _grid()
    truth = pos[:, 0] ** 2
    fig = plotting.plot_comparison(pos[None], cells[None], truth + 0.1, truth, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 6  # 3 panels + 3 colorbars
    out = tmp_path / "cmp.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000
    err_image = fig.axes[2].collections[0]
    assert err_image.get_clim() == pytest.approx((-0.1, 0.1), rel=1e-5)
    assert fig.axes[0].collections[0].get_clim() == fig.axes[1].collections[0].get_clim()


def test_a_blown_up_prediction_keeps_the_truths_colour_limits():
    pos, cells = _grid()
    truth = np.sin(3 * pos[:, 0]) + pos[:, 1]
    fig = plotting.plot_comparison(pos, cells, 100 * truth, truth)
    pred_image, truth_image, error_image = (ax.collections[0] for ax in fig.axes[:3])
    limits = (truth.min(), truth.max())
    assert truth_image.get_clim() == pytest.approx(limits, rel=1e-6)
    assert pred_image.get_clim() == pytest.approx(limits, rel=1e-6)  # saturates instead
    spread = np.abs(99 * truth).max()
    assert error_image.get_clim() == pytest.approx((-spread, spread), rel=1e-6)


def test_the_animation_uses_the_truths_range_over_all_frames(tmp_path, monkeypatch):
    pos, cells = _grid()
    t = np.arange(4, dtype=np.float64)[:, None]
    truth = np.cos(pos[None, :, 0] + t)
    seen = {}

    def record(fig, draw, frames, path, fps, dpi, mp4):
        seen["clims"] = [ax.collections[0].get_clim() for ax in fig.axes[:3]]
        return [path]

    from meshsim.plotting import mesh

    monkeypatch.setattr(mesh, "write_animation", record)
    plotting.animate_rollout(pos, cells, 100 * truth, truth, tmp_path / "r.gif", mp4=False)
    limits = (truth.min(), truth.max())
    assert seen["clims"][0] == pytest.approx(limits) and seen["clims"][1] == pytest.approx(limits)
    spread = np.abs(99 * truth).max()
    assert seen["clims"][2] == pytest.approx((-spread, spread))


def test_rollout_rmse_plot_is_log_scale_and_leaves_gaps_for_none(tmp_path):
    from meshsim.plotting.rollout import plot_rollout_rmse

    per_step = {"model": [0.01, 0.02, None, 0.5], "persistence": [0.1, 0.2, 0.2, 0.3]}
    seen = {}
    original = Figure.savefig

    def spy(self, fname, **kwargs):
        ax = self.axes[0]
        seen["scale"] = ax.get_yscale()
        seen["model"] = ax.lines[0].get_ydata()
        seen["labels"] = [line.get_label() for line in ax.lines[:2]]
        return original(self, fname, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Figure, "savefig", spy)
        out = plot_rollout_rmse(per_step, tmp_path / "rmse.png", horizons=(1, 10))
    assert out.stat().st_size > 1000 and seen["scale"] == "log"
    assert seen["labels"] == ["model", "persistence"]
    np.testing.assert_array_equal(np.isnan(seen["model"]), [False, False, True, False])
    with pytest.raises(ValueError, match="positive"):
        plot_rollout_rmse({"model": [None, 0.0]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="per_step"):
        plot_rollout_rmse({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="1-D"):
        plot_rollout_rmse({"model": []}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_kinetic_energy_plot(tmp_path):
    from meshsim.plotting.rollout import plot_kinetic_energy

    runs = [
        {"kinetic_energy_model": [1.0, 1.1, 1.3, None], "kinetic_energy_truth": [1.0, 1.0, 1.0]},
        {"error": "cells: degenerate"},  # a trajectory the diagnostics refused: skipped
        {"kinetic_energy_model": [2.0, 2.0], "kinetic_energy_truth": [2.0, 2.1]},
    ]
    out = plot_kinetic_energy(runs, tmp_path / "ke.png", dt=0.01)
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="kinetic_energy"):
        plot_kinetic_energy([{"error": "x"}], tmp_path / "none.png")
    with pytest.raises(ValueError, match="dt"):
        plot_kinetic_energy(runs, tmp_path / "none.png", dt=0.0)


def test_plot_field_options():
    pos, cells = _grid()
    ax = Figure().subplots()
    mappable = plotting.plot_field(ax, pos, cells, pos[:, 1], shading="flat", colorbar=False)
    assert mappable.get_array().shape == (len(cells),)
    assert len(ax.figure.axes) == 1


def test_animate_rollout_gif_frame_count(tmp_path):
    pos, cells = _grid()
    t = np.arange(5, dtype=np.float32)[:, None]
    truth = np.sin(pos[None, :, 0] + t)
    path = tmp_path / "sub" / "rollout.gif"
    written = plotting.animate_rollout(pos, cells, truth * 1.1, truth, path, every=2, mp4=False)
    assert written == [path] and path.stat().st_size > 0
    assert _gif_frames(path) == 3  # frames 0, 2, 4
    assert os.listdir(path.parent) == ["rollout.gif"]  # no temp left (dot-files included)


def test_mp4_skipped_without_ffmpeg(tmp_path, monkeypatch):
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    pos, cells = _grid()
    frames = np.zeros((2, len(pos)))
    written = plotting.animate_rollout(pos, cells, frames, frames, tmp_path / "r.gif", mp4=True)
    assert written == [tmp_path / "r.gif"]
    assert _gif_frames(written[0]) == 2


def test_animate_cloth_gif(tmp_path):
    pos, cells = _grid(3, 3)
    flat = np.concatenate([pos, np.zeros((len(pos), 1), np.float32)], axis=1)
    traj = flat[None] + np.linspace(0, 0.5, 3)[:, None, None] * np.array([0, 0, 1.0])
    path = tmp_path / "cloth.gif"
    plotting.animate_cloth(traj, cells, path, truth=traj, mp4=False)
    assert _gif_frames(path) == 3


def test_plot_cloth_needs_3d_axes():
    pos, cells = _grid(3, 3)
    world = np.concatenate([pos, np.zeros((len(pos), 1))], axis=1)
    fig = Figure()
    plotting.plot_cloth(fig.add_subplot(1, 2, 1, projection="3d"), world, cells)
    with pytest.raises(ValueError, match="ax3d"):
        plotting.plot_cloth(fig.add_subplot(1, 2, 2), world, cells)


def test_plot_loss_curve(tmp_path):
    records = [{"step": s, "loss": 1.0 / (s + 1)} for s in range(0, 100, 10)]
    records += [{"step": 50, "eval/rmse_1": 0.2}, {"step": 99, "eval/rmse_1": 0.1}]
    jsonl = tmp_path / "metrics.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    for source in (jsonl, records):
        out = plotting.plot_loss_curve(source, tmp_path / "loss.png")
        assert out.stat().st_size > 1000
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert sorted(os.listdir(tmp_path)) == ["loss.png", "metrics.jsonl"]  # no temp left
    deep = plotting.plot_loss_curve(records, tmp_path / "a" / "b" / "loss.pdf")  # makes dirs
    assert deep.read_bytes().startswith(b"%PDF") and os.listdir(deep.parent) == ["loss.pdf"]
    with pytest.raises(ValueError, match="loss"):
        plotting.plot_loss_curve([{"step": 1}], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "loss.png"
    out.write_bytes(b"old")
    seen = []

    def failing_savefig(self, fname, **kwargs):
        seen.append(os.path.basename(fname))
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        plotting.plot_loss_curve([{"step": 0, "loss": 1.0}], out)
    (name,) = seen  # matplotlib was given a temporary name that keeps the suffix
    assert name.startswith(".loss.png.") and name.endswith(".tmp.png")
    assert os.listdir(tmp_path) == ["loss.png"] and out.read_bytes() == b"old"


def test_shape_validation():
    pos, cells = _grid()
    n = len(pos)
    ax = Figure().subplots()
    with pytest.raises(ValueError, match="mesh_pos"):
        plotting.plot_field(ax, pos[:, :1], cells, np.zeros(n))
    with pytest.raises(ValueError, match="cells"):
        plotting.plot_field(ax, pos, cells[:, :2], np.zeros(n))
    with pytest.raises(ValueError, match="cells index"):
        plotting.plot_field(ax, pos, cells + n, np.zeros(n))
    with pytest.raises(ValueError, match="values"):
        plotting.plot_field(ax, pos, cells, np.zeros(n + 1))
    with pytest.raises(ValueError, match="truth"):
        plotting.plot_comparison(pos, cells, np.zeros(n), np.zeros(n - 1))
    with pytest.raises(ValueError, match="pred"):
        plotting.animate_rollout(pos, cells, np.zeros(n), np.zeros(n), "x.gif")
    with pytest.raises(ValueError, match="every"):
        plotting.animate_rollout(pos, cells, np.zeros((2, n)), np.zeros((2, n)), "x.gif", every=0)
    with pytest.raises(ValueError, match="world_pos"):
        plotting.animate_cloth(np.zeros((2, n, 2)), cells, "x.gif")
