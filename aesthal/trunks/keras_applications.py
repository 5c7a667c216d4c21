"""The keras.applications trunks: `mobilenet_v2`, `vgg16`, `resnet50`.

Each is the application without its top, its taps read at five layers
(`TAP_LAYERS`, strides 2 to 32). ImageNet weights are keras.applications'
files in the Keras cache (`imagenet_weights_file`, `keras_weights_url`),
downloaded there on a connected machine; for vgg16 aesthal can also convert
them offline (`aesthal.trunks.onnx_vgg16`; the order is
`aesthal.trunks.weights.imagenet_weights_path`). The converters write the
layout of Keras' VGG16 file (`VGG16_CONV_LAYERS`, `write_vgg16_weights`), so
the trunk loads every VGG16 file the same way.

Input scaling: `"tf"` (`x / 127.5 - 1`) for mobilenet_v2, `"caffe"` (BGR
minus the ImageNet mean) for vgg16 and resnet50, as their weights expect.
"""

from __future__ import annotations

import os
import tempfile

import h5py
import keras
import numpy as np

from aesthal.config import TAP_NAMES
from aesthal.trunks.checksums import record_sha256, sha256_file

#: Trunk name -> input scaling (`aesthal.trunks.base.TrunkPreprocessing`).
TRUNKS = {"mobilenet_v2": "tf", "vgg16": "caffe", "resnet50": "caffe"}
#: The layer each tap reads, in tap order.
TAP_LAYERS: dict[str, tuple[str, ...]] = {
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
_CONSTRUCTORS = {
    "mobilenet_v2": keras.applications.MobileNetV2,
    "vgg16": keras.applications.VGG16,
    "resnet50": keras.applications.ResNet50,
}

# Where keras.applications downloads its no-top weights from, and the md5 it
# checks (keras/src/applications/{vgg16,resnet,mobilenet_v2}.py; Keras checks
# none for mobilenet_v2).
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_WEIGHTS_FOLDER_AND_MD5: dict[str, tuple[str, str | None]] = {
    "vgg16": ("vgg16", "6d6bbae143d832006294945121d1f1fc"),
    "resnet50": ("resnet", "4d473c1dd8becc155b73f8504c6f6626"),
    "mobilenet_v2": ("mobilenet_v2", None),
}

# keras.applications VGG16 conv layers, in order, with their kernel shapes (HWIO).
VGG16_CONV_LAYERS: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("block1_conv1", (3, 3, 3, 64)),
    ("block1_conv2", (3, 3, 64, 64)),
    ("block2_conv1", (3, 3, 64, 128)),
    ("block2_conv2", (3, 3, 128, 128)),
    ("block3_conv1", (3, 3, 128, 256)),
    ("block3_conv2", (3, 3, 256, 256)),
    ("block3_conv3", (3, 3, 256, 256)),
    ("block4_conv1", (3, 3, 256, 512)),
    ("block4_conv2", (3, 3, 512, 512)),
    ("block4_conv3", (3, 3, 512, 512)),
    ("block5_conv1", (3, 3, 512, 512)),
    ("block5_conv2", (3, 3, 512, 512)),
    ("block5_conv3", (3, 3, 512, 512)),
)


def build(
    backbone: str, inputs, scaled, weights_path: str | None, name: str
) -> keras.Model:
    """The application `backbone` on `scaled` (the scaled `inputs`), with taps.

    Args:
        backbone: one of `TRUNKS`.
        inputs: the `keras.Input` of the 0..255 images.
        scaled: `inputs` after `TrunkPreprocessing`.
        weights_path: a local no-top weights file (Keras' or a converted one),
            or None (random).
        name: the model's name.
    """
    application = _CONSTRUCTORS[backbone](
        include_top=False, weights=weights_path, input_tensor=scaled
    )
    taps = {
        tap: application.get_layer(layer).output
        for tap, layer in zip(TAP_NAMES[backbone], TAP_LAYERS[backbone], strict=True)
    }
    return keras.Model(inputs, taps, name=name)


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


def keras_weights_url(backbone: str, input_size: tuple[int, int]) -> str:
    """The URL keras.applications downloads `backbone`'s no-top weights from."""
    folder, _ = KERAS_WEIGHTS_FOLDER_AND_MD5[backbone]
    return f"{KERAS_WEIGHTS_URL}{folder}/{imagenet_weights_file(backbone, input_size)}"


def write_vgg16_weights(
    weights: dict[str, tuple[np.ndarray, np.ndarray]], path: str
) -> str:
    """Writes VGG16 conv weights as a keras.applications-style legacy `.h5` file.

    The layout is that of `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`
    (`layer_names` / `weight_names` attributes), which
    `keras.applications.VGG16(weights=path)` and `build_backbone("vgg16", ...)`
    load. The file is written to a temporary name and renamed, so concurrent
    writers never leave a partial file; its sha256 is then recorded beside it
    in `<path>.sha256` (`aesthal.trunks.checksums`), which every later use of a
    converted file in the cache checks.

    Args:
        weights: `{layer: (kernel, bias)}` for the 13 layers of
            `VGG16_CONV_LAYERS`: float32 kernels `[3, 3, c_in, c_out]`, biases
            `[c_out]`.
        path: the `.h5` file to write.

    Returns:
        `path`.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=folder)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as file:
            names = [layer for layer, _ in VGG16_CONV_LAYERS]
            file.attrs["layer_names"] = [n.encode("utf8") for n in names]
            file.attrs["backend"] = b"tensorflow"
            file.attrs["keras_version"] = b"3"
            for layer in names:
                kernel, bias = weights[layer]
                group = file.create_group(layer)
                weight_names = [f"{layer}/kernel", f"{layer}/bias"]
                group.attrs["weight_names"] = [n.encode("utf8") for n in weight_names]
                group.create_dataset(weight_names[0], data=kernel)
                group.create_dataset(weight_names[1], data=bias)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    record_sha256(path, digest)
    return path
