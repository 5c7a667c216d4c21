"""aesthal's constants: names, tasks, groups, scores, trunks and their taps, and
the bounds of every size a config or a command can set (`check_input_size`).

No module of `aesthal.config` imports absl, TensorFlow or Keras.
"""

from __future__ import annotations

import numbers
from typing import Any

BACKBONES = (
    "tiny",
    "tiny_gn",
    "mobilenet_v2",
    "vgg16",
    "resnet50",
    "efficientnet_lite0",
    "efficientnet_lite2",
)
TASKS = ("saliency", "aesthetics")
# The trainable-variable groups, each applied by its own optimizer: the trunk
# ("shared") and each task's heads (see `AesthalModel.variable_groups`).
GROUPS = ("shared", "aesthetics", "saliency")
# Aesthetics: a distribution over the scores 1..10 (AVA's), shape [..., NUM_SCORES].
SCORES = tuple(range(1, 11))
NUM_SCORES = len(SCORES)
# How two label budgets' images relate (see `DataConfig.budget_mode`).
BUDGET_MODES = ("independent", "disjoint", "nested")
LR_SCHEDULES = ("constant", "cosine", "step")
# `ModelConfig.saliency_head`: the multi-tap decoder or the DeepGaze II readout.
SALIENCY_HEADS = ("decoder", "readout")
# `ModelConfig.centre_prior`: none, fixed (from the training fixations), learned.
CENTRE_PRIORS = ("none", "fixed", "learned")
# `DataConfig.saliency_target`: the blurred map, or fixation counts.
SALIENCY_TARGETS = ("map", "fixation_counts")
# `aesthal.training.Trainer.compile(loss_weighting=...)` by name: loss-level ("fixed",
# "uncertainty", "dwa") and gradient-level ("gradnorm", "pcgrad", "cagrad");
# see docs/balancing.md.
LOSS_WEIGHTINGS = ("fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad")
# `ModelConfig.sharing`: one trunk ("hard"), one trunk per task coupled by an
# L2 penalty ("soft", Duong et al. 2015) or by cross-stitch units
# ("cross_stitch", Misra et al. 2016); see docs/design.md, "Sharing".
SHARINGS = ("hard", "soft", "cross_stitch")
# Adam's learning rate of every group unless a group's rate is given.
DEFAULT_LEARNING_RATE = 1e-3
# Model input sizes (`ModelConfig.input_size`, `Predictor(input_size=...)`,
# a test-time scale times a model's size), checked by `check_input_size`: each
# side MIN_INPUT_SIDE..MAX_INPUT_SIDE px (the trunks halve it 5 times), at most
# MAX_INPUT_PIXELS in all (2048x2048: VGG16's first block then holds about
# 1 GB of activations per layer and image). Test-time scales (`--scales`,
# `aesthal.inference.parse_scales`): factors MIN_SCALE..MAX_SCALE.
MIN_INPUT_SIDE = 32
MAX_INPUT_SIDE = 4096
MAX_INPUT_PIXELS = 2048 * 2048
MIN_SCALE = 0.25
MAX_SCALE = 4.0
# Upper bounds of a ModelConfig's other sizes, far above any recipe's, so that
# a crafted `.keras` config cannot make building the model take gigabytes:
# channels per layer (decoder, readout), readout layers, side heads, centre
# prior grid cells per side, and the readout blur's sigma (its kernel spans
# 8 sigma + 1 pixels).
MAX_CHANNELS = 4096
MAX_READOUT_LAYERS = 8
MAX_SIDE_HEADS = 16
MAX_PRIOR_GRID_SIDE = 1024
MAX_READOUT_BLUR = 512.0

# Tap names per trunk, shallow to deep. The spatial stride of `stageK` is
# 2**K for every trunk except vgg16, whose `stage1` is at full resolution.
TAP_NAMES: dict[str, tuple[str, ...]] = {
    "tiny": ("stage1", "stage2", "stage3", "stage4"),
    "tiny_gn": ("stage1", "stage2", "stage3", "stage4"),
    "mobilenet_v2": ("stage1", "stage2", "stage3", "stage4", "stage5"),
    "vgg16": ("stage1", "stage2", "stage3", "stage4", "stage5"),
    "resnet50": ("stage1", "stage2", "stage3", "stage4", "stage5"),
    "efficientnet_lite0": ("stage1", "stage2", "stage3", "stage4", "stage5"),
    "efficientnet_lite2": ("stage1", "stage2", "stage3", "stage4", "stage5"),
}


def input_size_problem(size: tuple[int, int]) -> str | None:
    """What makes `(height, width)` (ints) no model input size, or None."""
    height, width = size
    allowed = (
        f"allowed: {MIN_INPUT_SIDE}..{MAX_INPUT_SIDE} px a side and at most "
        f"{MAX_INPUT_PIXELS} px in all, e.g. 2048x2048"
    )
    if min(height, width) < MIN_INPUT_SIDE:
        return (
            f"each side must be >= {MIN_INPUT_SIDE} px (the trunks halve it 5 "
            f"times; {allowed})"
        )
    if max(height, width) > MAX_INPUT_SIDE:
        return f"each side must be <= {MAX_INPUT_SIDE} px ({allowed})"
    if height * width > MAX_INPUT_PIXELS:
        return f"{height * width} px is too many ({allowed})"
    return None


def check_input_size(size: Any, name: str = "input_size") -> tuple[int, int]:
    """Checks a model input size: `(height, width)`, two ints within the bounds.

    The one check of every input size: `ModelConfig.input_size` (so also a
    `.keras` file's), `Predictor(input_size=...)` and the sizes test-time
    scales give.

    Args:
        size: `(height, width)` in pixels.
        name: how the error names the value (a field or a flag).

    Returns:
        `(height, width)` as Python ints.

    Raises:
        ValueError: naming `name`: not two ints, or a side outside
            `MIN_INPUT_SIDE..MAX_INPUT_SIDE`, or more than `MAX_INPUT_PIXELS`.
    """
    try:
        values = tuple(size)
    except TypeError:
        values = ()
    if len(values) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(
            f"{name}={size!r}: expected (height, width), two ints of pixels, "
            "e.g. (240, 320)"
        )
    values = (int(values[0]), int(values[1]))
    problem = input_size_problem(values)
    if problem is not None:
        raise ValueError(f"{name}={values}: {problem}")
    return values
