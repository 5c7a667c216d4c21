"""aesthal's constants and frozen configuration dataclasses: one home for each.

- Constants: `TASKS`, `GROUPS` (the variable groups the grouped optimizers
  train), `NUM_SCORES` / `SCORES` (the aesthetics scores 1..10), `BACKBONES`,
  `TAP_NAMES`, `BUDGET_MODES`, `LR_SCHEDULES`, `LOSS_WEIGHTINGS`,
  `DEFAULT_LEARNING_RATE`.
- `ModelConfig` fully describes an `AesthalModel`'s architecture; it round-trips
  through `to_dict()` / `from_dict()` (plain JSON types), which is what the
  model's `get_config()` stores inside a `.keras` file.
- `DataConfig`, `TrainConfig` and `ExperimentConfig` describe a run of
  `aesthal.training.runner.train` (what `experiments/run.py` builds from its
  flags).

Modules: `constants` (names, bounds, `check_input_size`), `model`
(`ModelConfig`), `experiment` (`DataConfig`, `TrainConfig`,
`ExperimentConfig`); everything is importable from `aesthal.config` itself.
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
from aesthal.config.model import ModelConfig

__all__ = [
    "BACKBONES",
    "BUDGET_MODES",
    "CENTRE_PRIORS",
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
    "SALIENCY_TARGETS",
    "SCORES",
    "SHARINGS",
    "TAP_NAMES",
    "TASKS",
    "TrainConfig",
    "check_input_size",
    "input_size_problem",
]
