"""Physical diagnostics of rollouts, on meshes small enough to check by hand.

Tolerances: fields that the P1 discretisation represents exactly (linear
velocities, uniform flows, rigid motions and uniform stretches) are checked to
float64 round-off (1e-12 relative); frequencies to 1% of a known sine, as the
issue asks (the estimator's bias is far below that).
"""

import json
import math

import numpy as np
import pytest

from meshsim import diagnostics as diag
from meshsim.meshes import Ellipse, channel_mesh
from meshsim.node_types import NodeType
from tests.conftest import grid_cells, synthetic_cfd_trajectory, synthetic_cloth_trajectory


def jittered_mesh(nx=6, ny=5, seed=0):
    """A unit-square grid mesh with interior nodes moved and half the cells clockwise."""
    points, cells = grid_cells(nx, ny)
    points = points.astype(np.float64)
    interior = (points > 0).all(1) & (points < 1).all(1)
    rng = np.random.default_rng(seed)
    points[interior] += rng.uniform(-0.25, 0.25, (interior.sum(), 2)) / max(nx, ny)
    cells = cells.copy()
    cells[::2] = cells[::2, ::-1]  # orientation must not matter
    return points, cells


def linear_field(points, a, b, c, d, steps=3):
    x, y = points[:, 0], points[:, 1]
    u = np.stack([a * x + b * y, c * x + d * y], -1)
    return np.stack([u * (k + 1) for k in range(steps)])  # frame k scaled by k + 1


# ----------------------------------------------------------------------------- flow fields


@pytest.mark.parametrize(
    "a, b, c, d", [(1.0, 0.0, 0.0, 0.0), (0.3, -2.0, 1.5, 0.7), (-1, 4, 2, -3)]
)
def test_divergence_of_a_linear_field_is_exact(a, b, c, d):
    points, cells = jittered_mesh()
    div = diag.divergence(linear_field(points, a, b, c, d), points, cells)
    assert div.shape == (3, len(cells))
    expected = (a + d) * np.arange(1, 4)[:, None]
    np.testing.assert_allclose(div, np.broadcast_to(expected, div.shape), rtol=1e-12, atol=1e-12)
    mean = diag.mean_abs_divergence(linear_field(points, a, b, c, d), points, cells)
    np.testing.assert_allclose(mean, abs(a + d) * np.arange(1, 4), rtol=1e-12, atol=1e-12)


def test_rotation_and_shear_are_divergence_free():
    points, cells = jittered_mesh(seed=1)
    for field in (linear_field(points, 0, -1, 1, 0), linear_field(points, 1, 2, 3, -1)):
        np.testing.assert_allclose(diag.mean_abs_divergence(field, points, cells), 0, atol=1e-12)


def test_nodal_areas_sum_to_the_mesh_area_and_accept_the_trajectory_layout():
    points, cells = jittered_mesh()
    areas = diag.nodal_areas(points[None], cells[None])
    assert areas.shape == (len(points),) and (areas > 0).all()
    assert areas.sum() == pytest.approx(1.0, rel=1e-12)
    # A corner node of the structured grid touches one or two cells of area 1/(2*5*4).
    points, cells = grid_cells(6, 5)
    assert diag.nodal_areas(points, cells)[0] == pytest.approx(2 / (2 * 5 * 4) / 3, rel=1e-6)


def test_kinetic_energy_of_a_uniform_flow_and_its_scaling():
    points, cells = jittered_mesh()
    u = np.broadcast_to(np.array([3.0, -4.0]), (2, len(points), 2))
    energy = diag.kinetic_energy(u, points, cells)
    np.testing.assert_allclose(energy, 0.5 * 25.0 * 1.0, rtol=1e-12)  # ½|u|² · area
    rng = np.random.default_rng(0)
    field = rng.normal(size=(4, len(points), 2))
    base = diag.kinetic_energy(field, points, cells)
    np.testing.assert_allclose(diag.kinetic_energy(2.5 * field, points, cells), 6.25 * base)
    # 3-D velocities work too; float32 input is fine.
    u3 = np.ones((1, len(points), 3), np.float32)
    assert diag.kinetic_energy(u3, points, cells)[0] == pytest.approx(1.5, rel=1e-6)


