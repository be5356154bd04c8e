"""The config's sections: frozen, typed dataclasses that validate themselves when
built (`meshsim.options.Validated`), so a preset, a `--set` override and a
config.json are all checked at load time; errors name the dotted field, the
expected and the actual value (`model.latent_size: expected an int ≥ 1, got -3`).
Reading, writing and overriding them: `meshsim.config.loading`."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from meshsim.options import Validated, setting


# Choices owned by other modules, looked up when a config is validated (the config
# layer sits above models and nn, so these are plain imports done late: `meshsim`
# imports the config module before it has finished importing them).
def _model_names() -> list[str]:
    from meshsim.models import MODELS

    return sorted(MODELS)


def _block_names() -> list[str]:
    from meshsim.models import BLOCKS

    return sorted(BLOCKS)


def _norms() -> list[str]:
    from meshsim.attention import NORMS

    return list(NORMS)


def _ensemble_kinds() -> list[str]:
    from meshsim.models.ensemble import KINDS

    return list(KINDS)


def _ensemble_losses() -> list[str]:
    from meshsim.models.ensemble import LOSSES

    return list(LOSSES)


def _activations() -> list[str]:
    from meshsim.nn import ACTIVATIONS

    return sorted(ACTIVATIONS)


def _aggregations() -> list[str]:
    from meshsim.ops import AGGREGATIONS

    return sorted(AGGREGATIONS)


# Kept here rather than imported: `meshsim.solvers` pulls in the meshing extras.
# tests/test_bad_inputs.py checks it covers `meshsim.solvers.generate.DOMAINS`;
# "shallow_water" (meshsim.solvers.shallow_water) is the weather-style domain;
# "cloth_sphere" and "deforming_plate" the contact ones (meshsim.solvers.cloth_contact,
# meshsim.solvers.plate); the others after them are SPH particle cases
# (meshsim.solvers.sph_cases).
GENERATE_DOMAINS = (
    "cylinder_flow",
    "flag",
    "shallow_water",
    "cloth_sphere",
    "deforming_plate",
    "dam_break",
    "taylor_green",
    "lid_driven_cavity",
    "poiseuille",
    "taylor_green_3d",
)
# Matmul dtypes `EncodeProcessDecode` runs in (float64 needs `jax_enable_x64`).
MODEL_DTYPES = ("bfloat16", "float16", "float32", "float64")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig(Validated):
    """Adam with lr(step) = learning_rate · decay_rate^(step / decay_steps) + min_learning_rate.

    Defaults are the paper's: 1e-4 decaying ×0.1 over 5M steps, floor 1e-6.
    """

    _section = "train.optimizer"

    learning_rate: float = setting(1e-4, gt=0)
    decay_steps: int = setting(5_000_000, ge=1)
    decay_rate: float = setting(0.1, gt=0, le=1)
    min_learning_rate: float = setting(1e-6, ge=0)
    grad_clip_norm: float | None = setting(None, gt=0)  # global-norm clipping, off by default


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(Validated):
    """Where the dataset lives and how windows are batched.

    `generate_*` describe the built-in dataset `meshsim demo` / `meshsim generate`
    create when `path` is empty (domain "cylinder_flow", "flag" or "shallow_water").
    """

    _section = "data"

    path: str = "data/cylinder_flow"
    train_split: str = setting("train", nonempty=True)
    valid_split: str = setting("valid", nonempty=True)
    batch_size: int = setting(1, ge=1)  # meshes per step (the paper uses 1)
    pool_size: int = setting(16, ge=1)  # trajectories resident in memory for shuffling
    prefetch: int = setting(2, ge=1)  # batches prepared ahead in a background thread
    # Out-of-core training (HDF5 splits): windows read only their frames from disk, and
    # at most this many bytes of frames stay cached (the pool then holds static fields
    # and graph structures only, `meshsim.data.hdf5_lazy`); None: whole trajectories
    # are loaded, pool_size of them at once
    cache_bytes: int | None = setting(None, ge=1)
    generate_domain: str = setting("cylinder_flow", choices=GENERATE_DOMAINS)
    generate_train_trajectories: int = setting(20, ge=1)
    generate_valid_trajectories: int = setting(4, ge=0)
    generate_steps: int = setting(300, ge=1)
    generate_seed: int = setting(0, ge=0)
    # channel_mesh / cloth_mesh refinement factor
    generate_mesh_resolution: float = setting(1.0, gt=0)
    # shallow_water only: add the `2m_temperature` channel with a diurnal cycle
    # (meshsim.solvers.surface_temperature); off keeps the three flow channels
    generate_diurnal: bool = False
    # WeatherBench2-layout stores: the data variables read (empty: every variable with
    # a `time` dimension)
    variables: tuple[str, ...] = ()
    # WeatherBench2-layout stores: the static variables read (None: every variable over
    # latitude and longitude only)
    static_variables: tuple[str, ...] | None = None
    # WeatherBench2-layout stores: latitudes may cover a band only (otherwise they must
    # reach within one grid spacing of both poles)
    regional: bool = False
    # Stretched grids (`meshsim.data.stretched`): a directory of fine regional stores
    # (`<split>.zarr`, same variables and times) set into the global ones ("": none;
    # a relative path is taken from data.path), and how far beyond the regional box
    # (degrees) global points are dropped
    regional_path: str = ""
    region_margin: float = setting(0.0, ge=0)
    # shallow_water: also write a regional cut-out over (lat_min, lat_max, lon_min,
    # lon_max) degrees into <data.path>/regional, on a grid generate_region_resolution
    # times finer than the global one
    generate_region: tuple[float, ...] = ()
    generate_region_resolution: float = setting(2.0, gt=0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnsembleConfig(Validated):
    """A stochastic model trained as an ensemble (`meshsim.models.ensemble`, issue 25).

    `members` M (1: one deterministic trajectory, trained on MSE, the network unchanged);
    `kind`: "fgn" (a noise vector of `noise_size` per member and example conditions the
    network's LayerNorms, FGN-style functional perturbations), "initial" (each member's
    input state perturbed by Gaussian noise of `initial_std`, in units of the output
    normalizer's std) or "fgn+initial" (both), None: deterministic (M = 1 only; checked
    when the model is built, so overrides may come in any order); `noise_correlation`
    ρ in [0, 1]: the correlation of a member's FGN noise between two network calls of
    its rollout (0: a fresh noise every call, FGN's way; 1: one noise for the whole
    rollout); `loss`: the CRPS over the M
    members trained on, "fair" or "afcrps" (anemoi's almost-fair CRPS with blend `alpha`),
    weighted like the MSE loss (`meshsim.training.crps`).
    """

    _section = "model.ensemble"

    members: int = setting(1, ge=1)
    kind: str | None = setting(None, choices=_ensemble_kinds)
    noise_size: int = setting(32, ge=1)
    initial_std: float = setting(0.1, ge=0)
    noise_correlation: float = setting(0.0, ge=0, le=1)
    loss: str = setting("afcrps", choices=_ensemble_losses)
    alpha: float = setting(0.95, ge=0, le=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(Validated):
    """Network settings: `name` picks a model of `meshsim.models.MODELS`; every other
    field left None takes that model's own default (`MeshGraphNet`: latent 128, 15
    steps, 2 hidden layers, ReLU; `GraphCast`: latent 512, 16 mesh steps, 1 hidden
    layer, swish; see `meshsim.models.EncodeProcessDecode`), so a preset states only
    what it changes. The output width and output node set come from the task.

    `bundle_steps` K (temporal bundling, Brandstetter et al., ICLR 2022): the network
    predicts K future frames per call (output width K·d, one slice per frame, each the
    task's one-step target relative to the frame before it) and a rollout advances K
    frames per call (`meshsim.simulator.Simulator`). Training windows then hold
    `train.unroll_steps`·K future frames. 1: one frame per call, as MeshGraphNets.

    `block` picks the processor block of `meshsim.models.BLOCKS`: "interaction"
    (message passing, the published networks') or "transformer"
    (`meshsim.attention.TransformerBlock`: attention over each node's incoming edges).
    The transformer's own settings, left None for its defaults and refused with the
    interaction block: `num_heads` (4), `head_size` (latent / heads), `norm` ("layer"
    or "rms") and `mlp_ratio` (the gated MLP's width over the latent, 2). The wider
    receptive field (K-hop, dilated, global edge sets) is a task option of the mesh
    tasks (`task.options.k_hop`, ...; `meshsim.tasks.MeshOptions`), since it changes the
    graph, and serves either block.

    `ensemble` (`EnsembleConfig`, `model.ensemble.*`): members, stochastic kind and CRPS
    loss; left at its defaults the model is the deterministic one.
    """

    _section = "model"

    name: str = setting("meshgraphnet", choices=_model_names)
    latent_size: int | None = setting(None, ge=1)
    num_message_passing_steps: int | None = setting(None, ge=1)
    mlp_hidden_layers: int | None = setting(None, ge=0)
    activation: str | None = setting(None, choices=_activations)
    layer_norm: bool | None = None
    aggregation: str | None = setting(None, choices=_aggregations)
    concat_trick: bool | None = None
    remat: bool | None = None  # None: on for CPU (see EncodeProcessDecode.remat)
    scan_unroll: int | None = setting(None, ge=1)
    dtype: str | None = setting(None, choices=MODEL_DTYPES, what="a dtype name")
    bundle_steps: int = setting(1, ge=1)  # frames predicted per network call (K)
    block: str = setting("interaction", choices=_block_names)
    num_heads: int | None = setting(None, ge=1)
    head_size: int | None = setting(None, ge=1)
    norm: str | None = setting(None, choices=_norms)
    mlp_ratio: float | None = setting(None, gt=0)
    ensemble: EnsembleConfig = EnsembleConfig()

    # Settings of the transformer block (`block_kwargs`), not of the network.
    _BLOCK_FIELDS = ("num_heads", "head_size", "norm", "mlp_ratio")

    def __post_init__(self):
        super().__post_init__()
        if self.block != "transformer":
            for field in self._BLOCK_FIELDS:
                if getattr(self, field) is not None:
                    raise ValueError(
                        f"model.{field}: a setting of model.block='transformer' (set the "
                        f"block first), got {getattr(self, field)!r} with "
                        f"model.block={self.block!r}"
                    )
        elif self.aggregation is not None:
            raise ValueError(
                f"model.aggregation: the transformer block aggregates by attention, got "
                f"{self.aggregation!r} with model.block='transformer' (leave it unset)"
            )
        if self.num_heads is not None and self.head_size is None and self.latent_size:
            if self.latent_size % self.num_heads:
                raise ValueError(
                    f"model.num_heads: model.latent_size {self.latent_size} is not a multiple "
                    f"of {self.num_heads} heads; set model.head_size"
                )

    def model_kwargs(self) -> dict[str, Any]:
        """The network's fields set (not None), as keywords of the model's constructor;
        `dtype` as a dtype name (the caller turns it into a dtype). The block and its
        settings are `block` and `block_kwargs`."""
        skip = {"name", "block", "ensemble", *self._BLOCK_FIELDS}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in skip and getattr(self, f.name) is not None
        }

    def block_kwargs(self) -> dict[str, Any]:
        """The block's own settings that are set (not None), as keywords of its
        constructor (`EncodeProcessDecode.block_options`)."""
        return {k: getattr(self, k) for k in self._BLOCK_FIELDS if getattr(self, k) is not None}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(Validated):
    """Training loop settings (`eval_every` 0: no periodic evaluation)."""

    _section = "train"

    steps: int = setting(10_000_000, ge=1)
    accumulate_steps: int = setting(1000, ge=0)  # statistics only, no gradient step (paper)
    normalizer_max_accumulations: int = setting(1_000_000, ge=1)
    seed: int = setting(0, ge=0)
    log_every: int = setting(100, ge=1)
    eval_every: int = setting(10_000, ge=0)
    eval_trajectories: int = setting(2, ge=1)
    eval_rollout_steps: int = setting(50, ge=1)
    checkpoint_every: int = setting(10_000, ge=1)
    keep_checkpoints: int = setting(3, ge=1)
    # A non-finite loss or gradient: "stop" the run (the last good checkpoint stays the
    # latest) or "skip" the update and go on.
    on_nonfinite: str = setting("stop", choices=("stop", "skip"))
    # Multi-step training (meshsim.training.multistep): roll out `unroll_steps` steps per example,
    # "unrolled" (gradients through the rollout, GraphCast) or "pushforward" (only the
    # last step trains, Brandstetter et al.); the horizon grows by one every
    # `unroll_schedule` steps from 1 (0: `unroll_steps` from the start).
    unroll_steps: int = setting(1, ge=1)
    unroll_mode: str = setting("unrolled", choices=("unrolled", "pushforward"))
    unroll_schedule: int = setting(0, ge=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    # A run directory whose newest checkpoint gives a fresh run its parameters (e.g. a
    # deterministic model an FGN ensemble is fine-tuned from; `meshsim.runs.warm_start`).
    init_from: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParallelConfig(Validated):
    """How a run spreads over devices (see `meshsim.parallel.sharding`).

    `data`: devices on the data axis (None: every device not used by `graph`);
    `backend`: "jit" (jit + NamedSharding) or "pmap"; `graph`: partitions of each
    graph (graph/domain parallel, halo exchange); `shard_optimizer`: shard the
    optimizer state over the data axis; `halo_exchange`: how graph parts refresh
    their halo latents ("all_gather" or "ppermute", `meshsim.parallel.graph_parallel`);
    `ensemble`: devices on the ensemble axis, over which the members of
    `model.ensemble.members` are split (each device computes its own members; it must
    divide the members; jit backend only); `partitions`: parts each graph is cut into
    and run in turn on each device, with K-hop halos and recomputation in the backward
    pass (`meshsim.parallel.sequential`: less activation memory, same gradients; not
    with `graph` > 1 nor FGN ensembles).
    """

    _section = "parallel"

    backend: str = setting("jit", choices=("jit", "pmap"))
    data: int | None = setting(None, ge=1)
    graph: int = setting(1, ge=1)
    shard_optimizer: bool = False
    halo_exchange: str = setting("all_gather", choices=("all_gather", "ppermute"))
    ensemble: int = setting(1, ge=1)
    partitions: int = setting(1, ge=1)

    def __post_init__(self):
        super().__post_init__()
        if self.partitions > 1 and self.graph > 1:
            raise ValueError(
                f"parallel.partitions={self.partitions}: sequential partitions run on one "
                f"device's share of the work, not with graph parallelism "
                f"(parallel.graph={self.graph}); set one of them to 1"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskConfig(Validated):
    """Which task a run learns, and its own settings.

    `name`: a task of `meshsim.tasks.TASKS`, or one that `module` registers;
    `module`: a Python file (`path/heat.py`, stored as an absolute path) or an
    importable module (`mylab.tasks`) that registers tasks with
    `meshsim.tasks.register_task`, loaded before the name is looked up, so a new
    domain lives outside the package;
    `noise_std`, `noise_gamma`: training noise (None: the task's paper values);
    `options`: the task's own settings, checked by the options class it registers
    (e.g. `task.options.mesh_splits=3` for "weather"; see `meshsim.tasks.WeatherOptions`).
    """

    _section = "task"

    name: str = setting("cfd", nonempty=True)
    module: str = ""
    noise_std: float | None = setting(None, ge=0)
    noise_gamma: float | None = setting(None, ge=0)
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        if self.module.endswith(".py"):  # stored absolute: later commands run from anywhere
            object.__setattr__(self, "module", os.path.abspath(self.module))
        from meshsim.tasks import task_options

        object.__setattr__(self, "options", task_options(self.name, self.options, self.module))

    def set_options(self) -> dict:
        """The options that differ from the task's defaults (what a switch to another
        task by `--set task.name=...` carries over)."""
        from meshsim.tasks import task_options

        defaults = task_options(self.name, {}, self.module)
        return {
            k: v for k, v in self.options.items() if defaults.get(k, v) != v or k not in defaults
        }

    def option_hint(self, key: str) -> Any:
        """The type hint of option `key` of this task (Any when it declares none)."""
        from meshsim.tasks import task_option_hint

        return task_option_hint(self.name, key)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExperimentConfig(Validated):
    """Everything that defines a run. `task` may be given as a task name
    (`ExperimentConfig(task="cfd")`), short for `TaskConfig(name="cfd")`."""

    name: str = setting("experiment", nonempty=True)
    task: TaskConfig = TaskConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    parallel: ParallelConfig = ParallelConfig()

    def __post_init__(self):
        if isinstance(self.task, str):
            object.__setattr__(self, "task", TaskConfig(name=self.task))
        super().__post_init__()
        from meshsim.models.ensemble import NOISE_KINDS

        kind = self.model.ensemble.kind
        if self.parallel.partitions > 1 and kind in NOISE_KINDS:
            raise ValueError(
                f"parallel.partitions={self.parallel.partitions}: the parts do not pass an "
                f"FGN network's noise (model.ensemble.kind={kind!r}); use parallel.partitions=1"
            )


def lite_train_config() -> TrainConfig:
    """The short CPU schedule of the `*_lite` presets: 3000 steps (100 statistics-only),
    Adam 1e-3 decaying ×0.1 over 4000 steps to a 1e-5 floor, checkpoints every 500."""
    return TrainConfig(
        steps=3000,
        accumulate_steps=100,
        normalizer_max_accumulations=3000,
        log_every=50,
        eval_every=0,
        checkpoint_every=500,
        optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=4000, min_learning_rate=1e-5),
    )
