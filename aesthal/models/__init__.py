"""Trunks with named taps, task heads and the multi-task model, its training step."""

from aesthal.models.aesthal_model import (
    AesthalModel,
    TrainingStatsLogger,
    build_model,
)
from aesthal.models.aesthetics_head import AestheticsHead
from aesthal.models.balancing import CAGrad, GradientBalancing, GradNorm, PCGrad
from aesthal.models.loss_weighting import (
    DynamicWeightAverage,
    FixedWeighting,
    LossWeighting,
    UncertaintyWeighting,
    get_loss_weighting,
)
from aesthal.models.saliency_head import SaliencyHead
from aesthal.models.sharing import CrossStitchUnit, coupling_loss
from aesthal.models.validation import validate_batch
from aesthal.models.variable_groups import check_partition

__all__ = [
    "AesthalModel",
    "AestheticsHead",
    "CAGrad",
    "CrossStitchUnit",
    "DynamicWeightAverage",
    "FixedWeighting",
    "GradNorm",
    "GradientBalancing",
    "LossWeighting",
    "PCGrad",
    "SaliencyHead",
    "TrainingStatsLogger",
    "UncertaintyWeighting",
    "build_model",
    "check_partition",
    "coupling_loss",
    "get_loss_weighting",
    "validate_batch",
]
