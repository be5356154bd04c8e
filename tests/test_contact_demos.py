"""`meshsim demo` on the contact presets, end to end at their quick size: built-in data
(the finite-element plate, the cloth on a sphere), a MeshGraphNet with world edges,
rollouts scored against persistence with penetrations counted, a GIF."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from meshsim.cli import main

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


@pytest.mark.parametrize(
    "preset, parts",
    [("deforming_plate_lite.py", ("position", "stress")), ("sphere_simple_lite.py", ("position",))],
)
def test_quick_contact_demo(tmp_path, monkeypatch, preset, parts):
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "demo"
    code = main(["demo", "--config", str(EXPERIMENTS / preset), "--workdir", str(work), "--quick"])
    metrics = json.loads((work / "metrics.json").read_text())
    summary = metrics["diagnostics"]["summary"]
    assert summary["penetrations_per_frame_truth"] == 0  # the solvers' contact holds
    for part in parts:
        for h in ("1", "10", "all"):
            for who in ("model", "persistence"):
                value = summary[f"rmse_{part}_{h}_{who}"]
                assert value is None or math.isfinite(value), (part, h, who)
        assert math.isfinite(summary[f"rmse_{part}_all_model"])
    assert metrics["passed"] == (metrics["beats_persistence"] and metrics["diagnostics_gate"])
    assert code == (0 if metrics["passed"] else 1)
    report = (work / "report.md").read_text()
    assert "penetrating nodes per frame" in report and "RMSE, all steps" in report
    for name in ("rollout.gif", "loss.png"):
        assert (work / name).stat().st_size > 0
