"""Training: the `Trainer` of a network, its balancing strategies, and runs.

`Trainer(network)` owns the grouped optimizers, the loss weighting
(`balancing`), the NaN/Inf guard and the batch checks, driven by plain `fit`;
`runner.train(ExperimentConfig)` makes a run directory of it.
"""

from aesthal.training.balancing import (
    DynamicWeightAverage,
    FixedWeighting,
    LossWeighting,
    UncertaintyWeighting,
    get_loss_weighting,
)
from aesthal.training.batch_checks import InvalidBatchError, validate_batch
from aesthal.training.callbacks import (
    NetworkCheckpoint,
    NonFiniteLossError,
    SaliencyImageLogger,
    StopOnNonFinite,
    TrainingStatsLogger,
)
from aesthal.training.runner import build_optimizers, make_trainer, train
from aesthal.training.trainer import Trainer

__all__ = [
    "DynamicWeightAverage",
    "FixedWeighting",
    "InvalidBatchError",
    "LossWeighting",
    "NetworkCheckpoint",
    "NonFiniteLossError",
    "SaliencyImageLogger",
    "StopOnNonFinite",
    "Trainer",
    "TrainingStatsLogger",
    "UncertaintyWeighting",
    "build_optimizers",
    "get_loss_weighting",
    "make_trainer",
    "train",
    "validate_batch",
]
