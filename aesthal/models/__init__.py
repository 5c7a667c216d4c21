"""Trunks with named taps, task heads and the multi-task model."""

from aesthal.models.aesthal_model import AesthalModel, build_model
from aesthal.models.aesthetics_head import AestheticsHead
from aesthal.models.backbone import (
    TrunkPreprocessing,
    build_backbone,
    imagenet_weights_file,
    keras_cache_dir,
)
from aesthal.models.saliency_head import SaliencyHead

__all__ = [
    "AesthalModel",
    "AestheticsHead",
    "SaliencyHead",
    "TrunkPreprocessing",
    "build_backbone",
    "build_model",
    "imagenet_weights_file",
    "keras_cache_dir",
]
