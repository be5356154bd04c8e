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
    assert config.task == "weather" and config.weather.mesh_splits == 6
    assert module.NUM_CHANNELS == 227
    count = module.count_parameters()
    assert f"Parameters: {count:,}" in module.__doc__
    assert 30e6 < count < 40e6  # the paper reports 36.7M


def test_shallow_water_preset_loads():
    _, path = _module("weather_shallow_water")
    config = load_config(path, ["train.steps=10"])
    assert config.model.name == "graphcast" and config.train.unroll_steps == 3
