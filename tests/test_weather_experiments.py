"""The weather presets: they load, validate, and the 1° docstring's parameter count is true."""

import importlib.util
import os

from meshsim.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module(name):
    path = os.path.join(ROOT, "experiments", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def test_graphcast_1deg_parameter_count_matches_its_docstring():
    module, path = _module("graphcast_1deg")
    config = load_config(path)
    assert config.task.name == "weather" and config.task.options["mesh_splits"] == 6
    assert module.NUM_CHANNELS == 227
    count = module.count_parameters()
    assert f"Parameters: {count:,}" in module.__doc__
    assert count == 36_343_011  # the figure the docstring states (the paper reports 36.7M)
    from meshsim.models import graphcast_param_count

    sizes = module.paper_model().task.node_feature_sizes
    assert (sizes["grid"], sizes["mesh"]) == (469, 469)
    assert count == graphcast_param_count(grid_inputs=469, mesh_inputs=469, output_size=227)


def test_shallow_water_preset_loads():
    _, path = _module("weather_shallow_water")
    config = load_config(path, ["train.steps=10"])
    assert config.model.name == "graphcast" and config.train.unroll_steps == 3
    # its 72 h fine-tuning: the same data, graph and network, 12-step rollouts throughout
    _, path_72h = _module("weather_shallow_water_72h")
    tuned = load_config(path_72h)
    base = load_config(path)
    assert (tuned.data, tuned.task, tuned.model) == (base.data, base.task, base.model)
    assert (tuned.train.unroll_steps, tuned.train.unroll_schedule) == (12, 0)
    assert tuned.data.generate_steps >= tuned.train.unroll_steps + 1  # one window fits


def test_models_own_their_defaults_and_presets_state_only_what_they_change():
    """`model.name=graphcast` alone gives GraphCast's published structure (latent 512,
    16 mesh steps, one hidden layer, swish); MeshGraphNet keeps its own (128, 15, 2,
    relu). The shallow-water preset states only its size and gets the rest."""
    from meshsim.config import ExperimentConfig, ModelConfig, apply_overrides
    from meshsim.runs import build_model
    from meshsim.tasks import cfd_task
    from meshsim.tasks.weather import WeatherTask

    task = WeatherTask(output_size=3, mesh_splits=1)
    gc = build_model(apply_overrides(ExperimentConfig(), ["model.name=graphcast"]), task)
    structure = (gc.latent_size, gc.num_message_passing_steps, gc.mlp_hidden_layers)
    assert structure + (gc.activation,) == (512, 16, 1, "swish")
    mgn = build_model(ExperimentConfig(), cfd_task())
    structure = (mgn.latent_size, mgn.num_message_passing_steps, mgn.mlp_hidden_layers)
    assert structure + (mgn.activation,) == (128, 15, 2, "relu")
    _, path = _module("weather_shallow_water")
    config = load_config(path)
    assert config.model == ModelConfig(
        name="graphcast", latent_size=64, num_message_passing_steps=4
    )
    small = build_model(config, task)
    assert (small.latent_size, small.mlp_hidden_layers, small.activation) == (64, 1, "swish")


def test_diurnal_preset_is_the_shallow_water_preset_with_the_diurnal_channel():
    import dataclasses

    _, base_path = _module("weather_shallow_water")
    module, path = _module("weather_diurnal")
    base, config = load_config(base_path), load_config(path)
    assert config.data.generate_diurnal and not base.data.generate_diurnal
    assert config.data.generate_domain == "shallow_water"
    options = config.task.options
    assert options["radiation"] == "step_mean"
    assert options["variable_weights"] == ("2m_temperature=5",)
    task = dataclasses.replace(config.task, options={"mesh_splits": options["mesh_splits"]})
    assert dataclasses.replace(config, name=base.name, data=base.data, task=task) == base
    assert module.QUICK_OVERRIDES == _module("weather_shallow_water")[0].QUICK_OVERRIDES
