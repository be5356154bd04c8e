"""Experiment configuration: frozen, typed dataclasses with dotted overrides.

Presets live in `experiments/<name>.py` as `get_config() -> ExperimentConfig`.
`apply_overrides(config, ["model.latent_size=64"])` returns a new config; an
unknown key raises ValueError listing the valid ones. A run directory stores
`config.json` (`config_to_dict`), and `config_from_dict` reads it back.

Every section validates itself when it is built (`meshsim.options.Validated`), so
a preset, a `--set` override and a config.json are all checked at load time, and
errors name the dotted field, the expected and the actual value, e.g.
`model.latent_size: expected an int ≥ 1, got -3`.

Sections: `task` (which task, its noise and its own options, `task.options.*`,
validated by the task's options class; `task.module` loads a task defined outside
the package), `data`, `model` (fields left None take the model's own defaults:
`model.name=graphcast` is GraphCast's published structure), `train` and
`parallel`.
"""

from meshsim.config.loading import apply_overrides, config_from_dict, config_to_dict, load_config
from meshsim.config.sections import (
    GENERATE_DOMAINS,
    MODEL_DTYPES,
    DataConfig,
    EnsembleConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    ParallelConfig,
    TaskConfig,
    TrainConfig,
    lite_train_config,
)
from meshsim.options import ConfigTypeError

__all__ = [
    "GENERATE_DOMAINS",
    "MODEL_DTYPES",
    "ConfigTypeError",
    "DataConfig",
    "EnsembleConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ParallelConfig",
    "TaskConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "lite_train_config",
    "load_config",
]
