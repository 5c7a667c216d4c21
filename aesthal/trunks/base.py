"""What every trunk is: its input scaling, its taps, the cache folder.

The tap contract. A trunk (`aesthal.trunks.build_backbone`) is a functional
`keras.Model` that takes float32 RGB images `[B, H, W, 3]` with values in
0..255, applies its own input scaling (`TrunkPreprocessing`: the scaling its
weights were trained with) and returns a dict of feature maps

    {"stage1": [B, h1, w1, c1], ..., "stageN": [B, hN, wN, cN]}

ordered shallow to deep, tap names as in `aesthal.config.TAP_NAMES`. Every
tap is a cut point: the deeper taps depend on the shallower ones only through
that tap's output, so a trunk splits there into a prefix and a suffix that
share its layers (`split_backbone`, `split_backbone_stages`; the frozen
prefix and cross-stitch sharing use them).

Weight files that aesthal downloads or converts live in the Keras cache
folder (`aesthal.trunks.cache`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


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


def last_shared_layer(backbone: keras.Model, taps: Sequence[str]) -> keras.layers.Layer:
    """The last trunk layer with a trainable kernel that the given taps depend on.

    GradNorm's `W` ("the last shared layer of weights", Chen et al. 2018,
    Sec. 3): among the ancestors of the tap tensors that the heads read, the
    one latest in the trunk's (topological) layer order that has a trainable
    `kernel`. With every head reading the deepest tap: `tiny_stage4_conv`
    (tiny), `block5_conv3` (vgg16), `Conv_1` (mobilenet_v2),
    `conv5_block3_3_conv` (resnet50).

    Args:
        backbone: a functional trunk returning `{tap: tensor}`.
        taps: the tap names the heads read.

    Returns:
        The layer (its `kernel`, and `bias` if any, are `W`).

    Raises:
        ValueError: no ancestor of the taps has a trainable kernel (e.g. a
            frozen trunk).
    """
    order = {id(layer): index for index, layer in enumerate(backbone.layers)}
    outputs = backbone.output
    stack = [outputs[tap] for tap in taps]
    seen: set[int] = set()
    best, best_index = None, -1
    while stack:
        tensor = stack.pop()
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            continue
        layer, node_index = history.operation, history.node_index
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        kernel = getattr(layer, "kernel", None)
        trainable = {id(v) for v in layer.trainable_variables}
        if kernel is not None and id(kernel) in trainable:
            index = order.get(id(layer), -1)
            if index > best_index:
                best, best_index = layer, index
        node = layer._inbound_nodes[node_index]
        stack.extend(node.input_tensors)
    if best is None:
        raise ValueError(
            f"no trainable layer with a kernel feeds the taps {list(taps)} of "
            f"{backbone.name}: GradNorm needs shared weights (is the trunk frozen?)."
        )
    return best
