"""MeshGraphNets' contact and compressible tasks: world edges, composite states, and
training from TFRecords in the published layouts (deforming_plate, sphere_simple,
airfoil), with penetrations and per-part RMSE in `meshsim evaluate`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contact_data import (  # noqa: E402
    airfoil_meta,
    airfoil_trajectory,
    box_tets,
    icosahedron,
    plate_meta,
    plate_trajectory,
    sphere_meta,
    sphere_trajectory,
)
from test_tfrecord import mgn_record, write_hand_split  # noqa: E402

from meshsim.diagnostics import penetrations, surface_faces  # noqa: E402
from meshsim.graph import edges_from_cells  # noqa: E402
from meshsim.graph.membership import edges_in  # noqa: E402
from meshsim.tasks import WORLD_EDGES, get_task  # noqa: E402

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def test_edges_in_matches_a_set_lookup():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 40, (300, 2))
    query = np.concatenate([ref[:100], rng.integers(0, 40, (200, 2))])
    mask = rng.random(300) < 0.8
    got = edges_in(
        jnp.asarray(query[:, 0]),
        jnp.asarray(query[:, 1]),
        jnp.asarray(ref[:, 0]),
        jnp.asarray(ref[:, 1]),
        jnp.asarray(mask),
    )
    real = {tuple(e) for e in ref[mask]}
    assert np.array_equal(np.asarray(got), [tuple(q) in real for q in query])
    assert not np.asarray(
        edges_in(jnp.arange(3), jnp.arange(3), jnp.zeros(0, int), jnp.zeros(0, int))
    ).any()


@pytest.mark.parametrize(
    "name, make, meta",
    [
        ("deforming_plate", plate_trajectory, plate_meta),
        ("sphere_simple", sphere_trajectory, sphere_meta),
    ],
)
def test_world_edges_are_the_close_pairs_the_mesh_does_not_join(name, make, meta):
    trajectory = make(1, 8)
    task = get_task(name, meta=meta(8), world_radius=0.06)
    structure = task.structure(trajectory)
    cells = trajectory["cells"][0]
    mesh = {tuple(e) for e in np.stack(edges_from_cells(cells), -1)}
    found = 0
    for t in (1, 4, 6):
        window = task.window(trajectory, t, structure)
        built, needed = jax.jit(task.dynamic_structure)(window.fields, structure)
        world = built.edge_sets[WORLD_EDGES]
        got = {(int(s), int(r)) for s, r, m in zip(world.senders, world.receivers, world.mask) if m}
        x = trajectory["world_pos"][t].astype(np.float64)
        pairs = cKDTree(x).query_pairs(0.06 - 1e-6)
        close = {(i, j) for i, j in pairs} | {(j, i) for i, j in pairs}
        assert got == close - mesh  # none on the mesh, nothing missing
        found += len(got)
        assert int(needed[WORLD_EDGES]) == len(close)  # slots needed count mesh pairs too
        graph = task.build_graph(window.fields, built)
        feats = np.asarray(graph.edge_sets[WORLD_EDGES].features)[np.asarray(world.mask)]
        rel = (
            x[np.asarray(world.senders)[np.asarray(world.mask)]]
            - x[np.asarray(world.receivers)[np.asarray(world.mask)]]
        )
        np.testing.assert_allclose(feats[:, :3], rel, atol=1e-6)
        np.testing.assert_allclose(feats[:, 3], np.linalg.norm(rel, axis=1), atol=1e-6)
    assert found  # the frames tested do have contact pairs


def test_plate_rollout_with_true_outputs_reproduces_the_data():
    """Targets and integration invert each other (positions by change, stress as a
    value), and the actuator's input at each step is its true next velocity."""
    trajectory = plate_trajectory(2, 7)
    task = get_task("deforming_plate", meta=plate_meta(7))
    structure = task.structure(trajectory)
    fields = task.window(trajectory, 0, structure).fields
    prescribed = task.prescribed_frames(trajectory, 0, 6)
    truth = task.state(trajectory)
    assert truth.shape[-1] == 4 and task.node_feature_sizes == {"mesh": 12}
    for k in range(6):
        fields = {**fields, f"target|{task.state_field}": truth[k + 1]}
        out = task.target(fields)
        np.testing.assert_allclose(out[:, 3], truth[k + 1][:, 3])  # stress: the value
        nxt = task.integrate(fields, out)
        features = task.node_features(fields)
        actuator = np.asarray(fields["node_type"]) == 1
        np.testing.assert_allclose(
            np.asarray(features)[actuator, :3],
            trajectory["world_pos"][k + 1][actuator] - trajectory["world_pos"][k][actuator],
            atol=1e-6,
        )
        assert not np.asarray(features)[~actuator, :3].any()
        fields = task.advance(fields, nxt, prescribed[k])
        np.testing.assert_allclose(fields[task.state_field], truth[k + 1], atol=1e-6)


