"""`meshsim demo` on the particles preset, end to end at its quick size: SPH dam-break data,
a GNS with edges rebuilt every step, rollouts scored against constant velocity, figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

from meshsim.cli import main


def test_quick_particles_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "demo"
    preset = Path(__file__).resolve().parent.parent / "experiments" / "particles_dam_break.py"
    code = main(["demo", "--config", str(preset), "--workdir", str(work), "--quick"])
    metrics = json.loads((work / "metrics.json").read_text())
    summary = metrics["diagnostics"]["summary"]
    for key in ("mse5", "mse20", "mseall", "kinetic_energy_mse"):
        for who in ("model", "baseline"):
            assert math.isfinite(summary[f"{key}_{who}"]), (key, who, summary)
    assert summary["penetrations_truth"] == 0  # the SPH walls hold
    # the exit code is the verdict: persistence and the particles' own bar
    gate = summary["mse5_model"] < summary["mse5_baseline"] and summary["penetrations_model"] == 0
    assert metrics["diagnostics_gate"] == (
        gate
        and summary["mse20_model"] < summary["mse20_baseline"]
        and summary["kinetic_energy_mse_model"] < summary["kinetic_energy_mse_baseline"]
    )
    assert metrics["passed"] == (metrics["beats_persistence"] and metrics["diagnostics_gate"])
    assert code == (0 if metrics["passed"] else 1)
    report = (work / "report.md").read_text()
    assert "| diagnostic | model | constant velocity |" in report and "MSE-20" in report
    for name in ("rollout.gif", "comparison.png", "loss.png"):
        assert (work / name).stat().st_size > 0


def test_training_grows_a_short_edge_budget_and_says_so(tmp_path, monkeypatch, caplog):
    """A task whose structure reserves far too few edge slots: the first trained step
    overflows, is not applied, and the run grows the budget, recompiles and goes on."""
    import logging

    from meshsim.config import apply_overrides, load_config
    from meshsim.data import write_hdf5_split
    from meshsim.data.meta import infer_meta, save_meta
    from meshsim.runs import run_training
    from meshsim.tasks import ParticleTask

    sys_path = Path(__file__).resolve().parent
    monkeypatch.syspath_prepend(str(sys_path))
    from test_particles import ballistic

    data = tmp_path / "data"
    trajectories = [ballistic(seed, frames=12)[0] for seed in (0, 1)]
    meta = infer_meta(trajectories[0], static_fields=("particle_type",))
    meta["particles"] = ballistic()[1]["particles"]
    data.mkdir()
    save_meta(meta, data)
    write_hdf5_split(data, "train", trajectories, meta)
    monkeypatch.setattr(ParticleTask, "edge_capacity", lambda self, positions: 64)
    preset = Path(__file__).resolve().parent.parent / "experiments" / "particles_dam_break.py"
    config = apply_overrides(
        load_config(str(preset)),
        [
            f"data.path={data}",
            "train.steps=6",
            "train.accumulate_steps=2",
            "train.log_every=2",
            "train.checkpoint_every=6",
            "model.latent_size=8",
            "model.num_message_passing_steps=1",
        ],
    )
    with caplog.at_level(logging.WARNING, logger="meshsim.runs.train"):
        state = run_training(config, str(tmp_path / "run"), progress=False)
    assert "growing the budget" in caplog.text and "was not applied" in caplog.text
    assert int(state.step) == 6
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records[0].get("overflow", 0) >= 1  # the first trained step: not applied
    assert all("overflow" not in r for r in records[1:])  # the grown budget held
    assert math.isfinite(records[-1]["loss"])