def test_kinetic_energy_mask_selects_nodes_and_ignores_their_nan():
    points, cells = jittered_mesh()
    u = np.ones((1, len(points), 2))
    mask = points[:, 0] < 0.5
    u[0, ~mask] = np.nan  # e.g. a node the mask leaves out
    areas = diag.nodal_areas(points, cells)
    assert diag.kinetic_energy(u, points, cells, mask)[0] == pytest.approx(areas[mask].sum())
    assert np.isnan(diag.kinetic_energy(u, points, cells)[0])


# ----------------------------------------------------------------------------- vortex shedding


def sine_velocity(num_nodes, node, frequency, dt=0.01, steps=300, trend=0.0, seed=0):
    """Random small velocities, with v at `node` a sine (plus a linear trend and offset)."""
    rng = np.random.default_rng(seed)
    t = dt * np.arange(steps)
    u = 0.01 * rng.normal(size=(steps, num_nodes, 2))
    u[:, node, 1] = 0.4 + trend * t + np.sin(2 * np.pi * frequency * t + 0.3)
    return u


@pytest.mark.parametrize("frequency", [2.0, 2.678, 3.31, 7.05])
def test_shedding_frequency_of_a_sine_within_one_percent(frequency):
    points, _ = grid_cells(6, 5)
    u = sine_velocity(len(points), 7, frequency, trend=0.5)
    f = diag.shedding_frequency(u, points, probe=7, dt=0.01)
    assert f == pytest.approx(frequency, rel=0.01)
    # By position: the nearest node is the probe.
    f_xy = diag.shedding_frequency(u, points, probe=tuple(points[7] + 0.01), dt=0.01)
    assert f_xy == f
    st = diag.strouhal_number(u, points, probe=7, dt=0.01, diameter=0.1, velocity_scale=0.8)
    assert st == pytest.approx(frequency * 0.1 / 0.8, rel=0.01)


def test_shedding_frequency_is_nan_without_an_oscillation():
    points, _ = grid_cells(4, 3)
    steps = 200
    u = np.zeros((steps, len(points), 2))
    assert math.isnan(diag.shedding_frequency(u, points, probe=0, dt=0.01))  # constant
    u[:, 0, 1] = np.linspace(0, 5, steps)  # a drift is not shedding
    assert math.isnan(diag.shedding_frequency(u, points, probe=0, dt=0.01))
    u[:, 0, 1] = np.sin(2 * np.pi * 0.5 * 0.01 * np.arange(steps))  # one period only
    assert math.isnan(diag.shedding_frequency(u, points, probe=0, dt=0.01))
    u[:, 0, 1] = np.sin(2 * np.pi * 3.0 * 0.01 * np.arange(steps))
    u[50, 0, 1] = np.nan  # a blown-up model
    assert math.isnan(diag.shedding_frequency(u, points, probe=0, dt=0.01))
    assert diag.shedding_frequency(u, points, probe=0, dt=0.01, skip=51) == pytest.approx(3, 0.01)


def cylinder_channel(obstacle_type=NodeType.WALL_BOUNDARY, obstacles=None):
    """The built-in cylinder_flow mesh at a coarse resolution (a few hundred nodes)."""
    obstacles = obstacles or (Ellipse(center=(0.3, 0.2), radii=(0.05, 0.05)),)
    return channel_mesh(obstacles=obstacles, resolution=0.5, obstacle_node_type=obstacle_type)


@pytest.mark.parametrize("obstacle_type", [NodeType.WALL_BOUNDARY, NodeType.OBSTACLE])
def test_default_probe_finds_the_cylinder(obstacle_type):
    mesh = cylinder_channel(obstacle_type)
    probe = diag.default_probe(mesh.points, mesh.node_type[None, :, None])
    assert probe.diameter == pytest.approx(0.1, rel=1e-6)  # boundary nodes at the poles
    np.testing.assert_allclose(probe.obstacle_center, (0.3, 0.2), atol=1e-6)
    assert mesh.node_type[probe.node] == NodeType.NORMAL
    assert probe.position == pytest.approx((0.5, 0.2), abs=0.03)  # 2 D behind the centre


def test_default_probe_uses_the_upstream_obstacle():
    obstacles = (Ellipse((0.6, 0.25), (0.04, 0.04)), Ellipse((0.25, 0.15), (0.06, 0.03)))
    mesh = cylinder_channel(obstacles=obstacles)
    probe = diag.default_probe(mesh.points, mesh.node_type)
    assert probe.diameter == pytest.approx(0.06, rel=1e-3)  # the ellipse's y extent
    np.testing.assert_allclose(probe.obstacle_center, (0.25, 0.15), atol=1e-3)


