"""The demo's pass check and report pieces, without training (tests/test_cli.py runs
the quick demo end to end)."""

from meshsim.diagnostics import ClothDiagnostics, FlowDiagnostics
from meshsim.runs import reports as demo


def rmse(model, persistence):
    keys = ("1", "10", "50", "all")
    return {"model": dict(zip(keys, model)), "persistence": dict(zip(keys, persistence))}


def test_the_full_demo_must_beat_persistence_at_every_horizon():
    assert demo.PASS_HORIZONS == ("1", "10", "50", "all")
    ok, at = demo.passes(rmse([0.01, 0.05, 0.2, 0.25], [0.04, 0.2, 0.3, 0.3]))
    assert ok and at == dict.fromkeys(demo.PASS_HORIZONS, True)
    # The lite model of the issue: better up to 50 steps, worse over the whole rollout.
    ok, at = demo.passes(rmse([0.013, 0.054, 0.20, 0.75], [0.045, 0.23, 0.28, 0.28]))
    assert not ok and at == {"1": True, "10": True, "50": True, "all": False}
    ok, at = demo.passes(rmse([None, 0.05, 0.2, 0.25], [0.04, 0.2, 0.3, 0.3]))  # a NaN
    assert not ok and not at["1"]


def test_the_quick_demo_keeps_its_check_and_missing_horizons_are_skipped():
    short = {
        "model": {"1": 0.5, "10": 0.1, "all": 0.9},
        "persistence": {"1": 0.1, "10": 0.2, "all": 0.3},
    }
    ok, at = demo.passes(short, demo.QUICK_PASS_HORIZONS)
    assert ok and at == {"10": True}  # h=1 and all are worse, but not checked in quick mode
    assert demo.passes(short)[0] is False
    assert demo.passes({"model": {"all": 0.1}, "persistence": {"all": 0.2}}, ("10",)) == (
        False,
        {},
    )


def test_diagnostics_section():
    summary = {
        "strouhal_model": 0.07,
        "strouhal_truth": 0.284,
        "strouhal_trajectories": 2,
        "mean_abs_divergence_model": 4.24,
        "mean_abs_divergence_truth": 1.45,
        "kinetic_energy_ratio_final": None,
    }
    text = demo.diagnostics_section({"summary": summary}, FlowDiagnostics)
    assert "| Strouhal number | 0.07 | 0.284 |" in text
    assert "| mean \\|∇·u\\| | 4.24 | 1.45 |" in text
    assert "| n/a | 1 |" in text and "kinetic_energy.png" in text
    cloth = {"strain_error": 0.01, "mean_abs_strain_model": 0.02, "mean_abs_strain_truth": 0.015}
    assert "| 0.01 | 0 |" in demo.diagnostics_section({"summary": cloth}, ClothDiagnostics)
    assert "No physical diagnostics" in demo.diagnostics_section(None, FlowDiagnostics)
