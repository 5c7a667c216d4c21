"""Variable groups, grouped-optimizer training and loss-weighting strategies."""

from aesthal.training.loss_weighting import (
    FixedWeighting,
    LossWeighting,
    UncertaintyWeighting,
    get_loss_weighting,
)
from aesthal.training.trainer import MultiTaskTrainer
from aesthal.training.validation import validate_batch
from aesthal.training.variable_groups import GROUPS, check_partition

__all__ = [
    "GROUPS",
    "FixedWeighting",
    "LossWeighting",
    "MultiTaskTrainer",
    "UncertaintyWeighting",
    "check_partition",
    "get_loss_weighting",
    "validate_batch",
]