def test_default_probe_without_an_obstacle_raises():
    traj = synthetic_cfd_trajectory()
    with pytest.raises(diag.MissingFlowParameter, match="obstacle"):
        diag.default_probe(traj["mesh_pos"], traj["node_type"])


def test_inflow_mean_speed_of_a_parabola_is_exact():
    mesh = cylinder_channel()
    y = mesh.points[:, 1]
    u = np.zeros((2, len(mesh.points), 2))
    u[0, :, 0] = 1.5 * 0.8 * 4 * y * (0.41 - y) / 0.41**2  # u_mean 0.8
    assert diag.inflow_mean_speed(u, mesh.points, mesh.node_type) == pytest.approx(0.8, 1e-12)
    # Corners typed INFLOW (no wall node ends the inlet) give the same integral.
    types = mesh.node_type.copy()
    types[(mesh.points[:, 0] == 0) & (types == NodeType.WALL_BOUNDARY)] = NodeType.INFLOW
    assert diag.inflow_mean_speed(u, mesh.points, types) == pytest.approx(0.8, 1e-12)


def shedding_flow(mesh, *, frequency=2.5, u_mean=0.8, steps=200, dt=0.01):
    """A parabolic inflow plus a travelling transverse wave at `frequency` (a mock wake)."""
    x, y = mesh.points[:, 0], mesh.points[:, 1]
    t = dt * np.arange(steps)[:, None]
    u = np.zeros((steps, len(x), 2))
    u[..., 0] = 1.5 * u_mean * 4 * y * (0.41 - y) / 0.41**2
    u[..., 1] = 0.3 * np.sin(2 * np.pi * frequency * t - 8 * x)
    u[:, mesh.node_type != NodeType.NORMAL, 1] = 0.0
    return {
        "cells": mesh.cells[None].astype(np.int32),
        "mesh_pos": mesh.points[None].astype(np.float32),
        "node_type": mesh.node_type[None, :, None].astype(np.int32),
        "velocity": u.astype(np.float32),
    }


def test_flow_parameters_measure_the_trajectory_and_keep_given_values():
    traj = shedding_flow(cylinder_channel())
    params = diag.flow_parameters(traj, {"dt": 0.01})
    assert params.dt == 0.01
    assert params.diameter == pytest.approx(0.1, rel=1e-6)
    assert params.velocity_scale == pytest.approx(0.8, rel=1e-6)
    given = diag.flow_parameters(traj, dt=0.02, diameter=0.2, velocity_scale=1.0, probe=3)
    assert given == diag.FlowParameters(0.02, 0.2, 1.0, 3)
    with pytest.raises(diag.MissingFlowParameter, match="dt"):
        diag.flow_parameters(traj)


# ----------------------------------------------------------------------------- cloth strain


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_strain_is_zero_for_rigid_motions_and_exact_for_a_uniform_stretch():
    points, cells = jittered_mesh()
    flat = np.concatenate([points, np.zeros((len(points), 1))], 1)
    rigid = np.stack(
        [
            flat @ rotation(ax, ang).T + shift
            for ax, ang, shift in [
                ((0, 0, 1), 0.0, 0),
                ((1, 2, 3), 0.7, (1, -2, 5)),
                ((0, 1, 0), np.pi / 2, 0.3),
            ]
        ]
    )
    strain = diag.edge_strain(rigid, points, cells)
    num_edges = len(points) + len(cells) - 1  # Euler: V - E + F = 1 for a disc
    assert strain.shape == (3, num_edges)
    np.testing.assert_allclose(strain, 0, atol=1e-12)
    stretched = np.stack([(1 + eps) * rigid[1] for eps in (0.0, 0.05, -0.2)])
    np.testing.assert_allclose(
        diag.mean_abs_strain(stretched, points, cells), [0, 0.05, 0.2], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        diag.strain_error(stretched, rigid, points, cells), [0, 0.05, 0.2], rtol=1e-12, atol=1e-12
    )


def test_strain_of_one_stretched_edge():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    cells = np.array([[0, 1, 2]])
    world = np.array([[[0.0, 0, 0], [1.5, 0, 0], [0, 1, 0]]])  # edge 0-1 stretched by 1.5
    # Edges in unique_edges order: (0, 1), (0, 2), (1, 2); the last one goes from √2 to √3.25.
    expected = [[0.5, 0.0, math.sqrt(3.25 / 2) - 1]]
    np.testing.assert_allclose(diag.edge_strain(world, points, cells), expected, rtol=1e-12)


