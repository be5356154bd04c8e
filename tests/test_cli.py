"""The `meshsim` command, the dataset generator and the quick demo, end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from meshsim.cli import main
from meshsim.data import open_dataset
from meshsim.solvers.generate import generate_dataset
from meshsim.solvers.seeds import trajectory_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_and_version(capsys):
    out = subprocess.run(
        [sys.executable, "-m", "meshsim.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("meshsim ")
    assert main([]) == 0
    assert "generate" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["generate", "weather", "--out", "x"])


def test_trajectory_seeds_differ_across_splits_and_indices():
    seeds = {trajectory_seed(0, s, i) for s in ("train", "valid") for i in range(50)}
    assert len(seeds) == 100


def test_generate_is_deterministic_and_inspectable(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for out in (a, b):
        generate_dataset("flag", out, trajectories=2, steps=4, seed=7, mesh_resolution=0.1)
    ta, tb = open_dataset(a, "train"), open_dataset(b, "train")
    for i in range(2):
        for k, v in ta[i].items():
            np.testing.assert_array_equal(v, tb[i][k])
    assert not np.array_equal(ta[0]["world_pos"], ta[1]["world_pos"])
    assert main(["inspect", a, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.dumps(report).count("world_pos") >= 1


@pytest.mark.skipif(
    not os.path.exists(os.path.join(REPO, "experiments", "cylinder_flow_lite.py")),
    reason="needs the repository's experiments/",
)
def test_quick_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    cache = tmp_path / "jax_cache"
    monkeypatch.setenv("MESHSIM_COMPILATION_CACHE", str(cache))
    workdir = str(tmp_path / "demo")
    code = main(["demo", "--workdir", workdir, "--quick"])
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    rmse = metrics["rollout_rmse"]
    assert set(rmse) == {"model", "persistence"}
    assert {"1", "10", "all"} <= set(rmse["model"])
    assert code == (0 if metrics["beats_persistence"] else 1)
    assert set(metrics["beats_persistence_at"]) == {"10"}  # the quick check: 10 and 50 if there
    assert len(metrics["rollout_rmse_per_step"]["model"]) == metrics["steps"]
    summary = metrics["diagnostics"]["summary"]
    assert {"strouhal_model", "strouhal_truth", "mean_abs_divergence_model"} <= set(summary)
    for name in ("report.md", "rollout.gif", "comparison.png", "loss.png", "rmse.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0
    assert os.path.getsize(os.path.join(workdir, "kinetic_energy.png")) > 0
    report = open(os.path.join(workdir, "report.md")).read()
    assert "![rollout RMSE" in report and "| Strouhal number |" in report
    assert "first h steps of the" in report
    assert any(cache.iterdir()), "compiled steps are stored in the persistent cache"
    # Running it again resumes: nothing is regenerated or retrained.
    mtime = os.path.getmtime(os.path.join(workdir, "data", "train.h5"))
    main(["demo", "--workdir", workdir, "--quick"])
    assert os.path.getmtime(os.path.join(workdir, "data", "train.h5")) == mtime
