"""Trunks: shared feature extractors with named taps, and their weights.

One module per trunk family (`tiny`, `keras_applications`,
`efficientnet_lite`), the contract they share (`base`: input scaling, taps,
splitting at a tap), and their weights (`weights`: from
`ModelConfig.backbone_weights` to a file; the converters `onnx_vgg16`, `hed`
and the legacy torch reader `torch_legacy`, which convert once into the
cache folder through `cache.convert_once` and check `checksums`).
"""

from aesthal.trunks.base import (
    TrunkPreprocessing,
    last_shared_layer,
    split_backbone,
    split_backbone_stages,
)
from aesthal.trunks.cache import keras_cache_dir
from aesthal.trunks.factory import build_backbone
from aesthal.trunks.keras_applications import imagenet_weights_file
from aesthal.trunks.weights import resolve_backbone_weights

__all__ = [
    "TrunkPreprocessing",
    "build_backbone",
    "imagenet_weights_file",
    "keras_cache_dir",
    "last_shared_layer",
    "resolve_backbone_weights",
    "split_backbone",
    "split_backbone_stages",
]