# ----------------------------------------------------------------------------- the dispatcher


def test_cfd_diagnostics_are_json_and_recover_the_shedding():
    truth = shedding_flow(cylinder_channel(), frequency=2.5)
    pred = dict(truth, velocity=truth["velocity"] * 1.1)
    pred["velocity"][150:] = np.nan  # the model blows up late
    out = diag.rollout_diagnostics(diag.FlowDiagnostics, pred, truth, meta={"dt": 0.01})
    json.dumps(out, allow_nan=False)
    steps = len(truth["velocity"])
    assert len(out["kinetic_energy_truth"]) == steps and len(out["kinetic_energy_model"]) == steps
    assert out["kinetic_energy_model"][0] == pytest.approx(1.21 * out["kinetic_energy_truth"][0])
    assert out["kinetic_energy_model"][-1] is None
    assert all(isinstance(v, float) for v in out["mean_abs_divergence_truth"])
    assert out["shedding_frequency_truth"] == pytest.approx(2.5, rel=0.01)
    assert out["strouhal_truth"] == pytest.approx(2.5 * 0.1 / 0.8, rel=0.01)
    assert out["strouhal_model"] is None
    assert out["diameter"] == pytest.approx(0.1, 1e-6) and out["dt"] == 0.01
    assert out["probe_x"] == pytest.approx(0.5, abs=0.03)


def test_cfd_diagnostics_without_an_obstacle_or_dt_leave_strouhal_out():
    traj = synthetic_cfd_trajectory()
    for meta in (None, {"dt": 0.01}):
        out = diag.rollout_diagnostics(diag.FlowDiagnostics, traj["velocity"], traj, meta=meta)
        json.dumps(out, allow_nan=False)
        assert out["strouhal_truth"] is None and out["strouhal_model"] is None
        assert len(out["mean_abs_divergence_model"]) == len(traj["velocity"])
    # Given parameters are enough, obstacle or not.
    out = diag.rollout_diagnostics(
        diag.FlowDiagnostics,
        traj,
        traj,
        dt=0.05,
        diameter=0.1,
        velocity_scale=1.0,
        probe=(0.5, 0.5),
    )
    assert out["probe_x"] is not None and out["dt"] == 0.05


def test_cloth_diagnostics_are_json():
    truth = synthetic_cloth_trajectory()
    pred = truth["world_pos"] * 1.01
    static = {k: truth[k] for k in ("mesh_pos", "cells")}
    out = diag.rollout_diagnostics(diag.ClothDiagnostics, pred, truth["world_pos"], static)
    json.dumps(out, allow_nan=False)
    assert sorted(out) == ["mean_abs_strain_model", "mean_abs_strain_truth", "strain_error"]
    assert out["mean_abs_strain_truth"][0] == pytest.approx(0, abs=1e-6)  # starts flat at rest
    assert out["strain_error"][0] == pytest.approx(0.01, rel=1e-4)


# ----------------------------------------------------------------------------- chunk by chunk


@pytest.mark.parametrize("chunks", [(200,), (1, 49, 50, 100), (7,) * 28 + (4,)])
def test_streamed_diagnostics_equal_the_whole_trajectory(chunks):
    truth = shedding_flow(cylinder_channel(), frequency=2.5)
    pred = truth["velocity"] * 1.1
    whole = diag.rollout_diagnostics(diag.FlowDiagnostics, pred, truth, meta={"dt": 0.01})
    streamed = diag.FlowDiagnostics(truth, meta={"dt": 0.01})
    start = 0
    for n in chunks:
        streamed.add(pred[start : start + n])
        start += n
    assert streamed.frames == 200
    out = streamed.result()
    assert out.keys() == whole.keys()
    for key, value in whole.items():  # equal up to the summation order of a matmul
        np.testing.assert_allclose(np.asarray(out[key], float), np.asarray(value, float), 1e-12)