def test_airfoil_state_inputs_and_noise():
    trajectory = airfoil_trajectory(0, 5)
    task = get_task("airfoil")
    state = task.state(trajectory)
    assert state.shape == (5, 35, 4) and task.state_field == "velocity+density+pressure"
    np.testing.assert_array_equal(state[..., 3], trajectory["pressure"][..., 0])
    assert task.node_feature_sizes == {"mesh": 3 + 9}  # velocity, density, node type
    fields = task.window(trajectory, 1, task.structure(trajectory)).fields
    noisy = task.add_noise(fields, jax.random.key(0), jnp.ones(35, bool))
    change = np.asarray(noisy[task.state_field] - fields[task.state_field])
    sim = np.isin(fields["node_type"], (0, 5))
    assert 5 < change[sim, :2].std() < 15  # σ = 10 on velocity
    assert 0.005 < change[sim, 2].std() < 0.015  # σ = 0.01 on density
    assert not change[:, 3].any() and not change[~sim].any()  # pressure, prescribed nodes
    target = task.target(fields)
    np.testing.assert_allclose(target[:, 3], trajectory["pressure"][2, :, 0])


def test_penetrations_count_nodes_inside_a_sphere_and_a_box():
    verts, faces = icosahedron(1.0, (0, 0, 0))
    inside = np.array([[0.0, 0.0, 0.0], [0.3, 0.2, -0.1]])
    outside = np.array([[2.0, 0, 0], [0, 0, 1.5], [0.0, 0.9, 0.9]])
    x = np.concatenate([inside, outside, verts])[None]
    obstacle = np.r_[np.zeros(5, bool), np.ones(12, bool)]
    simulated = ~obstacle
    count = penetrations(x, faces + 5, np.full(len(faces), -1), obstacle, simulated, 1e-3)
    assert count.tolist() == [2]
    box, tets = box_tets(3, 3, 3, (0, 0, 0), (1, 1, 1))
    f, opposite = surface_faces(tets)
    assert len(f) == 6 * 2 * 4  # 6 sides × 4 squares × 2 triangles
    points = np.array([[0.5, 0.5, 0.5], [0.9, 0.1, 0.2], [1.2, 0.5, 0.5], [0.5, 0.5, -0.01]])
    x = np.concatenate([points, box])[None]
    obstacle = np.r_[np.zeros(4, bool), np.ones(len(box), bool)]
    count = penetrations(x, f + 4, opposite + 4, obstacle, ~obstacle, 1e-3)
    assert count.tolist() == [2]


