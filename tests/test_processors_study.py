"""experiments/processors.py: its configurations and its report (the study itself trains
for minutes per configuration; `--smoke` runs it end to end in ~5 min, outside the suite).

The variants pair each block at the same sizes (a transformer head 16 wide), every
variant's overrides are valid settings of its preset, and the report turns results
into one table per task with the persistence row and per-trajectory diagnostics.
"""

from experiments import processors
from meshsim.config import apply_overrides


def test_each_size_has_both_blocks_with_valid_settings(tmp_path):
    for task in processors.PRESETS:
        base = processors.base_config(task, str(tmp_path), smoke=False)
        names = [name for name, _ in processors.variants(task, smoke=False)]
        sizes = list(dict.fromkeys(name.split("_")[1] for name in names))
        assert len(sizes) == 2
        assert names == [f"{b}_{s}" for s in sizes for b in ("interaction", "transformer")]
        for name, overrides in processors.variants(task, smoke=False):
            config = apply_overrides(base, overrides)
            assert config.model.block == name.split("_")[0]
            latent, steps = map(int, name.split("_")[1].split("x"))
            assert (config.model.latent_size, config.model.num_message_passing_steps) == (
                latent,
                steps,
            )
            if config.model.block == "transformer":
                assert config.model.num_heads * 16 == latent
        assert base.data.path.startswith(str(tmp_path))
        assert base.train.checkpoint_every > 1_000_000  # chunks stop it, not the schedule


def test_report_has_a_row_per_config_and_the_persistence_row():
    rmse = {"1": 0.01, "10": 0.05, "50": 0.1, "all": 0.2}
    trajectory = {"strouhal_model": 0.2, "strouhal_truth": 0.25, "kinetic_energy_ratio_final": 0.9}
    cyl = {
        "steps_trained": 10,
        "steps_per_s": {"1": 5.0},
        "parameters": 1234,
        "scores": {"rmse": {"model": rmse, "persistence": rmse}, "trajectories": [trajectory] * 2},
    }
    lead = {"z": {"rmse": 100.0, "persistence": 200.0, "acc": 0.9}}
    sw = {**cyl, "scores": {"24": lead, "72": lead}}
    results = {
        "machine": {"cpu_count": 2, "jax": "x", "date": "today"},
        "smoke": False,
        "tasks": {
            "cylinder": {"preset": "p", "budget_s": 1, "configs": {"a": cyl, "b": cyl}},
            "shallow_water": {"preset": "q", "budget_s": 1, "configs": {"a": sw}},
        },
    }
    text = processors.markdown(results)
    assert text.count("| a | 1,234 | 10 | 5.00 |") == 2 and "| b | 1,234" in text
    assert "| persistence | | | | 0.01 | 0.05 | 0.1 | 0.2 | | |" in text
    assert "0.2/0.25, 0.2/0.25 | 0.9, 0.9 |" in text  # per trajectory
    assert "100 / 0.9 | 100 / 0.9 |" in text and "| persistence | | | | 200 / — | 200 / — |" in text


def test_recipes_vary_the_demo_recipe_with_one_block(tmp_path):
    base = processors.base_config("cylinder", str(tmp_path), smoke=False)
    configs = {
        name: apply_overrides(base, overrides)
        for name, overrides in processors.variants("cylinder", False, recipes="transformer")
    }
    assert {c.model.block for c in configs.values()} == {"transformer"}
    assert configs["bundle16_noise0.02"].model.bundle_steps == 16  # the preset's recipe
    assert configs["bundle16_noise0.005"].task.noise_std == 0.005
    assert configs["bundle8_pushforward2"].train.unroll_mode == "pushforward"