def test_a_rollout_past_the_truth_keeps_the_model_series_and_scores_the_common_frames():
    truth = shedding_flow(cylinder_channel(), frequency=2.5, steps=150)
    longer = shedding_flow(cylinder_channel(), frequency=2.5, steps=220)["velocity"]
    d = diag.FlowDiagnostics(truth, meta={"dt": 0.01})
    d.add(longer[:100])
    d.add(longer[100:])
    out = d.result()
    assert len(out["kinetic_energy_model"]) == 220 and len(out["kinetic_energy_truth"]) == 150
    # The prediction is the truth on the common frames: same frequency, measured on them.
    assert out["shedding_frequency_model"] == out["shedding_frequency_truth"]
    short = diag.FlowDiagnostics(truth, meta={"dt": 0.01})
    short.add(longer[:60])  # a rollout shorter than the data: the truth is cut to it
    assert len(short.result()["kinetic_energy_truth"]) == 60


def test_cloth_strain_error_covers_the_frames_with_truth():
    truth = synthetic_cloth_trajectory(steps=10)
    pred = np.concatenate([truth["world_pos"], truth["world_pos"][-1:].repeat(5, 0)]) * 1.01
    d = diag.ClothDiagnostics(truth)
    d.add(pred[:8])
    d.add(pred[8:])
    out = d.result()
    assert len(out["strain_error"]) == 10 and len(out["mean_abs_strain_model"]) == 15
    # Scaling by 1.01 turns strain s into 1.01 (1 + s) - 1: an error of 0.01 (1 + s).
    strain = diag.edge_strain(truth["world_pos"], truth["mesh_pos"], truth["cells"])
    np.testing.assert_allclose(out["strain_error"], 0.01 * (1 + strain.mean(1)), rtol=1e-6)


def test_the_mesh_is_checked_before_any_frame_and_results_need_one():
    traj = synthetic_cfd_trajectory()
    flat = dict(traj, mesh_pos=traj["mesh_pos"] * np.array([1.0, 0.0], np.float32))
    with pytest.raises(ValueError, match="degenerate"):
        diag.FlowDiagnostics(flat)
    with pytest.raises(ValueError, match="add"):
        diag.FlowDiagnostics(traj).result()
    d = diag.FlowDiagnostics(traj)
    with pytest.raises(ValueError, match="frames"):
        d.add(traj["velocity"][:, :-1])


def test_summary_of_flow_diagnostics():
    truth = shedding_flow(cylinder_channel(), frequency=2.5)
    runs = [
        diag.rollout_diagnostics(
            diag.FlowDiagnostics, truth["velocity"] * scale, truth, meta={"dt": 0.01}
        )
        for scale in (1.0, 2.0)
    ]
    runs.append(dict(runs[1], strouhal_model=None))  # a model that lost its shedding
    s = diag.FlowDiagnostics.summarize(runs)
    assert s["strouhal_trajectories"] == 2
    assert s["strouhal_model"] == pytest.approx(s["strouhal_truth"], rel=1e-9)
    assert s["strouhal_truth"] == pytest.approx(0.3125, rel=0.01)  # 2.5 * 0.1 / 0.8
    # KE scales with the square of the velocity: ratios 1, 4 and 4.
    assert s["kinetic_energy_ratio_final"] == pytest.approx(3.0, rel=1e-9)
    truth_div = np.mean(runs[0]["mean_abs_divergence_truth"])
    assert s["mean_abs_divergence_truth"] == pytest.approx(truth_div, rel=1e-9)
    assert s["mean_abs_divergence_model"] == pytest.approx(truth_div * 5 / 3, rel=1e-9)
    empty = diag.FlowDiagnostics.summarize([])
    assert empty["strouhal_model"] is None and empty["strouhal_trajectories"] == 0
    cloth = diag.ClothDiagnostics.summarize(
        [{"strain_error": [0.0, 0.2], "mean_abs_strain_model": [0.1, 0.3, 9.0]}]
    )
    assert cloth["strain_error"] == pytest.approx(0.1)
    assert cloth["mean_abs_strain_model"] == pytest.approx(0.2)  # frames with truth only
    assert cloth["mean_abs_strain_truth"] is None


# ----------------------------------------------------------------------------- validation