CASES = {
    "deforming_plate": (plate_trajectory, plate_meta, "deforming_plate.py"),
    "sphere_simple": (sphere_trajectory, sphere_meta, "sphere_simple.py"),
    "flag_dynamic": (sphere_trajectory, sphere_meta, "flag_dynamic.py"),
    "airfoil": (airfoil_trajectory, airfoil_meta, "airfoil.py"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_trains_from_published_tfrecords_and_evaluates(name, tmp_path):
    """Each preset trains from TFRecords laid out as MeshGraphNets publishes them (a
    hand-built encoder, not meshsim's writer) and `evaluate` scores it; contact tasks
    report penetrations and per-part RMSE against persistence."""
    from meshsim.config import apply_overrides, load_config
    from meshsim.runs import run_evaluation, run_training

    make, meta, preset = CASES[name]
    frames = 8
    data = tmp_path / "data"
    for split, seeds in (("train", (0, 1)), ("valid", (5,))):
        write_hand_split(data, split, meta(frames), [mgn_record(make(s, frames)) for s in seeds])
    config = apply_overrides(
        load_config(str(EXPERIMENTS / preset)),
        [
            f"data.path={data}",
            "train.steps=4",
            "train.accumulate_steps=2",
            "train.log_every=2",
            "train.checkpoint_every=4",
            "train.eval_every=0",
            "model.latent_size=8",
            "model.num_message_passing_steps=1",
        ],
    )
    run = tmp_path / "run"
    state = run_training(config, str(run), progress=False)
    assert int(state.step) == 4
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert math.isfinite(records[-1]["loss"])
    metrics = run_evaluation(str(run), split="valid")
    assert metrics["trajectories"] == 1 if "trajectories" in metrics else True
    text = json.dumps(metrics)
    if name == "airfoil":
        assert "penetrations" not in text
        return
    summary = metrics["diagnostics"]["summary"]
    assert summary["penetrations_per_frame_truth"] == 0
    assert summary["penetrations_per_frame_model"] is not None
    for part in ("position", "stress") if name == "deforming_plate" else ("position",):
        for h in ("1", "all"):
            for who in ("model", "persistence"):
                assert math.isfinite(summary[f"rmse_{part}_{h}_{who}"]), (part, h, who)


def test_plate_rollout_plots_as_a_moving_surface(tmp_path):
    """`meshsim plot` of a plate: its tetrahedra drawn by their surface triangles, at the
    positions part of the state."""
    from meshsim.plotting.mesh import animate_cloth

    trajectory = plate_trajectory(0, 4)
    task = get_task("deforming_plate", meta=plate_meta(4))
    faces, _ = surface_faces(trajectory["cells"][0])
    states = task.state(trajectory)
    paths = animate_cloth(task.plot_positions(states), faces, tmp_path / "plate.gif", every=1)
    assert all(Path(p).stat().st_size > 0 for p in paths)


def test_inspect_counts_world_edges(tmp_path, capsys):
    """`meshsim inspect --world-radius` counts world edges: pairs within the radius that
    no mesh edge joins, as a brute-force count over the same frames says."""
    from meshsim.cli import main

    frames = 8
    trajectories = [sphere_trajectory(s, frames) for s in (0, 1)]
    write_hand_split(
        tmp_path / "d", "train", sphere_meta(frames), [mgn_record(t) for t in trajectories]
    )
    assert main(["inspect", str(tmp_path / "d"), "--world-radius", "0.06", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = []
    for t in trajectories:
        cells = t["cells"][0]
        mesh = {tuple(sorted(e)) for e in np.stack(edges_from_cells(cells), -1).tolist()}
        most = 0
        for f in np.unique(np.linspace(0, frames - 1, 8).astype(int)):
            x = t["world_pos"][f].astype(np.float64)
            d = np.linalg.norm(x[:, None] - x[None], axis=-1)
            i, j = np.nonzero(np.triu(d < 0.06, 1))
            most = max(most, 2 * sum((a, b) not in mesh for a, b in zip(i.tolist(), j.tolist())))
        expected.append(most)
    stats = report["splits"]["train"]["world_edges"]
    assert stats["max"] == max(expected) > 0 and stats["min"] == min(expected)
    assert main(["inspect", str(tmp_path / "d"), "--world-radius", "0.06"]) == 0
    assert "world edges" in capsys.readouterr().out
