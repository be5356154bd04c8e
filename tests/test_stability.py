"""experiments/stability.py: the smoke study runs end to end and reports every config.

The smoke mode trains each configuration for one short chunk at tiny sizes, so the
numbers are meaningless; what is pinned is the shape of the results and the
bookkeeping. Compilation dominates (about a minute of CPU per task), so each task
is its own test and the suite's workers run them side by side.
"""

import importlib.util
import json
import math
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "experiments", "stability.py")


def _load_study():
    spec = importlib.util.spec_from_file_location("stability_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def study():
    return _load_study()


def test_horizon_boundaries_and_plan(study):
    """The chunk planner stops at the budget and probes each new curriculum horizon."""
    from meshsim.config import apply_overrides

    base = study.base_config("cylinder", "/nonexistent", smoke=True)
    config = apply_overrides(
        base, ["train.accumulate_steps=10", "train.unroll_steps=3", "train.unroll_schedule=20"]
    )
    assert [study._horizon(config, s) for s in (10, 29, 30, 49, 50, 500)] == [1, 1, 2, 2, 3, 3]
    assert study._next_boundary(config, 12) == 30
    assert study._next_boundary(config, 55) == math.inf
    samples = {1: [10.0]}  # 10 steps/s at horizon 1, horizon 2 not measured yet
    # 1 s left at step 15: 10 more steps, all at horizon 1.
    assert study._plan(config, samples, 15, 1.0, 5, 1.0) == 25
    # 10 s left: through the boundary at 30, then 5 probe steps at horizon 2.
    assert study._plan(config, samples, 15, 10.0, 5, 1.0) == 35
    samples[2] = [5.0]
    # 10 s left: 15 steps (1.5 s) at horizon 1, then 8.5 s × 5 = 42 steps at horizon 2,
    # which crosses 50: 20 steps (4 s) at horizon 2, and horizon 3 is probed.
    assert study._plan(config, samples, 15, 10.0, 5, 1.0) == 55


def test_first_exceed(study):
    import numpy as np

    persistence = np.array([0.0, 1.0, 1.0, 1.0])
    assert study._first_exceed(np.array([0.0, 0.5, 2.0, 0.5]), persistence) == 2
    assert study._first_exceed(np.array([0.0, 0.5, 0.5, 0.5]), persistence) is None
    assert study._first_exceed(np.array([0.0, 0.5, np.nan, 0.5]), persistence) == 2


# One test per task, so that the suite's workers run them side by side.
@pytest.mark.parametrize("task", ["cylinder", "cloth"])
def test_smoke_study_reports_every_config(study, tmp_path, task):
    out, workdir = tmp_path / "results", tmp_path / "runs"
    argv = ["--smoke", "--tasks", task, "--out", str(out), "--workdir", str(workdir)]
    assert study.main(argv) == 0
    results = json.loads((out / "stability.json").read_text())
    assert results["smoke"] is True
    assert set(results["tasks"]) == {task}
    for task, t in results["tasks"].items():
        expected = {v.name for v in study.variants(task)}
        assert set(t["configs"]) == expected, task
        for name, c in t["configs"].items():
            assert "first_exceed_step" in c, (task, name)
            if c.get("error"):  # a diverged run is reported, not hidden
                assert c["rmse"] is None
                continue
            assert c["steps_trained"] > 0
            for who in ("model", "persistence"):
                rmse = c["rmse"][who]
                assert {"1", "10", "all"} <= set(rmse), (task, name, who)
                assert all(v is not None and math.isfinite(v) for v in rmse.values())
            first = c["first_exceed_step"]
            assert first is None or 1 <= first <= c["rollout_steps"]
        # The baseline always trains: it is the reference of the table.
        assert t["configs"]["onestep"].get("error") is None
    md = (out / "stability.md").read_text()
    for task, t in results["tasks"].items():
        assert f"## {task}" in md
        for name in t["configs"]:
            assert name in md