def _flow_args():
    points, cells = grid_cells(4, 3)
    return np.zeros((5, len(points), 2)), points, cells


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda u, p, c: diag.divergence(u[..., :1], p, c),
            ValueError,
            r"velocity.*\[T >= 1, 12, 2\]",
        ),
        (lambda u, p, c: diag.kinetic_energy(u[0], p, c), ValueError, "velocity"),
        (lambda u, p, c: diag.kinetic_energy(u.astype(complex), p, c), TypeError, "real"),
        (lambda u, p, c: diag.kinetic_energy(u, p[:, :1], c), ValueError, "mesh_pos"),
        (lambda u, p, c: diag.kinetic_energy(u, p.astype(int), c), TypeError, "mesh_pos"),
        (lambda u, p, c: diag.kinetic_energy(u, p * np.nan, c), ValueError, "finite"),
        (lambda u, p, c: diag.kinetic_energy(u, p, c.astype(float)), TypeError, "cells"),
        (lambda u, p, c: diag.kinetic_energy(u, p, c + 5), ValueError, "0..11"),
        (lambda u, p, c: diag.kinetic_energy(u, p, c[:, :2]), ValueError, "cells"),
        (lambda u, p, c: diag.kinetic_energy(u, p, c, np.ones(3, bool)), ValueError, "mask"),
        (lambda u, p, c: diag.kinetic_energy(u, p, c, np.ones(12)), TypeError, "mask"),
        (lambda u, p, c: diag.nodal_areas(p, np.array([[0, 1, 2]]) * 0), ValueError, "degenerate"),
        (lambda u, p, c: diag.shedding_frequency(u, p, probe=0, dt=0), ValueError, "dt"),
        (lambda u, p, c: diag.shedding_frequency(u, p, probe=0, dt="1"), TypeError, "dt"),
        (lambda u, p, c: diag.shedding_frequency(u, p, probe=12, dt=1), ValueError, "probe"),
        (lambda u, p, c: diag.shedding_frequency(u, p, probe=(1,), dt=1), ValueError, "probe"),
        (
            lambda u, p, c: diag.shedding_frequency(u, p, probe=0, dt=1, component=2),
            ValueError,
            "component",
        ),
        (lambda u, p, c: diag.shedding_frequency(u, p, probe=0, dt=1, skip=-1), ValueError, "skip"),
        (
            lambda u, p, c: diag.strouhal_number(
                u, p, probe=0, dt=1, diameter=-1, velocity_scale=1
            ),
            ValueError,
            "diameter",
        ),
        (lambda u, p, c: diag.default_probe(p, np.zeros(12)), TypeError, "node_type"),
        (lambda u, p, c: diag.default_probe(p, np.zeros(3, int)), ValueError, "node_type"),
        (
            lambda u, p, c: diag.inflow_mean_speed(u, p, np.zeros(12, int)),
            diag.MissingFlowParameter,
            "INFLOW",
        ),
        (
            lambda u, p, c: diag.edge_strain(np.zeros((2, 12, 3)), p * 0, c),
            ValueError,
            "degenerate|rest",
        ),
        (
            lambda u, p, c: diag.strain_error(np.zeros((2, 12, 3)), np.zeros((3, 12, 3)), p, c),
            ValueError,
            "equal shapes",
        ),
        (
            lambda u, p, c: diag.rollout_diagnostics(str, u, u, {"mesh_pos": p, "cells": c}),
            TypeError,
            "kind: expected a RolloutDiagnostics subclass",
        ),
        (
            lambda u, p, c: diag.rollout_diagnostics(
                diag.ClothDiagnostics, u, u, {"mesh_pos": p, "cells": c}, dt=1
            ),
            ValueError,
            "unknown",
        ),
        (
            lambda u, p, c: diag.rollout_diagnostics(diag.FlowDiagnostics, u, u),
            ValueError,
            "static",
        ),
        (
            lambda u, p, c: diag.rollout_diagnostics(diag.FlowDiagnostics, u, u, {"mesh_pos": p}),
            ValueError,
            "cells",
        ),
        (
            lambda u, p, c: diag.rollout_diagnostics(
                diag.FlowDiagnostics, {"x": u}, u, {"mesh_pos": p, "cells": c}
            ),
            ValueError,
            "'velocity'",
        ),
        (
            lambda u, p, c: diag.rollout_diagnostics(
                diag.FlowDiagnostics, u[:2], u, {"mesh_pos": p, "cells": c}
            ),
            ValueError,
            "equal shapes",
        ),
        (
            lambda u, p, c: diag.rollout_diagnostics(
                diag.FlowDiagnostics, u, u, {"mesh_pos": p, "cells": c}, dt=-1.0
            ),
            ValueError,
            "dt",
        ),
    ],
)
def test_validation_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(*_flow_args())
