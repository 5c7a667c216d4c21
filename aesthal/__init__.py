"""aesthal: saliency prediction with a multi-task CNN that also learns aesthetics."""

from aesthal import losses
from aesthal.config import BACKBONES, TAP_NAMES, TASKS, ModelConfig
from aesthal.export import export_saved_model
from aesthal.losses import SaliencyLoss
from aesthal.models import AesthalModel, build_model
from aesthal.training import (
    GROUPS,
    FixedWeighting,
    LossWeighting,
    UncertaintyWeighting,
    validate_batch,
)

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "GROUPS",
    "TAP_NAMES",
    "TASKS",
    "AesthalModel",
    "FixedWeighting",
    "LossWeighting",
    "ModelConfig",
    "SaliencyLoss",
    "UncertaintyWeighting",
    "build_model",
    "export_saved_model",
    "losses",
    "validate_batch",
]
