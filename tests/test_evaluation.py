"""`meshsim.evaluation.evaluate_trajectories`: what metrics.json holds for mesh tasks.

Tiny untrained models on the synthetic trajectories of conftest: the checks are
about consistency (per-step RMSE against the horizon RMSE, diagnostics against
the rollout written to disk), not about accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from meshsim import diagnostics as diag
from meshsim.evaluation import (
    RolloutsWriter,
    evaluate_trajectories,
    format_summary,
    load_rollouts_h5,
    rmse_per_step,
    score_rollout,
)
from tests.test_streaming_rollout import CASES, setup


@pytest.mark.parametrize("task, make", CASES, ids=["cfd", "cloth"])
def test_per_step_rmse_matches_the_horizons_and_diagnostics_match_the_file(task, make, tmp_path):
    traj, sim, state = setup(task, make)
    path = tmp_path / "r.h5"
    with RolloutsWriter(path, sim.task.state_field) as writer:
        result = evaluate_trajectories(
            sim, state, [traj], steps=None, writer=writer, meta={"dt": 0.05}
        )
    json.dumps(result, allow_nan=False)
    assert set(result) == {
        "rollout_rmse",
        "rollout_rmse_per_step",
        "steps",
        "num_trajectories",
        "diagnostics",
    }
    steps = result["steps"]
    for name in ("model", "persistence"):
        per_step = np.asarray(result["rollout_rmse_per_step"][name])
        assert per_step.shape == (steps,)
        # One trajectory: RMSE-h is the root of the mean of the per-step MSE over 1..h.
        rmse = result["rollout_rmse"][name]
        np.testing.assert_allclose(rmse["1"], per_step[0], rtol=1e-6)
        np.testing.assert_allclose(rmse["all"], np.sqrt(np.mean(per_step**2)), rtol=1e-6)
    # The persistence error is 0 nowhere but frame 0 (the state changes every step).
    assert min(result["rollout_rmse_per_step"]["persistence"]) > 0
    d = result["diagnostics"]
    assert d["task"] == task.name and len(d["trajectories"]) == 1
    [rollout] = load_rollouts_h5(path)
    expected = diag.rollout_diagnostics(
        task.diagnostics, rollout["pred"], rollout["truth"], traj, meta={"dt": 0.05}
    )
    assert d["trajectories"][0].keys() == expected.keys()
    for key, value in expected.items():  # streamed chunk by chunk = computed at once
        np.testing.assert_allclose(
            np.asarray(d["trajectories"][0][key], float), np.asarray(value, float), rtol=1e-6
        )
    assert d["summary"] == task.diagnostics.summarize(d["trajectories"])


def test_rollout_past_the_data_diagnoses_every_predicted_frame():
    task, make = CASES[0]
    traj, sim, state = setup(task, make)
    known = traj["velocity"].shape[0]
    score = score_rollout(sim, state, traj, steps=known + 10, diagnose=True, meta={"dt": 0.05})
    assert score.steps == known + 10
    assert score.model_mse.shape == (known - 1,)  # errors only where there is truth
    d = score.diagnostics
    assert len(d["kinetic_energy_model"]) == known + 11
    assert len(d["kinetic_energy_truth"]) == known


def test_a_mesh_the_diagnostics_refuse_is_reported_not_fatal(caplog):
    task, make = CASES[0]
    traj, sim, state = setup(task, make)
    pos = traj["mesh_pos"].copy()
    cells = traj["cells"][0]
    pos[0, cells[0, 1]] = pos[0, cells[0, 0]]  # a degenerate cell (repeated point)
    bad = dict(traj, mesh_pos=pos)
    result = evaluate_trajectories(sim, state, [bad, traj], steps=3)
    first, second = result["diagnostics"]["trajectories"]
    assert "degenerate" in first["error"] and "kinetic_energy_model" in second
    assert "no diagnostics" in caplog.text
    assert result["rollout_rmse"]["model"]["all"] > 0


def test_rmse_per_step_averages_the_mse_of_the_trajectories_that_have_the_step():
    out = rmse_per_step([np.array([1.0, 4.0]), np.array([9.0]), np.array([np.nan, 16.0, 1.0])])
    # step 1: a NaN trajectory makes it None; step 2: (4 + 16) / 2; step 3: 1 alone.
    assert out[0] is None
    np.testing.assert_allclose(out[1:], [np.sqrt(10.0), 1.0])


def test_format_summary_shows_rmse_and_diagnostics():
    metrics = {
        "num_trajectories": 2,
        "steps": 50,
        "rollout_rmse": {
            "model": {"1": 0.01, "10": 0.05, "all": 0.2},
            "persistence": {"1": 0.04, "10": 0.2, "all": None},
        },
        "diagnostics": {
            "task": "cfd",
            "summary": {
                "strouhal_model": 0.2,
                "strouhal_truth": 0.21,
                "strouhal_trajectories": 2,
                "mean_abs_divergence_model": 1.5,
                "mean_abs_divergence_truth": 1.2,
                "kinetic_energy_ratio_final": 1.1,
            },
        },
    }
    text = format_summary(metrics, diag.FlowDiagnostics)
    assert "h=10" in text and "0.05" in text and "n/a" in text
    assert "Strouhal number: model 0.2, truth 0.21" in text
    assert "1.1" in text and len(text.splitlines()) == 7
    assert len(format_summary(metrics).splitlines()) == 4  # no diagnostics class: RMSE only
    cloth = dict(metrics, diagnostics={"summary": dict.fromkeys(diag_keys_cloth(), 0.01)})
    assert "strain error |strain_model − strain_truth|: model 0.01" in format_summary(
        cloth, diag.ClothDiagnostics
    )


def diag_keys_cloth():
    return ("strain_error", "mean_abs_strain_model", "mean_abs_strain_truth")
