"""aesthal's constants and frozen configuration dataclasses: one home for each.

- Constants: `TASKS`, `GROUPS` (the variable groups the grouped optimizers
  train), `NUM_SCORES` / `SCORES` (the aesthetics scores 1..10), `BACKBONES`,
  `TAP_NAMES`, `BUDGET_MODES`, `LR_SCHEDULES`, `LOSS_WEIGHTINGS`,
  `DEFAULT_LEARNING_RATE`.
- `ModelConfig` fully describes an `AesthalModel`'s architecture, composed of
  parts (`TrunkConfig`, `SaliencyHeadConfig`, `AestheticsHeadConfig`,
  `SharingConfig`); it round-trips through `to_dict()` / `from_dict()` (plain
  JSON types, nested, with `config_version`), which is what the model's
  `get_config()` stores inside a `.keras` file.
- `DataConfig`, `TrainConfig` and `ExperimentConfig` describe a run of
  `aesthal.training.runner.train` (what `experiments/run.py` builds from its
  flags).

Modules: `constants` (names, bounds, `check_input_size`), `fields`
(`setting`: each field's flag name and help line), `parts` (the model's
parts), `model` (`ModelConfig`), `experiment` (`DataConfig`, `TrainConfig`,
`ExperimentConfig`), `migration` (configs of earlier versions, by
`config_version`); everything is importable from `aesthal.config` itself.
No module here imports absl, TensorFlow or Keras.
"""

from aesthal.config.constants import (
    BACKBONES,
    BUDGET_MODES,
    CENTRE_PRIORS,
    DEFAULT_LEARNING_RATE,
    GROUPS,
    LOSS_WEIGHTINGS,
    LR_SCHEDULES,
    MAX_CHANNELS,
    MAX_INPUT_PIXELS,
    MAX_INPUT_SIDE,
    MAX_PRIOR_GRID_SIDE,
    MAX_READOUT_BLUR,
    MAX_READOUT_LAYERS,
    MAX_SCALE,
    MAX_SIDE_HEADS,
    MIN_INPUT_SIDE,
    MIN_SCALE,
    NUM_SCORES,
    SALIENCY_HEADS,
    SALIENCY_TARGETS,
    SCORES,
    SHARINGS,
    TAP_NAMES,
    TASKS,
    check_input_size,
    input_size_problem,
)
from aesthal.config.experiment import DataConfig, ExperimentConfig, TrainConfig
from aesthal.config.migration import CONFIG_VERSION
from aesthal.config.model import ModelConfig
from aesthal.config.parts import (
    AestheticsHeadConfig,
    SaliencyHeadConfig,
    SharingConfig,
    TrunkConfig,
)

__all__ = [
    "AestheticsHeadConfig",
    "BACKBONES",
    "BUDGET_MODES",
    "CENTRE_PRIORS",
    "CONFIG_VERSION",
    "DEFAULT_LEARNING_RATE",
    "DataConfig",
    "ExperimentConfig",
    "GROUPS",
    "LOSS_WEIGHTINGS",
    "LR_SCHEDULES",
    "MAX_CHANNELS",
    "MAX_INPUT_PIXELS",
    "MAX_INPUT_SIDE",
    "MAX_PRIOR_GRID_SIDE",
    "MAX_READOUT_BLUR",
    "MAX_READOUT_LAYERS",
    "MAX_SCALE",
    "MAX_SIDE_HEADS",
    "MIN_INPUT_SIDE",
    "MIN_SCALE",
    "ModelConfig",
    "NUM_SCORES",
    "SALIENCY_HEADS",
    "SaliencyHeadConfig",
    "SALIENCY_TARGETS",
    "SCORES",
    "SHARINGS",
    "SharingConfig",
    "TAP_NAMES",
    "TASKS",
    "TrainConfig",
    "TrunkConfig",
    "check_input_size",
    "input_size_problem",
]
